"""Lineage of multi-hop requests, token budgets, and functions served over MCP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from agentform.scripted_model import ScriptedModelServer
from tests.support.agents import ask, deploy_agent, deploy_function, deploy_model
from tests.support.hosts import RunningHost
from tests.support.workloads import setup_environment

LOOKUP = """
def main(invoice: str) -> dict:
    \"\"\"Look an invoice up.\"\"\"
    return {"invoice": invoice, "paid": True}
"""

ADD = """
def main(a: int, b: int) -> int:
    \"\"\"Add two integers.\"\"\"
    return a + b
"""

MINUTE = 1_800_000_000  # a minute boundary


def test_a_multi_hop_request_has_a_complete_trace_tree(
    host: RunningHost, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model_server).raise_for_status()
    deploy_function(admin, tmp_path, "lookup", LOOKUP)
    deploy_agent(admin, "billing", functions=("lookup",)).raise_for_status()
    deploy_agent(admin, "triage", agents=("billing",)).raise_for_status()
    model_server.load(
        [
            {"tool_calls": [{"name": "transfer_to_billing", "arguments": {}}]},
            {"tool_calls": [{"name": "lookup", "arguments": {"invoice": "INV-7"}}]},
            {"text": "Invoice INV-7 is paid."},
        ]
    )
    response = ask(host.client(key), "triage", "Is INV-7 paid?")
    assert response.status_code == 200, response.text
    root_id = response.headers["x-agentform-request-id"]
    records = admin.get(f"/v1/traces/{response.headers['x-agentform-trace-id']}").json()[
        "executions"
    ]
    by_id = {r["request_id"]: r for r in records}

    def path_of(record: dict) -> str:  # type: ignore[type-arg]
        parent = by_id.get(record["parent_id"])
        name = f"{record['kind']}/{record['name']}"
        return f"{path_of(parent)} > {name}" if parent else name

    paths = sorted(path_of(r) for r in records)
    assert paths == sorted(
        [
            "agents/triage",
            "agents/triage > models/chat",
            "agents/triage > agents/billing",
            "agents/triage > agents/billing > models/chat",
            "agents/triage > agents/billing > models/chat",
            "agents/triage > agents/billing > functions/lookup",  # its schema, fetched once
            "agents/triage > agents/billing > functions/lookup",  # the call
        ]
    )
    assert by_id[root_id]["parent_id"] is None
    assert {r["identity"] for r in records} == {by_id[root_id]["identity"]}
    assert {r["status"] for r in records} == {"ok"}
    models = [r for r in records if r["kind"] == "models"]
    assert all(r["input_tokens"] > 0 and r["version"] for r in models)

    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentform",
            "traces",
            root_id,
            "--endpoint",
            host.url,
            "--token",
            host.token,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert lines[0].endswith(f"trace {response.headers['x-agentform-trace-id']}")

    def indent(fragment: str) -> int:
        line = next(line for line in lines if fragment in line)
        return len(line) - len(line.lstrip(" │├└─"))

    assert indent("agents/triage") < indent("agents/billing") < indent("functions/lookup")
    assert sum("models/chat" in line for line in lines) == 3
    assert "tokens" in next(line for line in lines if "models/chat" in line)


@pytest.fixture
def clocked_host(tmp_path: Path) -> Iterator[tuple[RunningHost, Path]]:
    clock = tmp_path / "clock"
    clock.write_text(str(MINUTE + 5))
    host = RunningHost(tmp_path / "state", ("--clock-file", str(clock))).start()
    try:
        yield host, clock
    finally:
        host.stop()


def _budgeted_agent(
    host: RunningHost, model_server: ScriptedModelServer, budget: dict[str, object], **usage: int
) -> str:
    """An agent under a max_tokens policy whose model reports `usage`; return an API key."""
    admin = host.admin()
    key = setup_environment(admin)
    policy = {"type": "max_tokens", "budgets": [budget]}
    admin.put("/v1/policies/small-budget", json=policy).raise_for_status()
    deploy_model(admin, model_server).raise_for_status()
    deploy_agent(admin, "chatty", settings={"policies": ["small-budget"]}).raise_for_status()
    model_server.load([{"text": "a long answer", **usage}], cycle=True)
    return key


def test_a_token_budget_refuses_after_crossing_and_recovers_next_window(
    clocked_host: tuple[RunningHost, Path], model_server: ScriptedModelServer
) -> None:
    host, clock = clocked_host
    budget = {"window": "minute", "total": 50}
    client = host.client(
        _budgeted_agent(host, model_server, budget, prompt_tokens=40, completion_tokens=20)
    )

    crossing = ask(client, "chatty", "one")
    assert crossing.status_code == 200  # the request that crosses the budget completes
    refused = ask(client, "chatty", "two")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "TokenBudgetExceeded"
    assert "60 of its 50 total tokens" in error["message"]
    assert len(model_server.requests) == 1  # the refused request never reached the model

    clock.write_text(str(MINUTE + 65))  # the next minute
    third = ask(client, "chatty", "three")
    assert third.status_code == 200, third.text
    trace = host.admin().get(f"/v1/traces/{refused.headers['x-agentform-trace-id']}").json()
    records = [(r["status"], r["error_class"]) for r in trace["executions"]]
    assert records == [("refused", "TokenBudgetExceeded")]


def test_budgets_survive_a_restart(
    clocked_host: tuple[RunningHost, Path], model_server: ScriptedModelServer
) -> None:
    host, _ = clocked_host
    budget = {"window": "minute", "output": 10}
    key = _budgeted_agent(host, model_server, budget, prompt_tokens=1, completion_tokens=10)
    assert ask(host.client(key), "chatty", "one").status_code == 200
    host.stop()
    host.start()
    assert ask(host.client(key), "chatty", "two").status_code == 429


async def _mcp(url: str, key: str) -> tuple[list, object, object]:  # type: ignore[type-arg]
    headers = {"authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        tools = (await session.list_tools()).tools
        good = await session.call_tool("add", {"a": 1, "b": 2})
        bad = await session.call_tool("add", {"a": "one"})
        return tools, good, bad


def test_functions_are_mcp_tool_servers(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_function(admin, tmp_path, "add", ADD)
    tools, good, bad = asyncio.run(_mcp(f"{host.url}/run/development/functions/add/mcp", key))
    [tool] = tools
    assert tool.name == "add" and tool.description == "Add two integers."
    assert tool.input_schema["required"] == ["a", "b"]
    assert good.is_error is not True and good.content[0].text == "3"  # type: ignore[attr-defined]
    assert good.structured_content == {"result": 3}  # type: ignore[attr-defined]
    assert bad.is_error is True and "BadArguments" in bad.content[0].text  # type: ignore[attr-defined]

    unauthenticated = httpx2.post(f"{host.url}/run/development/functions/add/mcp", json={})
    assert unauthenticated.status_code == 401
