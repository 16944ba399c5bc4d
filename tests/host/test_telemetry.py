"""OpenTelemetry: every hop of a request is a GenAI span in one trace, exported over OTLP/HTTP
(JSON) to a real receiver on loopback; a collector that is down costs no request."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentform.scripted_model import ScriptedModelServer
from tests.support.agents import deploy_agent, deploy_function, deploy_model
from tests.support.hosts import RunningHost
from tests.support.otlp import OtlpReceiver
from tests.support.polling import wait_until
from tests.support.workloads import setup_environment

LOOKUP = """
def main(invoice: str) -> dict:
    \"\"\"Look an invoice up.\"\"\"
    return {"invoice": invoice, "paid": True}
"""


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fast_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosts started by this test send their batches every 50 ms (the standard variable)."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "agentform-test")


def _spans_of(receiver: OtlpReceiver, trace_id: str, count: int) -> list[dict[str, Any]]:
    """The spans of one trace once `count` have arrived (empty before)."""
    spans = [s for s in receiver.spans() if s["traceId"] == trace_id]
    return spans if len(spans) >= count else []


def _start(tmp_path: Path, endpoint: str) -> RunningHost:
    return RunningHost(tmp_path / "state", ("--otlp-endpoint", endpoint)).start()


def test_a_triage_billing_tool_request_is_one_trace_of_genai_spans(
    tmp_path: Path, model_server: ScriptedModelServer, receiver: OtlpReceiver, fast_flush: None
) -> None:
    host = _start(tmp_path, receiver.url)
    try:
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
        trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        response = host.client(key).post(
            "/run/development/agents/triage",
            json={"inputs": "Is INV-7 paid?"},
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-agentform-trace-id"] == trace_id
        records = admin.get(f"/v1/traces/{trace_id}").json()["executions"]
        assert len(records) == 7

        spans = wait_until(lambda: _spans_of(receiver, trace_id, 7))
        # The receiver has the spans before the exporter has read its answer and counted them.
        telemetry = wait_until(lambda: _counted(admin, 7))
    finally:
        host.stop()

    assert receiver.content_types[0] == "application/json"
    by_id = {s["spanId"]: s for s in spans}
    # One span per audit record, with the record's request id, version and tokens.
    for record in records:
        span = by_id[record["request_id"][:16]]
        attributes = span["attributes"]
        assert attributes["agentform.request.id"] == record["request_id"]
        assert attributes["agentform.deployment.version"] == record["version"]
        assert attributes["enduser.id"] == record["identity"]
        assert attributes["deployment.environment.name"] == "development"
        assert attributes["agentform.status"] == "ok"
        assert attributes["http.response.status_code"] == 200
        assert span["resource"]["service.name"] == "agentform-test"
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
        parent = record["parent_id"]
        assert span.get("parentSpanId") == (parent[:16] if parent else caller_span)

    def path_of(span: dict[str, Any]) -> str:
        parent = by_id.get(span.get("parentSpanId", ""))
        return f"{path_of(parent)} > {span['name']}" if parent else span["name"]

    assert sorted(path_of(s) for s in spans) == sorted(
        [
            "invoke_agent triage",
            "invoke_agent triage > chat scripted-1",
            "invoke_agent triage > invoke_agent billing",
            "invoke_agent triage > invoke_agent billing > chat scripted-1",
            "invoke_agent triage > invoke_agent billing > chat scripted-1",
            "invoke_agent triage > invoke_agent billing > execute_tool lookup",
            "invoke_agent triage > invoke_agent billing > execute_tool lookup",
        ]
    )
    root = next(s for s in spans if s["name"] == "invoke_agent triage")
    assert root["flags"] & 0x300 == 0x300  # its parent is remote: the caller's traceparent
    assert root["kind"] == 3  # CLIENT

    for span in spans:
        attributes = span["attributes"]
        operation = span["name"].split(" ", 1)[0]
        assert attributes["gen_ai.operation.name"] == operation
        if operation == "invoke_agent":
            assert attributes["gen_ai.agent.name"] == span["name"].split(" ", 1)[1]
            assert attributes["gen_ai.provider.name"] == "agentform"
            assert attributes["gen_ai.request.model"] == "scripted-1"
        elif operation == "execute_tool":
            assert attributes["gen_ai.tool.name"] == "lookup"
            assert span["kind"] == 1  # INTERNAL
        else:
            assert attributes["gen_ai.provider.name"] == "openai"  # openai-compatible
            assert attributes["gen_ai.request.model"] == "scripted-1"
            assert attributes["server.address"] == "127.0.0.1"
            assert attributes["gen_ai.usage.input_tokens"] > 0
            assert attributes["gen_ai.usage.output_tokens"] > 0
    assert telemetry["enabled"] and telemetry["dropped"] == 0
    assert telemetry["exported"] >= 7


def _counted(admin: httpx.Client, spans: int) -> dict[str, Any]:
    """/v1/telemetry once the exporter has counted `spans` as exported, else {} (not yet)."""
    telemetry: dict[str, Any] = admin.get("/v1/telemetry").json()
    return telemetry if telemetry["exported"] >= spans else {}


def test_a_refusal_is_an_error_span(
    tmp_path: Path, model_server: ScriptedModelServer, receiver: OtlpReceiver, fast_flush: None
) -> None:
    host = _start(tmp_path, receiver.url + "/v1/traces")  # a full traces URL is used as is
    code = tmp_path / "sneaky"
    code.mkdir()
    (code / "sneaky.py").write_text(
        "def run(inputs, ctx):\n"
        "    try:\n"
        "        return ctx.host.function('lookup', {'invoice': '1'})\n"
        "    except Exception as exc:\n"
        "        return {'refused': str(exc)}\n"
    )
    try:
        admin = host.admin()
        key = setup_environment(admin)
        deploy_model(admin, model_server).raise_for_status()
        deploy_function(admin, tmp_path, "lookup", LOOKUP)
        deploy_agent(admin, "sneaky", code=code, entrypoint="sneaky:run").raise_for_status()
        answer = host.client(key).post("/run/development/agents/sneaky", json={"inputs": {}})
        assert "NotDeclared" in answer.json()["output"]
        trace_id = answer.headers["x-agentform-trace-id"]

        spans = wait_until(lambda: _spans_of(receiver, trace_id, 2))
    finally:
        host.stop()
    refused = next(s for s in spans if s["name"] == "execute_tool lookup")
    agent = next(s for s in spans if s["name"] == "invoke_agent sneaky")
    assert refused["parentSpanId"] == agent["spanId"]
    assert "parentSpanId" not in agent  # no traceparent came in: the agent's span is the root
    assert refused["status"]["code"] == 2  # ERROR
    assert refused["attributes"]["agentform.status"] == "refused"
    assert refused["attributes"]["error.type"] == "NotDeclared"
    assert refused["attributes"]["http.response.status_code"] == 403
    assert agent["attributes"]["agentform.status"] == "ok"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_collector_that_is_down_costs_no_request(tmp_path: Path, fast_flush: None) -> None:
    host = _start(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    try:
        admin = host.admin()
        key = setup_environment(admin)
        deploy_function(admin, tmp_path, "lookup", LOOKUP)
        client = host.client(key)
        statuses = [
            client.post("/run/development/functions/lookup", json={"invoice": str(n)}).status_code
            for n in range(30)
        ]
        assert statuses == [200] * 30
        telemetry = wait_until(
            lambda: (t := admin.get("/v1/telemetry").json())["dropped"] >= 30 and t
        )
    finally:
        host.stop()
    assert telemetry["exported"] == 0
    assert telemetry["dropped_export_failed"] >= 30
    assert "ConnectError" in (telemetry["last_error"] or "")


def test_nothing_is_exported_without_an_endpoint(host: RunningHost) -> None:
    assert host.admin().get("/v1/telemetry").json() == {
        "enabled": False,
        "endpoint": None,
        "exported": 0,
        "queued": 0,
        "dropped": 0,
        "dropped_queue_full": 0,
        "dropped_export_failed": 0,
        "failed_exports": 0,
        "last_error": None,
    }
