"""Blue-green updates, failed updates, rollback and release."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.support.hosts import RunningHost
from tests.support.workloads import deploy, deployment, function_artifact, setup_environment

VERSIONED = """
import time

def main() -> dict:
    time.sleep(0.01)
    return {"release": "%s"}
"""

BROKEN_AT_IMPORT = """
raise RuntimeError("missing DATABASE_URL")

def main() -> dict:
    return {}
"""


def _stream(
    url: str, key: str, stop: threading.Event, log: list[tuple[float, float, int, str]]
) -> None:
    """Sequential requests until `stop`: (sent, received, status, release) each."""
    with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=60) as client:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = client.post(url, json={})
                release = response.json().get("release", "") if response.status_code == 200 else ""
                log.append((sent, time.monotonic(), response.status_code, release))
            except httpx.HTTPError as exc:
                log.append((sent, time.monotonic(), 0, type(exc).__name__))


def test_blue_green_switch_under_steady_traffic(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    old = deploy(admin, function_artifact(tmp_path, "svc", VERSIONED % "blue"), "svc")
    assert old.status_code == 201
    url = f"{host.url}/run/development/functions/svc"
    stop = threading.Event()
    logs: list[list[tuple[float, float, int, str]]] = [[], [], []]
    streams = [threading.Thread(target=_stream, args=(url, key, stop, log)) for log in logs]
    for stream in streams:
        stream.start()
    try:
        # Let traffic flow on blue first (bounded wait on the streams' own progress).
        from tests.support.polling import wait_until

        wait_until(lambda: all(len(log) >= 20 for log in logs))
        new = deploy(admin, function_artifact(tmp_path, "svc", VERSIONED % "green"), "svc")
        switched = time.monotonic()
        assert new.status_code == 200, new.text
        wait_until(lambda: all(sum(1 for e in log if e[0] > switched) >= 20 for log in logs))
    finally:
        stop.set()
        for stream in streams:
            stream.join(timeout=60)

    everything = [entry for log in logs for entry in log]
    assert all(status == 200 for _, _, status, _ in everything), [
        e for e in everything if e[2] != 200
    ][:5]
    assert {release for *_, release in everything} == {"blue", "green"}
    # Requests sent after the PUT returned all went to the new version...
    assert all(release == "green" for sent, _, _, release in everything if sent > switched)
    # ...and on each stream, once green answered, blue never answered again.
    for log in logs:
        releases = [release for *_, release in log]
        first_green = releases.index("green")
        assert "blue" not in releases[first_green:]
    body = new.json()
    assert body["previous_version"] == old.json()["version"]
    assert body["version"] != old.json()["version"]


def test_a_failing_new_version_leaves_the_old_one_serving(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    good = deploy(admin, function_artifact(tmp_path, "svc", VERSIONED % "blue"), "svc").json()
    failed = deploy(admin, function_artifact(tmp_path, "svc", BROKEN_AT_IMPORT), "svc")
    assert failed.status_code == 422
    error = failed.json()["error"]
    assert error["code"] == "ReadinessFailed"
    assert "missing DATABASE_URL" in error["init_error"]
    current = deployment(admin, "svc")
    assert current["version"] == good["version"] and current["status"] == "live"
    assert "last update failed" in current["message"]
    response = host.client(key).post("/run/development/functions/svc", json={})
    assert response.status_code == 200 and response.json() == {"release": "blue"}


def test_rollback_returns_to_a_kept_version(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    blue = deploy(admin, function_artifact(tmp_path, "svc", VERSIONED % "blue"), "svc").json()[
        "version"
    ]
    green = deploy(admin, function_artifact(tmp_path, "svc", VERSIONED % "green"), "svc").json()[
        "version"
    ]
    assert [v["version"] for v in deployment(admin, "svc")["versions"]] == [green, blue]

    rolled = admin.post("/v1/environments/development/deployments/functions/svc/rollback", json={})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == blue
    assert host.client(key).post("/run/development/functions/svc", json={}).json() == {
        "release": "blue"
    }

    missing = admin.post(
        "/v1/environments/development/deployments/functions/svc/rollback", json={"version": "v0"}
    )
    assert missing.status_code == 404


def test_release_overwrites_the_target_and_leaves_the_origin(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    dev_key = setup_environment(admin, "development")
    prod_key = setup_environment(admin, "production")
    admin.put("/v1/policies/eu", json={"type": "location", "values": ["europe"]}).raise_for_status()
    deploy(
        admin, function_artifact(tmp_path, "svc", VERSIONED % "old"), "svc", env="production"
    ).raise_for_status()
    dev = deploy(
        admin, function_artifact(tmp_path, "svc", VERSIONED % "new"), "svc", policies=["eu"]
    ).json()

    released = admin.post(
        "/v1/environments/development/deployments/functions/svc/release",
        json={"target_environment": "production", "copy_policies": False},
    )
    assert released.status_code == 200, released.text
    assert released.json()["version"] == dev["version"]
    assert released.json()["settings"]["policies"] == []  # deployment-level policies not copied
    assert host.client(prod_key).post("/run/production/functions/svc", json={}).json() == {
        "release": "new"
    }
    assert host.client(dev_key).post("/run/development/functions/svc", json={}).json() == {
        "release": "new"
    }
    assert deployment(admin, "svc")["version"] == dev["version"]  # the origin is untouched

    with_policies = admin.post(
        "/v1/environments/development/deployments/functions/svc/release",
        json={"target_environment": "production", "copy_policies": True},
    )
    assert with_policies.json()["settings"]["policies"] == ["eu"]
    assert with_policies.json()["effective_policies"]["locations"] == sorted(
        ["fr", "de", "gb", "ie", "nl", "es", "it", "se", "pl", "ch"]
    )
