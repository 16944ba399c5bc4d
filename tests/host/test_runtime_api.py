"""The Runtime API's own HTTP/1.1 protocol, spoken over a real loopback socket: what
awslambdaric's client relies on (keep-alive, `Expect: 100-continue`, chunked bodies) and
what a hostile worker may send (pipelined, malformed or unknown requests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from agentform_runtime.host.running.runtime_api import (
    INIT_ERROR_PATH,
    NEXT_PATH,
    PREFIX,
    Invocation,
    Outcome,
    RuntimeApi,
)


class _Worker:
    """One pending invocation, `r1`, handed out once; records what is posted."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self.init_errors: list[tuple[bytes, str]] = []
        self.handed = False

    async def next_invocation(self) -> Invocation | None:
        if self.handed:
            await asyncio.Event().wait()  # a long poll that never answers
        self.handed = True
        return Invocation("r1", b'{"n": 1}', 123, "Root=1-a-b", "arn:aws:lambda:local:0:function:f")

    def post_outcome(self, request_id: str, outcome: Outcome) -> bool:
        if request_id != "r1" or request_id in self.outcomes:
            return False
        self.outcomes[request_id] = outcome
        return True

    def post_init_error(self, body: bytes, error_type: str) -> None:
        self.init_errors.append((body, error_type))

    def take_secrets(self) -> dict[str, str] | None:
        return None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


Scenario = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Any]]


async def _with_api(scenario: Scenario) -> tuple[_Worker, Any]:
    api = RuntimeApi()
    worker = _Worker()
    port = await api.listen(worker)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        result = await asyncio.wait_for(scenario(reader, writer), 30)
    finally:
        writer.close()
        api.close(port)
    return worker, result


def test_a_worker_takes_an_invocation_and_answers_it_on_one_connection() -> None:
    async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        writer.write(f"GET {NEXT_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers, event = await _read_response(reader)
        assert status == 200 and event == b'{"n": 1}'
        assert headers["lambda-runtime-aws-request-id"] == "r1"
        assert headers["lambda-runtime-deadline-ms"] == "123"
        # awslambdaric's client asks before a large body: the body follows the 100.
        body = json.dumps({"answer": "x" * 2000}).encode()
        writer.write(
            f"POST {PREFIX}/invocation/r1/response HTTP/1.1\r\nHost: x\r\n"
            f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        return await _read_response(reader), body

    worker, result = asyncio.run(_with_api(scenario))
    (status, _, answer), body = result
    assert status == 202 and json.loads(answer) == {"status": "OK"}
    assert worker.outcomes["r1"].body == body and worker.outcomes["r1"].ok


def test_pipelined_requests_are_answered_in_order_and_chunked_bodies_are_read() -> None:
    async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        chunked = b"5\r\nhello\r\n0\r\n\r\n"
        writer.write(
            f"POST {INIT_ERROR_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Lambda-Runtime-Function-Error-Type: Runtime.ImportError\r\n\r\n".encode()
            + chunked
            + f"GET {PREFIX}/nowhere HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            + f"POST {PREFIX}/invocation/unknown/error HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 2\r\n\r\n{}".encode()
        )
        return [await _read_response(reader) for _ in range(3)]

    worker, answers = asyncio.run(_with_api(scenario))
    assert [status for status, _, _ in answers] == [202, 404, 400]
    assert worker.init_errors == [(b"hello", "Runtime.ImportError")]
    assert json.loads(answers[1][2])["errorType"] == "InvalidRequest"


def test_a_malformed_request_is_a_400_and_the_connection_closes() -> None:
    async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        answer = await _read_response(reader)
        return answer, await reader.read()

    _, result = asyncio.run(_with_api(scenario))
    (status, headers, _), rest = result
    assert status == 400 and headers["connection"] == "close" and rest == b""


def test_a_connection_closed_during_a_long_poll_leaves_the_invocation_for_the_next() -> None:
    """awslambdaric reconnects when its connection breaks: the abandoned long poll must not
    take the next invocation into a closed socket."""

    class Queued(_Worker):
        def __init__(self) -> None:
            super().__init__()
            self.inbox: asyncio.Queue[Invocation] = asyncio.Queue()

        async def next_invocation(self) -> Invocation | None:
            return await self.inbox.get()

    async def scenario() -> tuple[int, dict[str, str]]:
        api = RuntimeApi()
        worker = Queued()
        port = await api.listen(worker)
        request = f"GET {NEXT_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        _, abandoned = await asyncio.open_connection("127.0.0.1", port)
        abandoned.write(request)
        await abandoned.drain()
        abandoned.close()
        deadline = asyncio.get_running_loop().time() + 30
        while api._connections[port].connections:  # until the host saw that connection end
            assert asyncio.get_running_loop().time() < deadline, "the closed poll lingers"
            await asyncio.sleep(0.01)
        worker.inbox.put_nowait(Invocation("r2", b"{}", 0, "", "arn:aws:lambda:local:0:function:f"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        try:
            status, headers, _ = await asyncio.wait_for(_read_response(reader), 30)
        finally:
            writer.close()
            api.close(port)
        return status, headers

    status, headers = asyncio.run(scenario())
    assert status == 200 and headers["lambda-runtime-aws-request-id"] == "r2"


def test_a_header_streamed_past_the_limit_is_a_431_before_it_completes() -> None:
    async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        writer.write(f"GET {NEXT_PATH} HTTP/1.1\r\nHost: x\r\nX-Big: ".encode())
        for _ in range(200):  # 200 KiB of one header value, never ended
            writer.write(b"a" * 1024)
            try:
                await writer.drain()
            except ConnectionError:
                break
        return await _read_response(reader)

    _, (status, headers, body) = asyncio.run(_with_api(scenario))
    assert status == 431 and headers["connection"] == "close"
    assert json.loads(body)["error"]["field"] == "headers"


def test_a_worker_that_does_not_read_its_answers_is_not_read_either() -> None:
    """Answers pile up in the host only to the transport's limit: then the host stops
    reading that connection, so requests cannot make it buffer without bound."""

    async def scenario() -> bool:
        api = RuntimeApi()
        port = await api.listen(_Worker())
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET {PREFIX}/nowhere HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        try:
            writer.write(request * 200_000)  # ~9 MB asked, ~30 MB of 404s, none read
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while not any(c._write_paused for c in api._connections[port].connections):
                assert loop.time() < deadline, "the host kept reading and answering"
                await asyncio.sleep(0.01)
            return True
        finally:
            writer.transport.abort()
            api.close(port)

    assert asyncio.run(scenario())
