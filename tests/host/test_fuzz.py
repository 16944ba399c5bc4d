"""Bounded fuzzing of the run gateway, of worker results and of the Runtime API: whatever
arrives, the answer is never a server error of the host's own and never a dropped
connection (httpx raises on one, failing the example), and the record matches the answer."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentform_runtime.host.running.runtime_api import (
    PREFIX,
    RESPONSE_TOO_LARGE,
    Invocation,
    Outcome,
    RuntimeApi,
)
from tests.support.hosts import RunningHost
from tests.support.workloads import deploy, function_artifact, setup_environment

# Echoes the request body: a well-behaved workload, so any 5xx would be the host's.
ECHO_HANDLER = """
import json

def handler(event, context):
    body = event.get("body") or ""
    if event.get("rawPath") == "/result":
        return json.loads(body)["result"]  # plays a hostile workload: answers what it is sent
    return {"statusCode": 200, "body": body, "isBase64Encoded": event.get("isBase64Encoded")}
"""

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHost, str]]:
    workdir = tmp_path_factory.mktemp("fuzz")
    host = RunningHost(workdir / "state").start()
    try:
        admin = host.admin()
        key = setup_environment(admin)
        artifact = function_artifact(workdir, "echo", ECHO_HANDLER, handler="tool.handler")
        deploy(admin, artifact, "echo").raise_for_status()
        yield host, key
    finally:
        host.stop()


_latin1 = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=40
)
# Path segments: printable, past ASCII too; no '/', '?', '#' or '%' (they would change the URL).
_segments = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x2FF, blacklist_characters="/?#%\x7f"),
    max_size=12,
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_bodies = (
    st.binary(max_size=512)
    | _json.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(1, 100_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
)


@st.composite
def _gateway_requests(draw: st.DrawFn, key: str) -> dict[str, Any]:
    # Mostly well-addressed, authorised POSTs, so that bodies reach the host's parsing
    # and the worker; the rest probe routing and authentication.
    valid = draw(st.integers(0, 3)) > 0
    target = (
        draw(st.sampled_from(["development/functions/echo", "development/functions/echo/sub"]))
        if valid
        else draw(st.lists(_segments, min_size=1, max_size=4).map("/".join))
    )
    authorization = (
        f"Bearer {key}"
        if valid
        else draw(
            st.sampled_from(["Bearer afh_forged", "Basic x", "Bearer"])
            | _latin1.map(lambda t: f"Bearer {t}")
        )
    )
    headers = {
        "authorization": authorization,
        "traceparent": draw(_latin1 | st.just("00-" + "a" * 32 + "-" + "b" * 16 + "-01")),
        "content-type": draw(st.sampled_from(["application/json", "text/plain", ""])),
    }
    return {
        "method": "POST" if valid else draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"])),
        "url": "/run/" + target,
        "headers": {
            k.encode(): v.strip().encode("latin-1") for k, v in headers.items() if v.strip()
        },
        "content": draw(_bodies),
    }


def test_fuzzed_run_gateway_requests_never_get_a_server_error(
    echo: tuple[RunningHost, str],
) -> None:
    host, key = echo
    with httpx.Client(base_url=host.url, timeout=60) as client:

        @FUZZ
        @given(request=_gateway_requests(key))
        def check(request: dict[str, Any]) -> None:
            response = client.request(**request)
            assert response.status_code < 500, (request, response.text)
            if response.status_code >= 400:
                assert "error" in response.json()

        check()


_results = (
    st.fixed_dictionaries(
        {},
        optional={
            "statusCode": st.integers(-5, 1100) | st.text(max_size=4) | st.booleans() | st.none(),
            "headers": st.dictionaries(_latin1 | st.text(max_size=10), _json, max_size=3)
            | st.lists(st.text(max_size=5), max_size=2)
            | st.text(max_size=5),
            "body": _json | st.binary(max_size=64).map(lambda b: b.hex()),
            "isBase64Encoded": st.booleans() | st.text(max_size=3) | st.none(),
        },
    )
    | _json
)


def test_fuzzed_worker_results_are_answered_or_refused_truthfully(
    echo: tuple[RunningHost, str],
) -> None:
    host, key = echo
    with host.client(key) as run, host.admin() as admin:

        @FUZZ
        @given(result=_results)
        def check(result: Any) -> None:
            response = run.post("/run/development/functions/echo/result", json={"result": result})
            chosen = result.get("statusCode") if isinstance(result, dict) else None
            if response.status_code >= 500 and response.status_code != chosen:
                assert response.status_code == 502, response.text
                assert response.json()["error"]["code"] == "InvalidWorkerResponse"
            request_id = response.headers["x-agentform-request-id"]
            record = admin.get(f"/v1/executions/{request_id}").json()
            assert record["http_status"] == response.status_code
            assert record["status"] == ("ok" if response.status_code < 400 else "error")

        check()


class _FakeWorker:
    """The worker side of one Runtime API listener: one pending invocation, `known`."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    async def next_invocation(self) -> Invocation | None:
        return Invocation("known", b"{}", 0, "", "arn:aws:lambda:local:0:function:fuzz")

    def post_outcome(self, request_id: str, outcome: Outcome) -> bool:
        self.outcomes.append(outcome)
        return request_id == "known"

    def post_init_error(self, body: bytes, error_type: str) -> None:
        self.outcomes.append(Outcome(body, error_type))

    def take_secrets(self) -> dict[str, str] | None:
        return None


@pytest.fixture
def runtime_api() -> Iterator[tuple[str, _FakeWorker]]:
    """The real Runtime API, serving a fake worker on a loopback port in a thread's loop."""
    loop = asyncio.new_event_loop()
    api = loop.run_until_complete(_make_api())
    worker = _FakeWorker()
    port = loop.run_until_complete(api.listen(worker))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", worker
    finally:
        loop.call_soon_threadsafe(api.close, port)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


async def _make_api() -> RuntimeApi:
    return RuntimeApi()


_runtime_paths = st.sampled_from(
    ["/invocation/next", "/invocation/known/response", "/invocation/known/error", "/init/error"]
) | _segments.map(lambda rid: f"/invocation/{rid}/response")


def test_fuzzed_runtime_api_requests_never_get_a_server_error(
    runtime_api: tuple[str, _FakeWorker],
) -> None:
    with httpx.Client(base_url=runtime_api[0], timeout=30) as client:

        @FUZZ
        @given(
            method=st.sampled_from(["GET", "POST", "PUT"]),
            path=_runtime_paths,
            error_type=_latin1,
            body=st.binary(max_size=1024) | _json.map(lambda v: json.dumps(v).encode()),
        )
        def check(method: str, path: str, error_type: str, body: bytes) -> None:
            response = client.request(
                method,
                PREFIX + path,
                content=body,
                headers={
                    b"Lambda-Runtime-Function-Error-Type": error_type.strip().encode("latin-1")
                },
            )
            assert response.status_code < 500, (method, path, response.text)

        check()


def test_the_runtime_api_fails_an_oversized_response_as_it_streams(
    runtime_api: tuple[str, _FakeWorker],
) -> None:
    url, worker = runtime_api
    over = b"x" * (6 * 1024 * 1024 + 1)
    chunks = iter([over[: 1024 * 1024], over[1024 * 1024 :]])  # streamed: no content-length
    response = httpx.post(f"{url}{PREFIX}/invocation/known/response", content=chunks)
    # Accepted (the invocation fails); what is beyond the limit is never held.
    assert response.status_code == 202
    [outcome] = worker.outcomes
    assert outcome.error_type == RESPONSE_TOO_LARGE and b"6291456 bytes" in outcome.body
