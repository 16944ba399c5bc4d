"""The Lambda Runtime API, as AWS's runtime client (`awslambdaric`) expects it.

Each worker process gets its own loopback listener, so `AWS_LAMBDA_RUNTIME_API` is a plain
`host:port` as on Lambda; one Starlette app serves them all and tells workers apart by the
local port the request arrived on. Loopback is reachable by every process of the machine, so
a listener of a sandboxed worker (one uid per worker) accepts a connection only when the
socket on the other end belongs to that uid: another worker can neither take this worker's
invocations nor answer them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.server import ServerState

from agentform_runtime.host.api.header_limit import HeaderLimit
from agentform_runtime.host.sandbox import peer_uid

log = logging.getLogger("agentform.host")

PREFIX = "/2018-06-01/runtime"
# Ours, not Lambda's: a worker's secret variables, served once, to that worker only (its
# listener is peer-checked). The zygote's copy of this path must match.
SECRETS_PATH = f"{PREFIX}/agentform/secrets"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's buffered payload limit, each way
# The outcome of an invocation whose worker posted more than MAX_PAYLOAD_BYTES (Lambda's name).
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"


@dataclass
class Invocation:
    """One event handed to one worker, and the future its outcome resolves."""

    request_id: str
    event: bytes
    deadline_ms: int
    trace_header: str
    function_arn: str
    outcome: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class Outcome:
    """What the worker posted: a response, or an error with Lambda's error shape."""

    body: bytes
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None


class RuntimeClient(Protocol):
    """The worker side of the API, as the Runtime API routes see it."""

    async def next_invocation(self) -> Invocation | None: ...

    def post_outcome(self, request_id: str, outcome: Outcome) -> bool: ...

    def post_init_error(self, body: bytes, error_type: str) -> None: ...

    def take_secrets(self) -> dict[str, str] | None: ...


class RuntimeApi:
    """Serves the Runtime API on one loopback listener per worker."""

    def __init__(self) -> None:
        self._clients: dict[int, RuntimeClient] = {}
        self._servers: dict[int, asyncio.Server] = {}
        # Each accepted connection, by (peer port, local port), bound to the client of the
        # listener that accepted (and peer-checked) it: a request is served for that client
        # only, and the connections go when the listener closes, so a connection can never
        # outlive its worker and reach the next listener given the same port.
        self._accepted: dict[tuple[int, int], tuple[RuntimeClient, asyncio.BaseTransport]] = {}
        self.app = Starlette(
            # Worker-sent headers (Lambda-Runtime-Function-Error-Type...) are bounded too.
            middleware=[Middleware(HeaderLimit)],
            routes=[
                Route(f"{PREFIX}/invocation/next", self._next, methods=["GET"]),
                Route(f"{PREFIX}/invocation/{{rid}}/response", self._response, methods=["POST"]),
                Route(f"{PREFIX}/invocation/{{rid}}/error", self._error, methods=["POST"]),
                Route(f"{PREFIX}/init/error", self._init_error, methods=["POST"]),
                Route(SECRETS_PATH, self._secrets, methods=["GET"]),
            ],
        )
        self._config = uvicorn.Config(
            self.app, http="httptools", lifespan="off", access_log=False, log_level="warning"
        )
        self._config.load()
        self._state = ServerState()

    async def listen(self, client: RuntimeClient, uid: int | None = None) -> int:
        """Open a listener for `client`; return its port. With `uid`, only connections from
        sockets of that uid are served; others are reset before a byte is read."""
        # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections; without it
        # Nagle and delayed ACKs add ~40 ms to every exchange with the runtime client.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        protocol = _bound(self._config.http_protocol_class, self, client, uid)
        server = await asyncio.get_running_loop().create_server(
            lambda: protocol(config=self._config, server_state=self._state, app_state={}),  # type: ignore[call-arg]
            sock=sock,
        )
        self._clients[port] = client
        self._servers[port] = server
        return port

    def close(self, port: int) -> None:
        client = self._clients.pop(port, None)
        server = self._servers.pop(port, None)
        if server is not None:
            server.close()
        for key, (owner, transport) in list(self._accepted.items()):
            if owner is client:
                del self._accepted[key]
                transport.abort()  # type: ignore[attr-defined]

    def _accept(self, key: tuple[int, int], client: RuntimeClient, transport: Any) -> None:
        self._accepted[key] = (client, transport)

    def _forget(self, key: tuple[int, int], transport: Any) -> None:
        if self._accepted.get(key, (None, None))[1] is transport:
            del self._accepted[key]

    def _client(self, request: Request) -> RuntimeClient | None:
        server, peer = request.scope.get("server"), request.scope.get("client")
        if server is None or peer is None:
            return None
        accepted = self._accepted.get((peer[1], server[1]))
        client = self._clients.get(server[1])
        # The client that accepted this connection, and still the one of its port.
        return client if accepted is not None and accepted[0] is client else None

    async def _next(self, request: Request) -> Response:
        client = self._client(request)
        invocation = None if client is None else await client.next_invocation()
        if invocation is None:  # the worker is being stopped
            return JSONResponse({"errorMessage": "worker stopped"}, status_code=410)
        return Response(
            invocation.event,
            media_type="application/json",
            headers={
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                "Lambda-Runtime-Trace-Id": invocation.trace_header,
            },
        )

    async def _secrets(self, request: Request) -> Response:
        client = self._client(request)
        secrets = None if client is None else client.take_secrets()
        if secrets is None:
            return _problem(410, "the worker's secrets were already handed over")
        return JSONResponse(secrets)

    async def _post(self, request: Request, error_type: str | None) -> Response:
        client = self._client(request)
        body = await read_capped(request)
        if body is None:
            # The invocation fails; the rest of the body is discarded unread. The worker is
            # told 202, not Lambda's 413: awslambdaric exits on a 413, and here the next
            # invocation, already routed to this warm worker, would fail with its exit.
            message = f"the workload answered more than {MAX_PAYLOAD_BYTES} bytes"
            outcome = Outcome(
                json.dumps({"errorMessage": message, "errorType": RESPONSE_TOO_LARGE}).encode(),
                RESPONSE_TOO_LARGE,
            )
            if client is None or not client.post_outcome(request.path_params["rid"], outcome):
                return _problem(400, "unknown or finished request id")
            return JSONResponse({"status": "OK"}, status_code=202)
        if client is None or not client.post_outcome(
            request.path_params["rid"], Outcome(body, error_type)
        ):
            return _problem(400, "unknown or finished request id")
        return JSONResponse({"status": "OK"}, status_code=202)

    async def _response(self, request: Request) -> Response:
        return await self._post(request, None)

    async def _error(self, request: Request) -> Response:
        error_type = request.headers.get("Lambda-Runtime-Function-Error-Type", "Unhandled")
        return await self._post(request, error_type)

    async def _init_error(self, request: Request) -> Response:
        client = self._client(request)
        if client is None:
            return _problem(400, "unknown worker")
        error_type = request.headers.get("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
        body = await read_capped(request)
        if body is None:
            return _problem(413, f"init errors are limited to {MAX_PAYLOAD_BYTES} bytes")
        client.post_init_error(body, error_type)
        return JSONResponse({"status": "OK"}, status_code=202)


def _bound(
    protocol: type[asyncio.Protocol], api: RuntimeApi, client: RuntimeClient, uid: int | None
) -> type[asyncio.Protocol]:
    """`protocol`, binding each connection to `client`; with `uid`, refusing every
    connection whose peer socket is not owned by `uid`."""

    class Bound(protocol):  # type: ignore[valid-type,misc]
        _key: tuple[int, int] | None = None
        _transport: Any = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            local = transport.get_extra_info("sockname")
            if uid is not None:
                owner = peer_uid(peer[0], peer[1], server=(local[0], local[1])) if peer else None
                if owner != uid:
                    _refuse(transport, local[1], owner, uid)
                    return
            if peer:
                self._key, self._transport = (peer[1], local[1]), transport
                api._accept(self._key, client, transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._key is not None:
                api._forget(self._key, self._transport)
            super().connection_lost(exc)

    return Bound


def _refuse(transport: asyncio.BaseTransport, port: int, owner: int | None, uid: int) -> None:
    log.warning(
        "Runtime API on port %s: refused a connection from uid %s (its worker is uid %s)",
        port,
        owner,
        uid,
    )
    transport.abort()  # type: ignore[attr-defined]


async def read_capped(request: Request) -> bytes | None:
    """The body, read as it streams; None as soon as it is known to exceed the limit, so a
    hostile worker or client cannot make the host hold more than MAX_PAYLOAD_BYTES of it."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
        return None
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_PAYLOAD_BYTES:
            return None
    return bytes(data)


def _problem(status: int, message: str, error_type: str = "InvalidRequest") -> JSONResponse:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    return JSONResponse(body, status_code=status)
