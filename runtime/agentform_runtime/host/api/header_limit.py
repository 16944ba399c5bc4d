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
