"""Request body limits for the routes that do not stream and cap their bodies themselves.

The control plane parses whole JSON bodies; without a limit a 60 MB "description" is read
into memory and stored. Bodies are read here up to the limit, then handed to the app; a
larger one is answered 413 with a JSON error naming the limit, before the app sees it.
Headers over `header_limit.MAX_HEADER_BYTES` in total are answered 431, on every route."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentform_runtime.errors import AgentformError
from agentform_runtime.host.api.header_limit import HeaderLimit, send_error
from agentform_runtime.host.invoke import MAX_PAYLOAD_BYTES

MAX_CONTROL_BODY_BYTES = 1024 * 1024


def limit_for(path: str) -> int | None:
    """The body limit of `path`, or None where the route streams and caps its body itself."""
    if path.startswith("/run/"):
        # The gateway caps its payloads as they stream; the MCP endpoint reads whole bodies.
        return MAX_PAYLOAD_BYTES if path.rstrip("/").endswith("/mcp") else None
    if path.rstrip("/") == "/v1/artifacts":
        return None  # streamed to disk by the upload route, with its own limit
    return MAX_CONTROL_BODY_BYTES


class BodyLimit:
    """ASGI middleware enforcing `limit_for` on every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers_checked = HeaderLimit(self._bounded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.headers_checked(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = limit_for(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _refuse(send, limit)
                return
            if not message.get("more_body", False):
                break
        replayed: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replay([replayed], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that yields `messages` first, then defers to the real one."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


async def _refuse(send: Send, limit: int) -> None:
    error = AgentformError(
        413,
        "PayloadTooLarge",
        f"request bodies here are limited to {limit} bytes",
        field="body",
        limit_bytes=limit,
    )
    await send_error(send, error)
