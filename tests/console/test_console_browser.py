"""The console in a real headless browser: sign in, read a deployment, change it, read the
executions and a trace, sign out; no console errors on any page; a screenshot of each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect

from agentform.scripted_model import ScriptedModelServer
from tests.support.agents import ask, deploy_agent, deploy_function, deploy_model
from tests.support.hosts import RunningHost
from tests.support.workloads import deployment, setup_environment

LOOKUP = """
def main(invoice: str) -> dict:
    \"\"\"Look an invoice up.\"\"\"
    print("looking up", invoice, flush=True)
    return {"invoice": invoice, "paid": True}
"""


class Scenario:
    """A host with triage -> billing -> lookup, lookup in two versions, one answered
    multi-hop request and one request refused by a token budget."""

    def __init__(self, host: RunningHost, model_server: ScriptedModelServer, workdir: Path):
        admin = host.admin()
        self.host = host
        self.admin = admin
        key = setup_environment(admin)
        admin.put("/v1/policies/europe", json={"type": "location", "values": ["europe"]})
        admin.put(
            "/v1/policies/small-budget",
            json={"type": "max_tokens", "budgets": [{"window": "day", "total": 50}]},
        ).raise_for_status()
        admin.put("/v1/environments/development", json={"policies": ["europe"]}).raise_for_status()
        deploy_model(admin, model_server).raise_for_status()
        deploy_function(admin, workdir, "lookup", LOOKUP.replace("looking", "first, looking"))
        deploy_function(admin, workdir, "lookup", LOOKUP)
        deploy_agent(admin, "billing", functions=("lookup",)).raise_for_status()
        deploy_agent(admin, "triage", agents=("billing",)).raise_for_status()
        deploy_agent(admin, "chatty", settings={"policies": ["small-budget"]}).raise_for_status()
        model_server.load(
            [
                {"tool_calls": [{"name": "transfer_to_billing", "arguments": {}}]},
                {"tool_calls": [{"name": "lookup", "arguments": {"invoice": "INV-7"}}]},
                {"text": "Invoice INV-7 is paid."},
            ]
        )
        client = host.client(key)
        answered = ask(client, "triage", "Is INV-7 paid?")
        assert answered.status_code == 200, answered.text
        self.trace_id = answered.headers["x-agentform-trace-id"]
        model_server.load(
            [{"text": "a long answer", "prompt_tokens": 40, "completion_tokens": 20}], cycle=True
        )
        assert ask(client, "chatty", "one").status_code == 200  # crosses the budget
        refused = ask(client, "chatty", "two")
        assert refused.status_code == 429, refused.text
        self.refused_trace_id = refused.headers["x-agentform-trace-id"]
        self.identity = admin.get(f"/v1/traces/{self.trace_id}").json()["executions"][0]["identity"]

    def lookup(self) -> dict[str, object]:
        found: dict[str, object] = deployment(self.admin, "lookup")
        return found


@pytest.fixture
def scenario(host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path) -> Scenario:
    return Scenario(host, model_server, tmp_path)


class Watched:
    """A page whose console errors and uncaught exceptions are collected."""

    def __init__(self, page: Page, artifacts: Path, name: str) -> None:
        self.page = page
        self.artifacts = artifacts
        self.name = name
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("dialog", self._confirm)
        self.dialogs: list[str] = []

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")

    def _confirm(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    def shot(self, label: str) -> None:
        self.page.screenshot(path=str(self.artifacts / f"{self.name}-{label}.png"), full_page=True)


@pytest.fixture
def watched(browser: Browser, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    watching = Watched(page, artifacts, request.node.name.removeprefix("test_"))
    try:
        yield watching
    finally:
        context.close()
    assert watching.errors == [], "the console logged errors"


def sign_in(watched: Watched, host: RunningHost) -> Page:
    page = watched.page
    page.goto(f"{host.url}/console")
    expect(page).to_have_url(f"{host.url}/console/login?next=%2Fconsole")
    page.fill("#token", host.token)
    page.click("form.login button")
    expect(page).to_have_url(f"{host.url}/console")
    return page


def test_sign_in_deployment_changes_executions_and_trace(
    scenario: Scenario, host: RunningHost, watched: Watched
) -> None:
    page = watched.page

    # A wrong token is refused, on the page.
    page.goto(f"{host.url}/console")
    watched.shot("login")
    page.fill("#token", "not-the-token")
    page.click("form.login button")
    expect(page.locator("#login-error")).to_have_text("the admin token is not valid")
    # The browser reports the refused post itself (a 401) as an error: that one is expected.
    expected = "error: Failed to load resource: the server responded with a status of 401"
    assert expected in "".join(watched.errors[:1]), watched.errors
    watched.errors = [e for e in watched.errors if not e.startswith(expected)]
    watched.shot("login-refused")

    # Sign in: environments with their policies, and every deployment.
    page.fill("#token", host.token)
    page.click("form.login button")
    expect(page).to_have_url(f"{host.url}/console")
    environments = page.locator("#environments")
    expect(environments).to_contain_text("development")
    expect(environments).to_contain_text("europe")
    expect(environments).to_contain_text('"location"')
    for workload in ("agents/triage", "agents/billing", "functions/lookup", "models/chat"):
        expect(page.locator("#deployments")).to_contain_text(workload)
    watched.shot("overview")

    # One deployment: status, versions, settings, effective policies, figures and its log.
    before = scenario.lookup()
    page.click("#deployments >> text=functions/lookup")
    expect(page.locator("#status")).to_have_text("live")
    expect(page.locator("#live-version")).to_have_text(str(before["version"]))
    expect(page.locator("#previous-version")).to_have_text(str(before["previous_version"]))
    expect(page.locator("#settings")).to_contain_text('"memory_mb"')
    expect(page.locator("#effective-policies")).to_contain_text('"fr"')
    expect(page.locator("svg.chart")).to_have_count(4)
    expect(page.locator("#fig-requests")).to_have_text("2")  # its schema, then the call
    expect(page.locator("#log")).to_contain_text("looking up INV-7")
    watched.shot("deployment")

    # Deactivate, then activate again: each asks first.
    page.click("button[data-action=deactivate]")
    expect(page.locator("#status")).to_have_text("disabled")
    expect(page.locator("#done")).to_contain_text("Deactivate")
    assert scenario.lookup()["status"] == "disabled"
    assert watched.dialogs[-1].startswith("Deactivate functions/lookup on development?")
    watched.shot("deactivated")
    page.click("button[data-action=activate]")
    expect(page.locator("#status")).to_have_text("live")
    assert scenario.lookup()["status"] == "live"
    assert watched.dialogs[-1].startswith("Activate functions/lookup on development?")

    # Roll back to the previous version.
    page.click(".actions button[data-action=rollback]")
    expect(page.locator("#live-version")).to_have_text(str(before["previous_version"]))
    after = scenario.lookup()
    assert after["version"] == before["previous_version"]
    assert after["previous_version"] == before["version"]
    assert watched.dialogs[-1].startswith("Roll functions/lookup on development back to")
    watched.shot("rolled-back")

    # Another window: htmx swaps the figures and keeps the address shareable.
    page.select_option("#window", "24h")
    expect(page).to_have_url(
        f"{host.url}/console/deployments/development/functions/lookup?window=24h"
    )
    expect(page.locator("#fig-requests")).to_have_text("2")

    # Its executions, one link away.
    page.click("#executions-link")
    expect(page.locator("tr.execution")).to_have_count(2)
    expect(page.locator("select[name=workload]")).to_have_value("functions/lookup")

    # Executions, filtered by status, workload, environment and end user.
    page.click("header nav >> text=Executions")
    expect(page.locator("tr.execution").first).to_be_visible()
    page.select_option("select[name=status]", "refused")
    expect(page.locator("tr.execution")).to_have_count(1)
    expect(page.locator("tr.execution")).to_contain_text("agents/chatty")
    page.select_option("select[name=status]", "")
    page.select_option("select[name=workload]", "agents/triage")
    expect(page.locator("tr.execution")).to_have_count(1)
    page.select_option("select[name=environment]", "development")
    page.fill("input[name=identity]", scenario.identity)
    page.click("form.filters button")
    expect(page.locator("tr.execution")).to_have_count(1)
    page.fill("input[name=identity]", "somebody-else")
    page.click("form.filters button")
    expect(page.locator("tr.execution")).to_have_count(0)
    watched.shot("executions")

    # The trace of the multi-hop request: every hop, nested, with tokens and identity.
    page.goto(f"{host.url}/console/executions?workload=agents%2Ftriage")
    page.click("tr.execution >> a[href^='/console/traces/']")
    expect(page).to_have_url(f"{host.url}/console/traces/{scenario.trace_id}")
    hops = page.locator("tr.hop")
    expect(hops).to_have_count(7)
    depth = {"agents/triage": "0", "agents/billing": "1", "functions/lookup": "2"}
    for workload, level in depth.items():
        expect(page.locator(f"tr.hop[data-workload='{workload}']").first).to_have_attribute(
            "data-depth", level
        )
    expect(page.locator("tr.hop[data-workload='models/chat']")).to_have_count(3)
    expect(page.locator("tr.hop[data-workload='functions/lookup']")).to_have_count(2)
    expect(page.locator("#trace-summary")).to_contain_text(scenario.identity)
    models = [
        r
        for r in scenario.admin.get(f"/v1/traces/{scenario.trace_id}").json()["executions"]
        if r["kind"] == "models"
    ]
    tokens = f"{sum(r['input_tokens'] for r in models)} / {sum(r['output_tokens'] for r in models)}"
    expect(page.locator("#trace-tokens")).to_have_text(tokens)
    indents = []  # the tree is drawn: each level further right than its parent
    for workload in depth:
        link = page.locator(f"tr.hop[data-workload='{workload}'] td a").first
        box = link.bounding_box()
        assert box is not None
        indents.append(box["x"])
    assert indents == sorted(indents) and len(set(indents)) == 3, indents
    expect(page.locator("tr.hop-ok")).to_have_count(7)
    watched.shot("trace")

    # The refused request's trace shows the refusal and why.
    page.goto(f"{host.url}/console/traces/{scenario.refused_trace_id}")
    expect(page.locator("tr.hop-refused")).to_have_count(1)
    expect(page.locator(".refusal")).to_contain_text("TokenBudgetExceeded")
    watched.shot("trace-refused")

    # Sign out: the pages need signing in again.
    page.click("header .signout button")
    expect(page).to_have_url(f"{host.url}/console/login")
    page.goto(f"{host.url}/console/traces/{scenario.trace_id}")
    expect(page.locator("#token")).to_be_visible()


def test_reading_and_changing_without_javascript(
    scenario: Scenario, host: RunningHost, browser: Browser, artifacts: Path
) -> None:
    """Every page reads without JavaScript; a change is confirmed on a page instead of a
    dialog."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{host.url}/console")
        page.fill("#token", host.token)
        page.click("form.login button")
        page.goto(f"{host.url}/console/traces/{scenario.trace_id}")
        expect(page.locator("tr.hop")).to_have_count(7)
        page.goto(f"{host.url}/console/deployments/development/functions/lookup")
        expect(page.locator("svg.chart")).to_have_count(4)
        page.click("button[data-action=deactivate]")
        expect(page.locator("h1")).to_have_text("Deactivate functions/lookup on development?")
        page.screenshot(path=str(artifacts / "nojs-confirm.png"), full_page=True)
        assert scenario.lookup()["status"] == "live"  # not before it is confirmed
        page.click("main form button[type=submit]")
        expect(page.locator("#status")).to_have_text("disabled")
        assert scenario.lookup()["status"] == "disabled"
    finally:
        context.close()
    assert httpx.get(f"{host.url}/health").status_code == 200
