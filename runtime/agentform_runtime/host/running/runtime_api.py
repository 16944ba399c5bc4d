"""The Lambda Runtime API, as AWS's runtime client (`awslambdaric`) expects it.

Each worker process gets its own loopback listener, so `AWS_LAMBDA_RUNTIME_API` is a plain
`host:port` as on Lambda, and every connection is bound to the worker of the listener that
accepted it. Loopback is reachable by every process of the machine, so a listener of a
sandboxed worker (one uid per worker) accepts a connection only when the socket on the other
end belongs to that uid: another worker can neither take this worker's invocations nor
answer them.

Two of the three HTTP exchanges of every invocation are on this API, and it has five fixed
routes and one kind of client, so it is served by a small HTTP/1.1 protocol on httptools'
parser (the one uvicorn uses) rather than a web framework: one write per answer, and the
worker's 202 is written after the invocation it answered has moved on. It speaks keep-alive,
chunked bodies and `Expect: 100-continue`, and bounds what a worker sends: request line and
headers to `MAX_HEADER_BYTES` (431), bodies to `MAX_PAYLOAD_BYTES` as they stream.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import socket
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol, cast

import httptools

from agentform_runtime.host.api.header_limit import (
    MAX_HEADER_BYTES,
    HeadBudget,
    head_too_large_answer,
)
from agentform_runtime.host.sandbox import peer_uid

log = logging.getLogger("agentform.host")

PREFIX = "/2018-06-01/runtime"
NEXT_PATH = f"{PREFIX}/invocation/next"
INIT_ERROR_PATH = f"{PREFIX}/init/error"
# Ours, not Lambda's: a worker's secret variables, served once, to that worker only (its
# listener is peer-checked). The zygote's copy of this path must match.
SECRETS_PATH = f"{PREFIX}/agentform/secrets"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's buffered payload limit, each way
# The outcome of an invocation whose worker posted more than MAX_PAYLOAD_BYTES (Lambda's name).
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
# What a worker may send ahead of the answers (awslambdaric sends one request at a time): a
# connection is still read during a long poll, so that its end is seen, but not to hold more.
MAX_PIPELINED = 8
MAX_BYTES_AHEAD = 64 * 1024
# Connections at once to one worker's listener (awslambdaric keeps one).
MAX_CONNECTIONS = 4


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
        self._servers: dict[int, asyncio.Server] = {}
        # The open connections of each listener: they go when it closes, so a connection can
        # never outlive its worker and reach the next listener given the same port.
        self._connections: dict[int, _Listener] = {}

    async def listen(self, client: RuntimeClient, uid: int | None = None) -> int:
        """Open a listener for `client`; return its port. With `uid`, only connections from
        sockets of that uid are served; others are reset before a byte is read."""
        # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections; without it
        # Nagle and delayed ACKs add ~40 ms to every exchange with the runtime client.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        listener = _Listener()
        server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(client, uid, listener), sock=sock
        )
        self._servers[port] = server
        self._connections[port] = listener
        return port

    def close(self, port: int) -> None:
        server = self._servers.pop(port, None)
        if server is not None:
            server.close()
        listener = self._connections.pop(port, None)
        if listener is not None:
            listener.closed = True  # a connection accepted but not yet made is refused too
            for connection in list(listener.connections):
                connection.abort()


@dataclass
class _Listener:
    """The connections of one worker's listener, and whether it was closed."""

    connections: set[_Connection] = field(default_factory=set)
    closed: bool = False


@dataclass
class _Request:
    """One request as parsed; `body` is None once it is known to exceed the limit."""

    url: bytes = b""
    size: int = 0  # bytes of the request line's URL and of the headers
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray | None = field(default_factory=bytearray)
    method: bytes = b""
    keep_alive: bool = True

    @property
    def headers_too_large(self) -> bool:
        return self.size > MAX_HEADER_BYTES


class _Connection(asyncio.Protocol):
    """One worker's connection: requests are answered in order, one at a time."""

    def __init__(self, client: RuntimeClient, uid: int | None, listener: _Listener) -> None:
        self._client = client
        self._uid = uid
        self._listener = listener
        self._parser = httptools.HttpRequestParser(self)
        self._head = HeadBudget()
        self._write_paused = False  # the worker is not reading its answers: nor do we read
        self._transport: asyncio.Transport | None = None
        self._request = _Request()
        self._pending: collections.deque[_Request] = collections.deque()
        self._busy = False  # an answer is being prepared: later requests wait their turn
        self._bytes_ahead = 0  # received while busy
        self._keep_alive = True  # of the request being answered
        self._poll: asyncio.Task[None] | None = None

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if self._listener.closed or len(self._listener.connections) >= MAX_CONNECTIONS:
            transport.abort()  # type: ignore[attr-defined]
            return
        if self._uid is not None:
            owner = peer_uid(peer[0], peer[1], server=(local[0], local[1])) if peer else None
            if owner != self._uid:
                _refuse(transport, local[1], owner, self._uid)
                return
        self._transport = cast(asyncio.Transport, transport)
        self._listener.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.connections.discard(self)
        self._drop()

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._transport is not None:
            self._transport.resume_reading()
            self._serve()

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        if self._busy:
            self._bytes_ahead += len(data)
            if self._bytes_ahead > MAX_BYTES_AHEAD:
                self._fail(400, f"more than {MAX_BYTES_AHEAD} bytes sent ahead of an answer")
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported here")
        except httptools.HttpParserError:
            self._fail(400, "malformed HTTP request")
        else:
            if self._head.over_after(len(data)):
                self._answer(_HEAD_TOO_LARGE, close=True)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._drop()

    def _drop(self) -> None:
        """Nothing more is read or answered here; a long poll gives its turn back."""
        self._transport = None
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

    # --- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._request = _Request()
        self._head.begin()

    def on_url(self, url: bytes) -> None:
        request = self._request
        request.size += len(url)
        if not request.headers_too_large:
            request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._request
        request.size += len(name) + len(value)
        if not request.headers_too_large:
            request.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._head.end()
        request = self._request
        request.method = self._parser.get_method()
        request.keep_alive = self._parser.should_keep_alive()
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
            request.body = None
        # Invited only when this request is next to be answered and its body will be read.
        expects = request.headers.get("expect", "").lower() == "100-continue"
        wanted = request.body is not None and not request.headers_too_large
        idle = not self._busy and not self._pending and self._transport is not None
        if expects and wanted and idle:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]

    def on_body(self, chunk: bytes) -> None:
        body = self._request.body
        if body is None:
            return  # over the limit: the rest is discarded as it arrives
        if len(body) + len(chunk) > MAX_PAYLOAD_BYTES:
            self._request.body = None
        else:
            body += chunk

    def on_message_complete(self) -> None:
        self._pending.append(self._request)
        if len(self._pending) > MAX_PIPELINED:
            self._fail(400, f"more than {MAX_PIPELINED} requests sent ahead of their answers")
            return
        self._serve()

    # --- answering ---------------------------------------------------------------------------

    def _serve(self) -> None:
        """Answer the waiting requests in order, until one has to wait (a long poll)."""
        while self._pending and not (self._busy or self._write_paused) and self._transport:
            request = self._pending.popleft()
            self._busy, self._keep_alive = True, request.keep_alive
            self._route(request)

    def _route(self, request: _Request) -> None:
        if request.headers_too_large:
            self._answer(_HEAD_TOO_LARGE, close=True)
            return
        path = request.url.partition(b"?")[0].decode("latin-1")
        method = request.method
        if path == NEXT_PATH:
            if method != b"GET":
                self._answer(_problem(405, "use GET"))
            else:
                self._poll = asyncio.ensure_future(self._next())
        elif path == SECRETS_PATH:
            self._answer(_problem(405, "use GET") if method != b"GET" else self._secrets())
        elif method != b"POST" and (path == INIT_ERROR_PATH or _request_id(path) is not None):
            self._answer(_problem(405, "use POST"))
        elif path == INIT_ERROR_PATH:
            self._answer(self._init_error(request))
        elif (target := _request_id(path)) is not None:
            request_id, failed = target
            error_type = (
                request.headers.get("lambda-runtime-function-error-type") or "Unhandled"
                if failed
                else None
            )
            answer = self._post(request_id, request.body, error_type)
            # The invocation this answers resumes first: its caller is waiting for it, the
            # worker only for this 202.
            asyncio.get_running_loop().call_soon(self._answer, answer)
        else:
            self._answer(_problem(404, f"no such route: {path[:200]}"))

    def _answer(self, response: bytes, close: bool = False) -> None:
        transport = self._transport
        self._busy, self._bytes_ahead = False, 0
        if transport is None:
            return
        transport.write(response)
        if close or not self._keep_alive:
            transport.close()
            self._drop()
            return
        self._serve()

    def _fail(self, status: int, message: str) -> None:
        """A request the parser cannot follow: answer it and close the connection."""
        self._answer(_problem(status, message, close=True), close=True)

    async def _next(self) -> None:
        invocation = await self._client.next_invocation()
        self._poll = None
        if invocation is None:  # the worker is being stopped
            self._answer(_problem(410, "worker stopped"))
            return
        self._answer(
            _http(
                200,
                invocation.event,
                (
                    ("Lambda-Runtime-Aws-Request-Id", invocation.request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms)),
                    ("Lambda-Runtime-Invoked-Function-Arn", invocation.function_arn),
                    ("Lambda-Runtime-Trace-Id", invocation.trace_header),
                ),
            )
        )

    def _secrets(self) -> bytes:
        secrets = self._client.take_secrets()
        if secrets is None:
            return _problem(410, "the worker's secrets were already handed over")
        return _http(200, json.dumps(secrets).encode())

    def _post(self, request_id: str, body: bytearray | None, error_type: str | None) -> bytes:
        if body is None:
            # The invocation fails; the rest of the body is discarded unread. The worker is
            # told 202, not Lambda's 413: awslambdaric exits on a 413, and here the next
            # invocation, already routed to this warm worker, would fail with its exit.
            message = f"the workload answered more than {MAX_PAYLOAD_BYTES} bytes"
            outcome = Outcome(
                json.dumps({"errorMessage": message, "errorType": RESPONSE_TOO_LARGE}).encode(),
                RESPONSE_TOO_LARGE,
            )
        else:
            outcome = Outcome(bytes(body), error_type)
        if not self._client.post_outcome(request_id, outcome):
            return _problem(400, "unknown or finished request id")
        return _ACCEPTED

    def _init_error(self, request: _Request) -> bytes:
        if request.body is None:
            return _problem(413, f"init errors are limited to {MAX_PAYLOAD_BYTES} bytes")
        error_type = (
            request.headers.get("lambda-runtime-function-error-type") or "Runtime.InitError"
        )
        self._client.post_init_error(bytes(request.body), error_type)
        return _ACCEPTED


def _request_id(path: str) -> tuple[str, bool] | None:
    """(request id, whether it is an error) of `.../invocation/{id}/response|error`."""
    head, _, rest = path.partition(f"{PREFIX}/invocation/")
    request_id, _, tail = rest.partition("/")
    if head or not request_id or tail not in ("response", "error"):
        return None
    return request_id, tail == "error"


def _http(
    status: int, body: bytes, headers: tuple[tuple[str, str], ...] = (), close: bool = False
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _problem(status: int, message: str, close: bool = False) -> bytes:
    body: dict[str, Any] = {"errorMessage": message, "errorType": "InvalidRequest"}
    return _http(status, json.dumps(body).encode(), close=close)


_ACCEPTED = _http(202, b'{"status": "OK"}')
_HEAD_TOO_LARGE = head_too_large_answer()


def _refuse(transport: asyncio.BaseTransport, port: int, owner: int | None, uid: int) -> None:
    log.warning(
        "Runtime API on port %s: refused a connection from uid %s (its worker is uid %s)",
        port,
        owner,
        uid,
    )
    transport.abort()  # type: ignore[attr-defined]
