"""uvicorn's httptools protocol as the host serves it: a response in one write, a request
head bounded as it arrives.

uvicorn writes a response's status line and headers, then its body, as two `send()`s. On
loopback each send wakes the reader, and every invocation answers its caller this way
(workloads calling onwards too), so here the writes made in one turn of the event loop go
out together at the end of that turn. What waits is bounded: past `MAX_HELD_BYTES` the held
writes go out at once, so a streamed response is never held in memory.

httptools reports a header only once it is complete, so a client could stream one header of
hundreds of megabytes into the parser before any per-header limit applies: the head is
counted as it arrives (`HeadBudget`) and answered 431 past the limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agentform_runtime.host.api.header_limit import HeadBudget, head_too_large_answer

MAX_HELD_BYTES = 64 * 1024
_HEAD_TOO_LARGE = head_too_large_answer()


class HostHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` on a transport that joins the writes of one loop turn, with the
    request head bounded while it arrives."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head = HeadBudget()
        super().connection_made(_JoinedWrites(transport))  # type: ignore[arg-type]

    def on_message_begin(self) -> None:
        self._head.begin()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head.end()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head.over_after(len(data)) and not self.transport.is_closing():
            self.transport.write(_HEAD_TOO_LARGE)
            self.transport.close()


class _JoinedWrites:
    """A transport whose writes are held until the end of the loop turn (or a size bound);
    closing or aborting sends (or drops) what is held first. Everything else is the
    transport's own."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []
        self._held_bytes = 0

    def write(self, data: bytes) -> None:
        if not self._held:
            asyncio.get_running_loop().call_soon(self._flush)
        self._held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes > MAX_HELD_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._held:
            return
        data = b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held.clear()
        self._held_bytes = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
