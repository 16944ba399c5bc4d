"""A model provider that echoes the API key in its error text: the key reaches neither the
end user, nor the execution record, nor `/v1/traces`, nor the state database."""

from __future__ import annotations

import json

from agentform.scripted_model import ScriptedModelServer
from tests.support.agents import deploy_model
from tests.support.hosts import RunningHost
from tests.support.workloads import setup_environment

URL = "/run/development/models/chat/v1/chat/completions"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def _assert_nowhere(host: RunningHost, secret: str, request_id: str) -> None:
    admin = host.admin()
    record = admin.get(f"/v1/executions/{request_id}").json()
    assert secret not in json.dumps(record) and "[redacted]" in record["error"]
    trace = admin.get(f"/v1/traces/{record['trace_id']}").text
    assert secret not in trace and json.dumps(secret)[1:-1] not in trace
    for name in ("state.db", "state.db-wal"):
        path = host.state_dir / name
        assert not path.exists() or secret.encode() not in path.read_bytes()


def test_an_upstream_error_echoing_the_key_is_redacted(
    host: RunningHost, model_server: ScriptedModelServer
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    model_server.load([{"status": 401, "text": "Incorrect API key provided: sk-test-123."}])
    response = host.client(key).post(URL, json=CHAT)
    assert response.status_code == 401, response.text
    message = response.json()["error"]["message"]
    assert "sk-test-123" not in response.text
    assert "Incorrect API key provided: [redacted]." in message
    _assert_nowhere(host, "sk-test-123", response.headers["x-agentform-request-id"])


def test_a_key_echoed_escaped_after_retries_is_redacted(
    host: RunningHost, model_server: ScriptedModelServer
) -> None:
    """The provider's JSON escapes the key's quotes; the escaped form is redacted too."""
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server, max_retries=1).raise_for_status()
    secret = 'sk-"quoted"/key+1'
    admin.put(
        "/v1/connections/chat-key",
        json={"provider": "openai-compatible", "secrets": {"api_key": secret}},
    ).raise_for_status()
    model_server.load([{"status": 503, "text": f"overloaded (key {secret})"}], cycle=True)
    response = host.client(key).post(URL, json=CHAT)
    assert response.status_code == 502, response.text
    assert secret not in response.text and json.dumps(secret)[1:-1] not in response.text
    assert "[redacted]" in response.json()["error"]["message"]
    _assert_nowhere(host, secret, response.headers["x-agentform-request-id"])
