"""The same cases on `local` and on `aws` (moto + the test-only router + AWS's runtime
emulator running the exact zips), with the same answers, refusals and lineage."""

from __future__ import annotations

import json
import threading
from typing import Any

import jwt

from agentform.scripted_model import ScriptedModelServer
from tests.aws_runtime.platforms import (
    JWT_SECRET,
    AwsPlatform,
    LocalPlatform,
    Platform,
    jwt_for,
)
from tests.support.polling import wait_until

INVOICE_TOTAL = """
def main(invoice: str, lines: list[int]) -> dict:
    \"\"\"Total an invoice's lines, in cents.\"\"\"
    return {"invoice": invoice, "total_cents": sum(lines) * 3 + 7}
"""

SNEAKY = """
def run(inputs, ctx):
    try:
        return ctx.host.function("invoice-total", {"invoice": "INV-1", "lines": [1]})
    except Exception as exc:
        return {"refused": str(exc)}
"""

WHOAMI = """
def run(inputs, ctx):
    return {"identity": ctx.identity}
"""

HANDOFF_TREE = sorted(
    [
        "agents/triage",
        "agents/triage > models/chat",
        "agents/triage > agents/billing",
        "agents/triage > agents/billing > models/chat",
        "agents/triage > agents/billing > models/chat",
        "agents/triage > agents/billing > functions/invoice-total",  # its schema, fetched once
        "agents/triage > agents/billing > functions/invoice-total",  # the call
    ]
)


def tree(records: list[dict[str, Any]]) -> list[str]:
    """Each record as its path from the root: the shape of the lineage tree."""
    by_id = {r["request_id"]: r for r in records}

    def path_of(record: dict[str, Any]) -> str:
        parent = by_id.get(record["parent_id"])
        name = f"{record['kind']}/{record['name']}"
        return f"{path_of(parent)} > {name}" if parent else name

    return sorted(path_of(r) for r in records)


def _handoff(platform: Platform, model_server: ScriptedModelServer) -> Any:
    platform.model(model_server)
    platform.function("invoice-total", INVOICE_TOTAL)
    platform.agent("billing", functions=("invoice-total",), instructions="You handle invoices.")
    platform.agent(
        "triage",
        agents=("billing",),
        instructions="Route requests.",
        handoffs={"billing": "Questions about invoices."},
    )
    model_server.load(
        [
            {"tool_calls": [{"name": "transfer_to_billing", "arguments": {}}]},
            {
                "tool_calls": [
                    {
                        "name": "invoice-total",
                        "arguments": {"invoice": "INV-7", "lines": [100, 250, 31]},
                    }
                ]
            },
            {"text": "Invoice INV-7 comes to {tool_result}."},
        ]
    )
    return platform.ask("triage", platform.api_key(), "How much is INV-7?")


def test_a_triage_agent_hands_over_to_billing_which_calls_a_tool(
    platform: Platform, model_server: ScriptedModelServer
) -> None:
    response = _handoff(platform, model_server)
    assert response.status_code == 200, response.text
    answer = response.json()
    computed = {"invoice": "INV-7", "total_cents": (100 + 250 + 31) * 3 + 7}
    assert answer["output"] == f"Invoice INV-7 comes to {json.dumps(computed)}."
    assert answer["agent"] == "billing" and answer["handoffs"] == ["billing"]
    assert answer["usage"]["total_tokens"] > 0
    assert answer["request_id"] == response.headers["x-agentform-request-id"]
    assert model_server.requests[0]["credential"] == "Bearer sk-test-123"

    records = platform.trace(response.headers["x-agentform-trace-id"])
    assert tree(records) == HANDOFF_TREE
    assert {r["status"] for r in records} == {"ok"}
    assert len({r["trace_id"] for r in records}) == 1
    assert {r["identity"] for r in records} == {"api-key:" + _key_id(platform, records)}
    assert all(r["input_tokens"] > 0 and r["version"] for r in records if r["kind"] == "models")


def _key_id(platform: Platform, records: list[dict[str, Any]]) -> str:
    identity = str(records[0]["identity"])
    assert identity.startswith("api-key:key_"), identity
    return identity.removeprefix("api-key:")


def test_lineage_tree_has_the_same_shape_on_both(
    local_platform: LocalPlatform,
    aws_platform: AwsPlatform,
    model_server: ScriptedModelServer,
) -> None:
    shapes = []
    for platform in (local_platform, aws_platform):
        response = _handoff(platform, model_server)
        assert response.status_code == 200, (platform.name, response.text)
        records = platform.trace(response.headers["x-agentform-trace-id"])
        shapes.append(
            sorted(
                (path, r["status"], r["http_status"], r["path"], r["kind"] == "models")
                for path, r in zip(tree(records), _in_tree_order(records), strict=True)
            )
        )
        assert {key for r in records for key in r} >= {
            "request_id",
            "trace_id",
            "parent_id",
            "environment",
            "kind",
            "name",
            "version",
            "path",
            "identity",
            "started",
            "duration_ms",
            "status",
            "http_status",
            "error_class",
            "error",
            "input_tokens",
            "output_tokens",
        }
    local, aws = shapes
    assert local == aws
    assert [path for path, *_ in local] == HANDOFF_TREE


def _in_tree_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records in the order `tree` sorts their paths."""
    by_id = {r["request_id"]: r for r in records}

    def path_of(record: dict[str, Any]) -> str:
        parent = by_id.get(record["parent_id"])
        name = f"{record['kind']}/{record['name']}"
        return f"{path_of(parent)} > {name}" if parent else name

    return sorted(records, key=path_of)


def test_an_undeclared_call_is_refused_and_recorded(
    platform: Platform, model_server: ScriptedModelServer
) -> None:
    platform.model(model_server)
    platform.function("invoice-total", INVOICE_TOTAL)
    platform.agent("sneaky", code=SNEAKY)  # declares no function, calls one anyway
    response = platform.ask("sneaky", platform.api_key(), {})
    assert response.status_code == 200, response.text
    refusal = response.json()["output"]
    assert (
        "NotDeclared" in refusal
        and "agents/sneaky does not declare functions/invoice-total" in (refusal)
    )
    records = platform.trace(response.headers["x-agentform-trace-id"])
    assert tree(records) == ["agents/sneaky", "agents/sneaky > functions/invoice-total"]
    refused = next(r for r in records if r["kind"] == "functions")
    assert (refused["status"], refused["http_status"], refused["error_class"]) == (
        "refused",
        403,
        "NotDeclared",
    )
    root = next(r for r in records if r["kind"] == "agents")
    assert refused["parent_id"] == root["request_id"] and root["status"] == "ok"


def test_end_users_with_api_keys_and_jwts(
    platform: Platform, model_server: ScriptedModelServer
) -> None:
    platform.model(model_server)
    platform.agent("whoami", code=WHOAMI)

    def status(token: str | None) -> tuple[int, str]:
        response = platform.ask("whoami", token or "", {})
        if response.status_code != 200:
            return response.status_code, response.json()["error"]["code"]
        return 200, response.json()["output"]

    key_answer = status(platform.api_key())
    assert key_answer[0] == 200 and '"identity": "api-key:key_' in key_answer[1]
    assert status(jwt_for("alice")) == (200, json.dumps({"identity": "alice"}))
    assert status(jwt_for("bob", environments=["development"])) == (
        200,
        json.dumps({"identity": "bob"}),
    )
    assert status(None) == (401, "Unauthorized")
    assert status("afk_not-a-key-of-this-environment") == (401, "Unauthorized")
    # A key of another environment: 403 with the local host's message, on both platforms.
    foreign = platform.ask("whoami", platform.foreign_api_key(), {})
    assert foreign.status_code == 403, foreign.text
    assert foreign.json()["error"]["message"] == (
        "this API key belongs to environment 'production', not 'development'"
    )
    assert status(jwt_for("mallory", secret="another-secret-of-32-bytes-or-more")) == (
        401,
        "Unauthorized",
    )
    assert status(jwt_for("carol", environments=["production"])) == (403, "Forbidden")
    # A JWT that never expires is refused on both platforms (the one rule in end_users.py).
    forever = jwt.encode({"sub": "dave"}, JWT_SECRET, "HS256")
    assert status(forever) == (401, "Unauthorized")
    # A caller cannot claim to be someone through Agentform's own headers.
    forged = platform.post(
        "agents",
        "whoami",
        jwt_for("alice"),
        {"inputs": {}},
        {"x-agentform-identity": "admin", "x-agentform-request-id": "forged"},
    )
    assert forged.headers["x-agentform-request-id"] != "forged"
    assert forged.json()["output"] == json.dumps({"identity": "alice"})


def test_a_forged_hop_token_is_refused(
    platform: Platform, model_server: ScriptedModelServer
) -> None:
    platform.model(model_server)
    platform.agent("whoami", code=WHOAMI)
    forged = jwt_for("admin", secret="guessed-hop-key-of-32-bytes-or-more")
    response = platform.post(
        "agents",
        "whoami",
        f"afh_{forged}",
        {"inputs": {}},
        {"x-agentform-hop-token": forged},
    )
    assert response.status_code == 401, response.text


def test_a_token_budget_exhausts_and_refuses(
    platform: Platform, model_server: ScriptedModelServer
) -> None:
    platform.model(model_server)
    # A day's window: the two requests fall in the same one.
    policy = {"type": "max_tokens", "budgets": [{"window": "day", "total": 50}]}
    platform.agent("chatty", policies=[policy])
    model_server.load([{"text": "a long answer", "prompt_tokens": 40, "completion_tokens": 20}])
    key = platform.api_key()

    crossing = platform.ask("chatty", key, "one")
    assert crossing.status_code == 200, crossing.text  # the crossing request completes
    refused = platform.ask("chatty", key, "two")
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "TokenBudgetExceeded"
    assert "agents/chatty used 60 of its 50 total tokens this day" in error["message"]
    assert error["retry_after_s"] >= 1
    assert len(model_server.requests) == 1  # the refused request never reached the model
    records = platform.trace(refused.headers["x-agentform-trace-id"])
    assert [(r["status"], r["error_class"]) for r in records] == [
        ("refused", "TokenBudgetExceeded")
    ]


def test_a_handoff_cycle_is_refused(
    cycle_platform: Platform, model_server: ScriptedModelServer
) -> None:
    platform = cycle_platform
    platform.model(model_server)
    platform.agent("ping", agents=("pong",))
    platform.agent("pong", agents=("ping",))
    model_server.load(
        [
            {"tool_calls": [{"name": "transfer_to_pong", "arguments": {}}]},
            {"tool_calls": [{"name": "transfer_to_ping", "arguments": {}}]},
        ]
    )
    response = platform.ask("ping", platform.api_key(), "loop forever")
    assert response.status_code == 508, response.text
    assert response.json()["error"]["code"] == "LoopDetected"
    records = platform.trace(response.headers["x-agentform-trace-id"])
    refused = [r for r in records if r["status"] == "refused"]
    assert [(r["name"], r["error_class"]) for r in refused] == [("ping", "LoopDetected")]
    assert tree(records) == [
        "agents/ping",
        "agents/ping > agents/pong",
        "agents/ping > agents/pong > agents/ping",
        "agents/ping > agents/pong > models/chat",
        "agents/ping > models/chat",
    ]


GREET = """
def main() -> dict:
    return {"release": "%s"}
"""


def test_a_blue_green_update_under_a_stream_of_requests_loses_none(platform: Platform) -> None:
    platform.function("greet", GREET % "blue")
    key = platform.api_key()
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            response = platform.post("functions", "greet", key, {})
            release = response.json().get("release", "") if response.status_code == 200 else ""
            answers.append((response.status_code, release or response.text))

    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        wait_until(lambda: len(answers) >= 3, timeout=120)
        platform.update_function("greet", GREET % "green")
        wait_until(
            lambda: ("green" in {a for _, a in answers[-3:]}) and answers[-1][1], timeout=120
        )
        seen = len(answers)
        wait_until(lambda: len(answers) >= seen + 3, timeout=120)
    finally:
        stop.set()
        streamer.join(timeout=120)
    assert {status for status, _ in answers} == {200}, answers
    releases = [release for _, release in answers]
    first_green = releases.index("green")
    assert set(releases[:first_green]) == {"blue"} and set(releases[first_green:]) == {"green"}
