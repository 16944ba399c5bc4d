"""The console's sign-in, session and CSRF rules, and its read pages, over plain HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.console.support import csrf_of, sign_in
from tests.support.hosts import RunningHost
from tests.support.workloads import PID_FUNCTION, deploy, deployment, function_artifact
from tests.support.workloads import setup_environment as make_environment

PAGE = "/console/deployments/development/functions/pid"


def _deploy_pid(host: RunningHost, tmp_path: Path, versions: int = 1) -> str:
    admin = host.admin()
    key = make_environment(admin)
    for i in range(versions):
        source = PID_FUNCTION + f"\n# version {i}\n"
        deploy(admin, function_artifact(tmp_path, "pid", source), "pid").raise_for_status()
    return key


def test_pages_need_a_session_and_a_wrong_token_is_refused(host: RunningHost) -> None:
    client, answer = sign_in(host, token="not-the-admin-token")
    assert answer.status_code == 401
    assert "the admin token is not valid" in answer.text
    assert "agentform_console=" not in answer.headers.get("set-cookie", "")
    page = client.get("/console")
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=%2Fconsole"


def test_a_token_with_any_characters_is_refused_cleanly(host: RunningHost) -> None:
    _, answer = sign_in(host, token="jeton-été-✓")
    assert answer.status_code == 401 and "the admin token is not valid" in answer.text
    client, _ = sign_in(host)
    huge = client.post("/console/logout", content=b"csrf=" + b"x" * 70_000)
    assert huge.status_code == 413


def test_the_session_cookie_is_httponly_and_samesite_strict(host: RunningHost) -> None:
    client, answer = sign_in(host)
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("agentform_console=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path"} <= attributes
    assert "samesite=strict" in cookie.lower()
    overview = client.get("/console")
    assert overview.status_code == 200
    assert "default-src 'none'" in overview.headers["content-security-policy"]


def test_sign_in_needs_its_form_token(host: RunningHost) -> None:
    client, _ = sign_in(host, token="wrong")  # leaves a login form cookie behind
    forged = client.post("/console/login", data={"csrf": "forged", "token": host.token})
    assert forged.status_code == 403
    assert client.get("/console").status_code == 303  # still signed out


def test_sign_in_takes_its_token_in_the_header_too(host: RunningHost) -> None:
    client = httpx.Client(base_url=host.url, follow_redirects=False, timeout=60)
    csrf = csrf_of(client.get("/console/login").text)
    forged = client.post(
        "/console/login", data={"token": host.token}, headers={"x-csrf-token": "forged"}
    )
    assert forged.status_code == 403
    csrf = csrf_of(forged.text)  # the refusal is a fresh sign-in form
    answer = client.post(
        "/console/login", data={"token": host.token}, headers={"x-csrf-token": csrf}
    )
    assert answer.status_code == 303 and client.get("/console").status_code == 200


def test_a_change_without_the_csrf_token_is_refused(host: RunningHost, tmp_path: Path) -> None:
    _deploy_pid(host, tmp_path)
    client, _ = sign_in(host)
    for form in ({"confirmed": "yes"}, {"confirmed": "yes", "csrf": "wrong"}):
        refused = client.post(f"{PAGE}/deactivate", data=form)
        assert refused.status_code == 403, refused.text
        assert "CSRF" in refused.text
    assert deployment(host.admin(), "pid")["settings"]["enabled"] is True
    # The same change with the token (as a form field, or htmx's header) is accepted.
    csrf = csrf_of(client.get(PAGE).text)
    done = client.post(
        f"{PAGE}/deactivate", data={"confirmed": "yes"}, headers={"x-csrf-token": csrf}
    )
    assert done.status_code == 303
    assert deployment(host.admin(), "pid")["status"] == "disabled"


def test_a_change_is_confirmed_before_it_is_made(host: RunningHost, tmp_path: Path) -> None:
    _deploy_pid(host, tmp_path)
    client, _ = sign_in(host)
    csrf = csrf_of(client.get(PAGE).text)
    asked = client.post(f"{PAGE}/deactivate", data={"csrf": csrf})
    assert asked.status_code == 200
    assert "Deactivate functions/pid on development?" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert deployment(host.admin(), "pid")["status"] == "live"


def test_sign_out_ends_the_session(host: RunningHost) -> None:
    client, _ = sign_in(host)
    csrf = csrf_of(client.get("/console").text)
    assert client.post("/console/logout", data={}).status_code == 403  # needs its CSRF token
    out = client.post("/console/logout", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert client.get("/console").status_code == 303
    # The old cookie is dead on the host too, not only removed from this client.
    stale, _ = sign_in(host)
    stale_cookie = stale.cookies.get("agentform_console")
    csrf = csrf_of(stale.get("/console").text)
    stale.post("/console/logout", data={"csrf": csrf})
    stale.cookies.set("agentform_console", stale_cookie or "", path="/console")
    assert stale.get("/console").status_code == 303


def test_deployment_figures_and_executions_filters(host: RunningHost, tmp_path: Path) -> None:
    key = _deploy_pid(host, tmp_path)
    runner = host.client(key)
    for tag in ("a", "b", "c"):
        assert runner.post("/run/development/functions/pid", json={"tag": tag}).status_code == 200
    # A bad argument is an error of the function: it counts against the error rate.
    assert runner.post("/run/development/functions/pid", json={"nope": 1}).status_code >= 400
    client, _ = sign_in(host)
    page = client.get(PAGE).text
    assert '<dd id="fig-requests">4</dd>' in page
    assert '<dd id="fig-error-rate">25.0%</dd>' in page
    assert page.count('<svg class="chart"') == 4
    everything = client.get("/console/executions").text
    assert everything.count('class="execution"') == 4
    ok = client.get("/console/executions", params={"status": "ok"}).text
    assert ok.count('class="execution"') == 3
    mine = client.get("/console/executions", params={"identity": "nobody"}).text
    assert mine.count('class="execution"') == 0
    other = client.get("/console/executions", params={"workload": "agents/pid"}).text
    assert other.count('class="execution"') == 0
    env = client.get("/console/executions", params={"environment": "development"}).text
    assert env.count('class="execution"') == 4


def test_htmx_is_vendored_and_served_gzipped(host: RunningHost) -> None:
    vendored = Path(__file__).parents[2] / (
        "runtime/agentform_runtime/host/api/console/static/htmx.min.js"
    )
    answer = httpx.get(
        f"{host.url}/console/static/htmx.min.js", headers={"accept-encoding": "gzip"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.content == vendored.read_bytes()  # httpx decoded it
    assert answer.text.startswith("/*! htmx.org 2.0.11")
    assert httpx.get(f"{host.url}/console/static/../app.py").status_code == 404
