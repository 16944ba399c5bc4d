"""The run gateway, `/run/{env}/{kind}/{name}[/path]`: the HTTP edge in front of the invoker.

It authenticates the caller (an environment API key or an end-user JWT, or the hop token of
a workload calling onwards), reads the payload within Lambda's limit, and passes the
request on with its trace context (an incoming W3C `traceparent` is honoured).

Every invocation and every hop between workloads comes through here, so `RunGateway` serves
these paths ahead of FastAPI's router, dependency resolution and per-route middleware: the
host's CPU per request is what bounds its throughput. The FastAPI routes below are the same
handler, for the OpenAPI document (and for methods the fast path leaves to them)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agentform_runtime.errors import AgentformError
from agentform_runtime.host import invoke
from agentform_runtime.host.api.header_limit import (
    MAX_HEADER_BYTES,
    header_bytes,
    headers_too_large,
    send_error,
)
from agentform_runtime.host.api.responses import error_response
from agentform_runtime.host.auth import bearer
from agentform_runtime.host.context import HostContext, host_of
from agentform_runtime.host.hops import HOP_TOKEN_PREFIX
from agentform_runtime.host.invoke import MAX_PAYLOAD_BYTES
from agentform_runtime.specs import DeploymentKey, WorkloadKind, check_name

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

router = APIRouter()


async def read_payload(request: Request) -> bytes:
    """The body, read as it streams and refused as soon as it is known to exceed Lambda's
    limit, so a client cannot make the host hold more than MAX_PAYLOAD_BYTES of it."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
        raise _too_large()
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_PAYLOAD_BYTES:
            raise _too_large()
    return bytes(data)


def _too_large() -> AgentformError:
    return AgentformError(
        413,
        "PayloadTooLarge",
        f"request bodies are limited to {MAX_PAYLOAD_BYTES} bytes",
        field="body",
        limit_bytes=MAX_PAYLOAD_BYTES,
    )


def trace_context(headers: Any) -> tuple[str, str | None]:
    """(trace id, parent span id) from an incoming W3C traceparent, or a new trace."""
    match = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    if match and set(match.group(1)) != {"0"}:
        return match.group(1), match.group(2)
    return uuid.uuid4().hex, None


def caller_of(host: HostContext, headers: Any, environment: str) -> invoke.Caller:
    """Who is calling: a workload's hop (inheriting its trace and end user) or an end user."""
    token = bearer(headers)
    if token is not None and token.startswith(HOP_TOKEN_PREFIX):
        hop = host.hops.resolve(token)
        return invoke.Caller(hop.identity, hop.trace_id, hop.request_id, hop)
    identity = host.auth.end_user(headers, environment)
    trace_id, parent = trace_context(headers)
    return invoke.Caller(identity.sub, trace_id, parent)


def target_of(env: str, kind: str, name: str) -> DeploymentKey:
    try:
        return DeploymentKey(check_name(env), WorkloadKind(kind).value, check_name(name))
    except ValueError as exc:
        raise AgentformError(404, "NotFound", f"no such workload: {exc}") from None


@router.api_route(
    "/run/{env}/{kind}/{name}", methods=["POST", "GET"], summary="Invoke a deployment"
)
@router.api_route(
    "/run/{env}/{kind}/{name}/{path:path}",
    methods=["POST", "GET"],
    summary="Invoke a deployment at a sub-path (e.g. a model API's /v1/chat/completions)",
)
async def run(request: Request, env: str, kind: str, name: str, path: str = "") -> Response:
    host = host_of(request)
    key = target_of(env, kind, name)
    caller = caller_of(host, request.headers, env)
    body = await read_payload(request)
    if body and request.method == "POST":
        try:
            json.loads(body)
        except ValueError as exc:
            raise AgentformError(
                400, "MalformedJson", f"the request body is not valid JSON: {exc}"
            ) from None
        except RecursionError:
            raise AgentformError(
                400, "MalformedJson", "the request body is JSON nested too deeply to parse"
            ) from None
    result = await host.invoker.invoke(
        key,
        caller,
        invoke.Request(
            method=request.method,
            path="/" + path,
            body=body,
            # From the ASGI scope: `request.url` would build and parse a whole URL for this.
            query=request.scope["query_string"].decode("latin-1"),
            headers=dict(request.headers),
            source_ip=request.client.host if request.client else "",
        ),
    )
    return Response(result.body, result.status, result.headers)


class RunGateway:
    """ASGI middleware answering `GET`/`POST /run/{env}/{kind}/{name}[/path]` with `run`
    directly; everything else (MCP endpoints included) goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = _run_target(scope) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        if header_bytes(scope) > MAX_HEADER_BYTES:
            await send_error(send, headers_too_large())  # and close, as on every route
            return
        try:
            response = await run(Request(scope, receive), *target)
        except AgentformError as exc:
            response = error_response(exc)
        await response(scope, receive, send)


def _run_target(scope: Scope) -> tuple[str, str, str, str] | None:
    """(env, kind, name, sub-path) of a run request the fast path serves, else None."""
    path: str = scope["path"]
    if not path.startswith("/run/") or scope["method"] not in ("GET", "POST"):
        return None
    env, _, rest = path[len("/run/") :].partition("/")
    kind, _, rest = rest.partition("/")
    name, slash, sub_path = rest.partition("/")
    if not (env and kind and name) or (kind == "functions" and sub_path == "mcp"):
        return None  # not a run route (the app answers 404), or a function's MCP endpoint
    return env, kind, name, sub_path if slash else ""
