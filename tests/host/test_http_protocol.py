"""The host's HTTP protocol: a response's head and body in one write (uvicorn's own sends
them as two, and each send on loopback wakes the reader); a request head bounded as it
arrives."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from uvicorn.server import ServerState

from agentform_runtime.host.api.http_protocol import MAX_HELD_BYTES, HostHttpProtocol


class _Transport:
    """Records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.wrote.set()

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 4860)}.get(
            name, default
        )

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def _answer(path: str, until: bytes) -> list[bytes]:
    async def big(_: object) -> StreamingResponse:
        chunks = (b"x" * 1024 for _ in range(2 * MAX_HELD_BYTES // 1024))
        return StreamingResponse(chunks)

    async def small(_: object) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    config = uvicorn.Config(
        Starlette(routes=[Route("/small", small), Route("/big", big)]), lifespan="off"
    )
    config.load()
    protocol = HostHttpProtocol(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    while not b"".join(transport.writes).endswith(until):
        transport.wrote.clear()
        await asyncio.wait_for(transport.wrote.wait(), 30)
    return transport.writes


def test_a_response_goes_out_in_one_write() -> None:
    [write] = asyncio.run(_answer("/small", b'{"status":"ok"}'))
    assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b'{"status":"ok"}')


def test_a_streamed_response_is_not_held_past_the_bound() -> None:
    writes = asyncio.run(_answer("/big", b"0\r\n\r\n"))
    assert len(writes) > 1 and max(map(len, writes)) <= MAX_HELD_BYTES + 1024 + 16


def test_a_head_growing_past_the_limit_is_a_431_before_it_completes() -> None:
    async def send_unending_header() -> _Transport:
        config = uvicorn.Config(Starlette(), lifespan="off")
        config.load()
        protocol = HostHttpProtocol(config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(200):  # 200 KiB of one header value, never ended
            if transport.closed:
                break
            protocol.data_received(b"a" * 1024)
        return transport

    transport = asyncio.run(send_unending_header())
    assert transport.closed
    answer = b"".join(transport.writes)
    assert answer.startswith(b"HTTP/1.1 431 ") and b'"field": "headers"' in answer
