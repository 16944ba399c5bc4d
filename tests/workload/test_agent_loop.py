"""Declarative agents over the real host and real workers, with a scripted model server."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from pathlib import Path

from agentform.scripted_model import ScriptedModelServer
from tests.support.agents import ask, deploy_agent, deploy_function, deploy_model
from tests.support.hosts import RunningHost
from tests.support.workloads import setup_environment

ADD = """
def main(a: int, b: int) -> dict:
    \"\"\"Add two integers.\"\"\"
    return {"sum": a + b}
"""

RENDEZVOUS = """
import os, socket

def main(port: int, me: str) -> dict:
    \"\"\"Wait (bounded) for the peer call to start: succeeds only when both run at once.\"\"\"
    # A barrier on loopback (workers share the network, not the files): it answers once both
    # calls are connected.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as barrier:
        if barrier.recv(2) != b"go":
            raise TimeoutError(f"the other call never started while {me} was running")
    return {"me": me, "worker": int(os.environ["AGENTFORM_WORKER"])}
"""


class Barrier:
    """A TCP server that answers `go` to every connection once `parties` are connected."""

    def __init__(self, parties: int = 2) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(30)
        self.port = self.server.getsockname()[1]
        self.parties = parties
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        connections: list[socket.socket] = []
        with contextlib.suppress(OSError):
            while len(connections) < self.parties:
                connections.append(self.server.accept()[0])
            for connection in connections:
                connection.sendall(b"go")
        for connection in connections:
            connection.close()
        self.server.close()


BROKEN = """
def main(query: str) -> dict:
    raise ConnectionError("inventory database unreachable")
"""

WHOAMI = """
import os
from agentform_runtime.workload.context import Context

def main(ctx: Context) -> dict:
    return {"identity": ctx.identity, "sees_credentials": "AGENTFORM_CONNECTION" in os.environ}
"""


def _tool_message(request: dict) -> list[dict]:  # type: ignore[type-arg]
    return [m for m in request["body"]["messages"] if m["role"] == "tool"]


def test_agent_calls_a_function_and_answers(
    host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    deploy_function(admin, tmp_path, "add", ADD)
    deploy_agent(
        admin, "calc", functions=("add",), instructions="You add numbers."
    ).raise_for_status()
    model_server.load(
        [
            {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
            {"text": "The result is {tool_result}."},
        ]
    )

    response = ask(host.client(key), "calc", "What is 2 + 3?")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["output"] == 'The result is {"sum": 5}.'
    assert answer["agent"] == "calc" and answer["steps"] == 2
    assert answer["usage"]["total_tokens"] > 0
    assert answer["request_id"] == response.headers["x-agentform-request-id"]

    first, second = model_server.requests
    assert first["credential"] == "Bearer sk-test-123"  # the connection's key reached the provider
    assert first["body"]["model"] == "scripted-1"
    assert first["body"]["messages"][0] == {"role": "system", "content": "You add numbers."}
    [tool] = first["body"]["tools"]
    assert (
        tool["function"]["name"] == "add" and tool["function"]["description"] == "Add two integers."
    )
    assert tool["function"]["parameters"]["required"] == ["a", "b"]
    [result] = _tool_message(second)
    assert json.loads(result["content"]) == {"sum": 5}


def test_two_tool_calls_in_one_turn_run_concurrently(
    host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    deploy_function(admin, tmp_path, "meet", RENDEZVOUS)
    deploy_agent(admin, "pair", functions=("meet",)).raise_for_status()
    barrier = Barrier(parties=2)
    model_server.load(
        [
            {
                "tool_calls": [
                    {"name": "meet", "arguments": {"port": barrier.port, "me": "left"}},
                    {"name": "meet", "arguments": {"port": barrier.port, "me": "right"}},
                ]
            },
            {"text": "{tool_result}"},
        ]
    )
    response = ask(host.client(key), "pair", "meet")
    assert response.status_code == 200, response.text
    results = [json.loads(m["content"]) for m in _tool_message(model_server.requests[1])]
    # Each call waited for the other to start: run one after the other, both would fail.
    assert [r["me"] for r in results] == ["left", "right"]
    assert results[0]["worker"] != results[1]["worker"]


def test_a_handoff_returns_the_chained_agents_answer(
    host: RunningHost, model_server: ScriptedModelServer
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    deploy_agent(admin, "billing", instructions="You handle invoices.").raise_for_status()
    deploy_agent(
        admin,
        "triage",
        agents=("billing",),
        instructions="Route requests.",
        handoffs={"billing": "Questions about invoices and payments."},
    ).raise_for_status()
    model_server.load(
        [
            {"tool_calls": [{"name": "transfer_to_billing", "arguments": {}}]},
            {"text": "Your invoice was paid on 3 March."},
        ]
    )
    response = ask(host.client(key), "triage", "Was my invoice paid?")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["output"] == "Your invoice was paid on 3 March."
    assert answer["agent"] == "billing" and answer["handoffs"] == ["billing"]
    triage_request, billing_request = model_server.requests
    [transfer] = triage_request["body"]["tools"]
    assert transfer["function"]["name"] == "transfer_to_billing"
    assert transfer["function"]["description"] == "Questions about invoices and payments."
    assert billing_request["body"]["messages"] == [
        {"role": "system", "content": "You handle invoices."},
        {"role": "user", "content": "Was my invoice paid?"},
    ]


def test_max_steps_is_a_clear_error(
    host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    deploy_function(admin, tmp_path, "add", ADD)
    deploy_agent(admin, "loopy", functions=("add",), max_steps=3).raise_for_status()
    model_server.load(
        [{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 1}}]}], cycle=True
    )
    response = ask(host.client(key), "loopy", "never stop")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "MaxStepsExceeded" and "max_steps=3" in error["message"]
    assert len(model_server.requests) == 3


def test_tool_errors_go_back_to_the_model_and_are_recorded(
    host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    deploy_function(admin, tmp_path, "lookup", BROKEN)
    deploy_function(admin, tmp_path, "add", ADD)
    deploy_agent(admin, "clerk", functions=("lookup", "add")).raise_for_status()
    model_server.load(
        [
            {
                "tool_calls": [
                    {"name": "lookup", "arguments": {"query": "widgets"}},
                    {"name": "add", "arguments": {"a": "two", "b": 3}},
                ]
            },
            {"text": "Sorry: {tool_result}"},
        ]
    )
    response = ask(host.client(key), "clerk", "How many widgets?")
    assert response.status_code == 200, response.text
    raised, bad_arguments = (
        json.loads(m["content"])["error"] for m in _tool_message(model_server.requests[1])
    )
    assert raised == {
        "code": "FunctionRaised",
        "message": "inventory database unreachable",
    }
    assert bad_arguments["code"] == "BadArguments" and bad_arguments["message"].startswith("a:")
    records = admin.get(f"/v1/traces/{response.headers['x-agentform-trace-id']}").json()[
        "executions"
    ]
    by_name = {(r["kind"], r["name"], r["status"]) for r in records}
    assert ("functions", "lookup", "error") in by_name and ("functions", "add", "error") in by_name
    failed = next(r for r in records if r["name"] == "lookup" and r["http_status"] == 500)
    assert failed["error_class"] == "FunctionRaised"


def test_identity_reaches_functions_but_credentials_do_not(
    host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    deploy_function(admin, tmp_path, "whoami", WHOAMI)
    deploy_agent(admin, "mirror", functions=("whoami",)).raise_for_status()
    model_server.load(
        [{"tool_calls": [{"name": "whoami", "arguments": {}}]}, {"text": "{tool_result}"}]
    )
    response = ask(host.client(key), "mirror", "who am I?")
    key_id = admin.get("/v1/environments/development/api-keys").json()[0]["id"]
    assert json.loads(response.json()["output"]) == {
        "identity": f"api-key:{key_id}",
        "sees_credentials": False,
    }
