"""Agentform's resources under the real Pulumi engine, against a real host."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentform.scripted_model import ScriptedModelServer
from tests.support.engine import PulumiProject, change_summary
from tests.support.hosts import RunningHost

SECRET = "sk-engine-test-0123456789"

TOOL_V1 = (
    'def main(text: str = "") -> dict:\n    """Echo."""\n    return {"echo": text, "release": 1}\n'
)
TOOL_V2 = (
    'def main(text: str = "") -> dict:\n    """Echo."""\n    return {"echo": text, "release": 2}\n'
)


def _stack(
    project_for: Any, tmp_path: Path, model_server: ScriptedModelServer
) -> tuple[PulumiProject, Path]:
    code = tmp_path / "tool"
    code.mkdir()
    (code / "tool.py").write_text(TOOL_V1)
    project = project_for("stack")
    project.config("code_dir", str(code))
    project.config("test_model_url", f"{model_server.url}/v1")
    project.config("api_key", SECRET, secret=True)
    return project, code


def _key(host: RunningHost, environment: str = "development") -> str:
    return str(host.admin().post(f"/v1/environments/{environment}/api-keys").json()["key"])


def test_stack_lifecycle(
    project_for: Any, host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    project, code = _stack(project_for, tmp_path, model_server)
    admin = host.admin()

    preview = change_summary(project.preview())
    assert (
        preview["create"] == 10
    )  # stack, policy, environment, connection, 3 workloads, 3 deployments
    assert admin.get("/v1/environments").json() == []  # preview changed nothing on the host

    assert change_summary(project.up())["create"] == 10
    outputs = project.outputs()
    assert outputs["helper_url"] == f"{host.url}/run/development/agents/helper"
    assert outputs["effective_policies"]["locations"] == [
        "ch",
        "de",
        "es",
        "fr",
        "gb",
        "ie",
        "it",
        "nl",
        "pl",
        "se",
    ]
    key = _key(host)
    run = httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=60)
    model_server.load(
        [{"tool_calls": [{"name": "echo", "arguments": {"text": "hi"}}]}, {"text": "{tool_result}"}]
    )
    answer = run.post(outputs["helper_url"], json={"inputs": "say hi"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == '{"echo": "hi", "release": 1}'
    assert model_server.requests[0]["credential"] == f"Bearer {SECRET}"

    again = change_summary(project.up())
    assert again["same"] == 10 and again["update"] == 0 and again["create"] == 0

    # New code: the function and its deployment update in place, blue-green, under traffic.
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            statuses.append(run.post(outputs["echo_url"], json={"text": "x"}).status_code)

    (code / "tool.py").write_text(TOOL_V2)
    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        updated = change_summary(project.up())
    finally:
        stop.set()
        sender.join(timeout=60)
    assert updated["update"] == 2 and updated["create"] == 0 and updated["delete"] == 0
    assert statuses and set(statuses) == {200}, statuses
    assert run.post(outputs["echo_url"], json={"text": "x"}).json()["release"] == 2
    new_outputs = project.outputs()
    assert new_outputs["echo_version"] != outputs["echo_version"]
    deployment = admin.get("/v1/environments/development/deployments/functions/echo").json()
    assert deployment["version"] == new_outputs["echo_version"]
    assert deployment["previous_version"] == outputs["echo_version"]

    # Deactivate and bring back.
    project.config("enabled", "false")
    assert change_summary(project.up())["update"] == 1
    refused = run.post(outputs["helper_url"], json={"inputs": "hi"})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "DeploymentDisabled"
    project.config("enabled", "true")
    project.up()
    model_server.load([{"text": "back"}])
    assert run.post(outputs["helper_url"], json={"inputs": "hi"}).json()["output"] == "back"

    # Out of band: a deployment deleted and another disabled on the host; refresh sees both.
    assert (
        admin.delete("/v1/environments/development/deployments/functions/echo").status_code == 204
    )
    view = admin.get("/v1/environments/development/deployments/agents/helper").json()
    disabled = {**view["settings"], "enabled": False}
    admin.put(
        "/v1/environments/development/deployments/agents/helper", json=disabled
    ).raise_for_status()
    refresh = project.refresh()
    refreshed = change_summary(refresh)
    changed = [e["resOutputsEvent"]["metadata"] for e in refresh.events() if "resOutputsEvent" in e]
    assert refreshed["delete"] == 1 and refreshed["update"] == 1, [
        (m["urn"].rsplit("::", 1)[1], m["op"], m.get("diffs")) for m in changed if m["op"] != "same"
    ]
    repaired = change_summary(project.up())
    assert repaired["create"] == 1 and repaired["update"] == 1  # recreated, and re-enabled
    assert run.post(outputs["echo_url"], json={"text": "x"}).status_code == 200
    assert (
        admin.get("/v1/environments/development/deployments/agents/helper").json()["status"]
        == "live"
    )

    # The connection's secret never appears in plain text in the state.
    exported = project.run("stack", "export", check=True).stdout
    assert SECRET not in exported
    assert "secret_keys" in exported

    project.destroy()
    assert admin.get("/v1/environments").json() == []
    assert admin.get("/v1/policies/europe").status_code == 404
    assert admin.get("/v1/connections/llm-key").status_code == 404


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("name", "Environment: name: 'Not_DNS_Safe' is not a valid name"),
        ("memory", "memory_mb: Input should be greater than or equal to 128"),
        ("timeout", "timeout_s: Input should be less than or equal to 900"),
        ("policy-type", "type: Input should be 'location', 'flavor' or 'max_tokens'"),
        ("policy-values", "unknown location value(s) ['atlantis']"),
        (
            "model-provider",
            "ModelApi 'chat': provider: "
            "Input should be 'openai', 'anthropic' or 'openai-compatible'",
        ),
        ("chained-self", "agents: an agent cannot be chained to itself"),
        ("policy-conflict", "location policies leave nothing allowed"),
    ],
)
def test_bad_inputs_fail_at_preview(
    project_for: Any, host: RunningHost, tmp_path: Path, case: str, message: str
) -> None:
    code = tmp_path / "tool"
    code.mkdir()
    (code / "tool.py").write_text(TOOL_V1)
    project = project_for("invalid")
    project.config("case", case)
    project.config("code_dir", str(code))
    result = project.preview(check=False)
    assert result.returncode != 0
    assert message in result.output, result.output[-3000:]
    assert "Traceback" not in result.output
    assert host.admin().get("/v1/environments").json() == []


def test_an_unreachable_host_is_one_clear_line(project_for: Any, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    project = project_for("environment")
    project.config("agentform:endpoint", f"http://127.0.0.1:{port}")
    result = project.up(check=False)
    assert result.returncode != 0
    expected = f"no Agentform host at http://127.0.0.1:{port}; start one with `agentform serve`"
    assert expected in result.output
    assert "Traceback" not in result.output


def test_the_quickstart_program(
    project_for: Any, host: RunningHost, model_server: ScriptedModelServer
) -> None:
    import json

    repo = Path(__file__).parents[2]
    script = json.loads((repo / "examples" / "quickstart" / "test-model-script.json").read_text())
    model_server.load(script["steps"], cycle=script["cycle"])
    project = project_for("quickstart-program", program_dir=repo / "examples" / "quickstart")
    project.config("test_model_url", f"{model_server.url}/v1")
    assert change_summary(project.up())["create"] == 9
    url = project.outputs()["url"]
    assert url == f"{host.url}/run/{project.stack}/agents/assistant"  # named after the stack
    answer = httpx.post(
        url,
        json={"inputs": "Weather in Paris?"},
        headers={"authorization": f"Bearer {_key(host, project.stack)}"},
    )
    assert answer.status_code == 200, answer.text
    assert '"sky": "light rain"' in answer.json()["output"]
    assert change_summary(project.up())["same"] == 9
