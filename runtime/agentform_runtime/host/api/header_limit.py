"""A limit on the size of a request's headers, for every app the host serves.

The HTTP parser hands the app every header it received, however many: without a limit a
client (or a worker, on the Runtime API) makes the host keep and copy megabytes of them per
request. Over `MAX_HEADER_BYTES` in total, the request is answered 431 with a JSON error
before the app sees it."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from agentform_runtime.errors import AgentformError

MAX_HEADER_BYTES = 64 * 1024  # names and values of all headers of one request


def header_bytes(scope: Scope) -> int:
    return sum(len(name) + len(value) for name, value in scope.get("headers", ()))


class HeaderLimit:
    """ASGI middleware refusing HTTP requests whose headers exceed MAX_HEADER_BYTES."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and header_bytes(scope) > MAX_HEADER_BYTES:
            await send_error(send, headers_too_large())
            return
        await self.app(scope, receive, send)


def headers_too_large() -> AgentformError:
    return AgentformError(
        431,
        "HeadersTooLarge",
        f"request headers are limited to {MAX_HEADER_BYTES} bytes in total",
        field="headers",
        limit_bytes=MAX_HEADER_BYTES,
    )


def head_too_large_answer() -> bytes:
    """`headers_too_large` as a whole HTTP/1.1 answer that closes the connection, for the
    protocols that refuse a head before any app sees it."""
    body = json.dumps(headers_too_large().body()).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


async def send_error(send: Send, error: AgentformError) -> None:
    """Answer `error` as JSON and close the connection (the rest of the request is unread)."""
    body = json.dumps(error.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeadBudget:
    """Bounds a request head while it arrives, for protocols on httptools' parser.

    The parser gathers a header's name and value across reads and reports it only once it is
    complete, so a limit checked per header comes too late: a sender could stream one header
    of hundreds of megabytes, every byte copied again as it grows. Counted here per read, from
    the read after the one in which the request began (the parser does not say where in a
    read that was, and the earlier part may be whole requests): the head may exceed
    MAX_HEADER_BYTES by one read (asyncio reads at most 256 KiB) and the slack."""

    SLACK = 8 * 1024  # the request line and the separators the header count leaves out

    def __init__(self) -> None:
        self._open = False
        self._began_in_this_read = False
        self._bytes = 0

    def begin(self) -> None:
        """A request starts (httptools' `on_message_begin`)."""
        self._open, self._began_in_this_read, self._bytes = True, True, 0

    def end(self) -> None:
        """Its head is complete (`on_headers_complete`)."""
        self._open = False

    def over_after(self, received: int) -> bool:
        """Count `received` bytes just fed to the parser; whether a head still incomplete
        after them is over the limit."""
        if not self._open:
            return False
        if self._began_in_this_read:
            self._began_in_this_read = False
            return False
        self._bytes += received
        return self._bytes > MAX_HEADER_BYTES + self.SLACK
