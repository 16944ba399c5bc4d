"""The model gateway (retries, errors, Anthropic translation) and custom-code agents."""

from __future__ import annotations

from pathlib import Path

import httpx

from agentform.packaging import build_artifact
from agentform.scripted_model import ScriptedModelServer
from agentform_runtime.specs import Manifest, WorkloadKind
from tests.support.agents import ask, deploy_agent, deploy_function, deploy_model
from tests.support.hosts import RunningHost
from tests.support.workloads import deploy, setup_environment

EXAMPLE = Path(__file__).parents[2] / "examples" / "custom_agent"

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def _chat(host: RunningHost, key: str, body: dict = CHAT) -> httpx.Response:  # type: ignore[type-arg]
    return host.client(key).post("/run/development/models/chat/v1/chat/completions", json=body)


def test_provider_errors_are_retried_then_succeed(
    host: RunningHost, model_server: ScriptedModelServer
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server, max_retries=3).raise_for_status()
    # Every 5xx is retried, not only the common ones.
    model_server.load(
        [{"status": 501}, {"status": 503}, {"status": 429}, {"text": "hello after retries"}]
    )
    response = _chat(host, key)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "hello after retries"
    assert len(model_server.requests) == 4
    record = admin.get(f"/v1/executions/{response.headers['x-agentform-request-id']}").json()
    assert (
        record["input_tokens"] > 0 and record["output_tokens"] == 3
    )  # usage reaches the audit record


def test_persistent_provider_failure_is_one_clear_error(
    host: RunningHost, model_server: ScriptedModelServer
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server, max_retries=2).raise_for_status()
    model_server.load([{"status": 503, "text": "overloaded"}], cycle=True)
    response = _chat(host, key)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "UpstreamError"
    assert "failed 3 time(s)" in error["message"] and "HTTP 503" in error["message"]
    assert len(model_server.requests) == 3


def test_client_errors_from_the_provider_are_not_retried(
    host: RunningHost, model_server: ScriptedModelServer
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    model_server.load([{"status": 400, "text": "context too long"}])
    response = _chat(host, key)
    assert response.status_code == 400 and "context too long" in response.json()["error"]["message"]
    assert len(model_server.requests) == 1


def test_anthropic_translation_round_trip(
    host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server, provider="anthropic").raise_for_status()
    deploy_function(
        admin,
        tmp_path,
        "add",
        'def main(a: int, b: int) -> int:\n    """Add."""\n    return a + b\n',
    )
    deploy_agent(admin, "calc", functions=("add",), instructions="Be brief.").raise_for_status()
    model_server.load(
        [
            {
                "text": "Let me add.",
                "tool_calls": [{"name": "add", "arguments": {"a": 20, "b": 22}}],
            },
            {"text": "It is {tool_result}."},
        ]
    )
    response = ask(host.client(key), "calc", "20 + 22?")
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "It is 42."
    first, second = model_server.requests
    assert first["api"] == second["api"] == "anthropic"
    assert first["credential"] == "sk-test-123"  # sent as x-api-key
    assert first["body"]["system"] == "Be brief."
    assert first["body"]["max_tokens"] == 1024
    assert first["body"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "20 + 22?"}]}
    ]
    assert first["body"]["tools"][0]["name"] == "add"
    assert first["body"]["tools"][0]["input_schema"]["required"] == ["a", "b"]
    assistant, tool_result = second["body"]["messages"][1:]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {"type": "text", "text": "Let me add."}
    assert assistant["content"][1]["type"] == "tool_use" and assistant["content"][1]["input"] == {
        "a": 20,
        "b": 22,
    }
    assert tool_result["content"] == [
        {"type": "tool_result", "tool_use_id": assistant["content"][1]["id"], "content": "42"}
    ]


def _deploy_example(admin: httpx.Client, functions: tuple[str, ...] = ("get-weather",)) -> None:
    deploy(
        admin,
        build_artifact(
            Manifest(
                kind=WorkloadKind.FUNCTIONS, name="get-weather", entrypoint="weather:get_weather"
            ),
            EXAMPLE.parent / "quickstart" / "tools",
        ),
        "get-weather",
    ).raise_for_status()
    deploy_agent(
        admin,
        "forecaster",
        functions=functions,
        code=EXAMPLE / "agent",
        entrypoint="weather_agent:run",
    ).raise_for_status()


def test_the_custom_code_agent_example(
    host: RunningHost, model_server: ScriptedModelServer
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    _deploy_example(admin)
    model_server.load([{"text": "Paris: {last_user}"}])
    response = host.client(key).post(
        "/run/development/agents/forecaster", json={"inputs": {"city": "Paris"}}
    )
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output.startswith("Paris: Forecast: {") and "'sky': 'light rain'" in output
    assert response.json()["usage"]["total_tokens"] > 0
    records = admin.get(f"/v1/traces/{response.headers['x-agentform-trace-id']}").json()[
        "executions"
    ]
    assert sorted((r["kind"], r["name"]) for r in records) == [
        ("agents", "forecaster"),
        ("functions", "get-weather"),
        ("models", "chat"),
    ]


def test_calls_a_version_does_not_declare_are_refused_and_recorded(
    host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    _deploy_example(admin, functions=())  # the agent's code calls get-weather without declaring it
    response = host.client(key).post(
        "/run/development/agents/forecaster", json={"inputs": {"city": "Paris"}}
    )
    assert response.status_code == 500
    assert "'get_weather' is not declared" in response.json()["error"]["message"]

    # Bypassing the SDK does not help: the host itself refuses the hop.
    refuse = tmp_path / "refused_agent"
    refuse.mkdir()
    (refuse / "sneaky.py").write_text(
        "def run(inputs, ctx):\n"
        "    try:\n"
        "        return ctx.host.function('get-weather', {'city': 'Paris'})\n"
        "    except Exception as exc:\n"
        "        return {'refused': str(exc)}\n"
    )
    deploy_agent(
        admin, "sneaky", functions=(), code=refuse, entrypoint="sneaky:run"
    ).raise_for_status()
    answer = host.client(key).post("/run/development/agents/sneaky", json={"inputs": {}})
    assert "NotDeclared" in answer.json()["output"]
    records = admin.get(f"/v1/traces/{answer.headers['x-agentform-trace-id']}").json()["executions"]
    refused = next(r for r in records if r["kind"] == "functions")
    assert refused["status"] == "refused" and refused["http_status"] == 403
    assert refused["error_class"] == "NotDeclared"
    assert refused["parent_id"] == answer.headers["x-agentform-request-id"]


def test_rotating_a_connection_secret_takes_effect_at_once(
    host: RunningHost, model_server: ScriptedModelServer
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    model_server.load([{"text": "one"}, {"text": "two"}])
    assert _chat(host, key).status_code == 200  # a warm worker now holds the first key
    rotated = {"provider": "openai-compatible", "secrets": {"api_key": "sk-rotated-456"}}
    admin.put("/v1/connections/chat-key", json=rotated).raise_for_status()
    assert _chat(host, key).status_code == 200
    assert [r["credential"] for r in model_server.requests] == [
        "Bearer sk-test-123",
        "Bearer sk-rotated-456",
    ]


def test_a_connection_in_use_cannot_be_deleted(
    host: RunningHost, model_server: ScriptedModelServer
) -> None:
    admin = host.admin()
    setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    refused = admin.delete("/v1/connections/chat-key")
    assert (
        refused.status_code == 409
        and "development/models/chat" in refused.json()["error"]["message"]
    )


def test_a_handoff_cycle_is_refused(host: RunningHost, model_server: ScriptedModelServer) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    # Only the control plane can build a cycle (Pulumi resources cannot reference forward).
    deploy_agent(admin, "ping", agents=("pong",)).raise_for_status()
    deploy_agent(admin, "pong", agents=("ping",)).raise_for_status()
    model_server.load(
        [
            {"tool_calls": [{"name": "transfer_to_pong", "arguments": {}}]},
            {"tool_calls": [{"name": "transfer_to_ping", "arguments": {}}]},
        ]
    )
    response = ask(host.client(key), "ping", "loop forever")
    assert response.status_code == 508
    assert response.json()["error"]["code"] == "LoopDetected"
    records = admin.get(f"/v1/traces/{response.headers['x-agentform-trace-id']}").json()[
        "executions"
    ]
    refused = [r for r in records if r["status"] == "refused"]
    assert [(r["name"], r["error_class"]) for r in refused] == [("ping", "LoopDetected")]
