"""The run gateway, `/run/{env}/{kind}/{name}[/path]`: authenticates the end user, records the
execution, and hands the request to the deployment's workers as a Lambda function-URL event
(payload format 2.0), so the same handler runs unchanged behind an AWS Lambda function URL.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from agentform_runtime.host.context import HostContext, host_of
from agentform_runtime.host.errors import ApiError
from agentform_runtime.host.runtime_api import Invocation, Outcome
from agentform_runtime.host.store import ExecutionRow
from agentform_runtime.host.workers import InvocationFailed
from agentform_runtime.specs import WorkloadKind, check_name

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's buffered payload limit, each way
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

router = APIRouter()


async def read_payload(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
        raise ApiError(
            413, "PayloadTooLarge", f"request bodies are limited to {MAX_PAYLOAD_BYTES} bytes"
        )
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_PAYLOAD_BYTES:
            raise ApiError(
                413, "PayloadTooLarge", f"request bodies are limited to {MAX_PAYLOAD_BYTES} bytes"
            )
    return bytes(data)


def trace_context(headers: Any) -> tuple[str, str | None]:
    """(trace id, parent span id) from an incoming W3C traceparent, or a new trace."""
    match = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    if match and set(match.group(1)) != {"0"}:
        return match.group(1), match.group(2)
    return uuid.uuid4().hex, None


def _event(request: Request, path: str, body: bytes, context: dict[str, str]) -> bytes:
    headers = {k: v for k, v in request.headers.items() if k not in ("authorization", "cookie")}
    headers.update(context)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    return json.dumps(
        {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": request.url.query,
            "headers": headers,
            "requestContext": {
                "requestId": context["x-agentform-request-id"],
                "http": {
                    "method": request.method,
                    "path": path,
                    "sourceIp": request.client.host if request.client else "",
                },
                "timeEpoch": int(time.time() * 1000),
            },
            "body": text,
            "isBase64Encoded": encoded,
        }
    ).encode()


def _response(outcome: Outcome, extra_headers: dict[str, str]) -> tuple[Response, str | None]:
    """Map a handler's result like a Lambda function URL does; return (response, error class)."""
    if not outcome.ok:
        try:
            error = json.loads(outcome.body)
        except ValueError:
            error = {"errorMessage": outcome.body.decode(errors="replace")}
        error_type = str(error.get("errorType") or outcome.error_type)
        return ApiError(
            502,
            "FunctionError",
            str(error.get("errorMessage", "")),
            type=error_type,
        ).response(extra_headers), error_type
    try:
        result = json.loads(outcome.body) if outcome.body else None
    except ValueError:
        return Response(outcome.body, 200, extra_headers, media_type="application/json"), None
    if isinstance(result, dict) and "statusCode" in result:
        body = result.get("body", "")
        if result.get("isBase64Encoded"):
            payload = base64.b64decode(body)
        else:
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        headers.update(extra_headers)
        headers.setdefault("content-type", "application/json")
        status = int(result["statusCode"])
        error_class = None
        if status >= 400:
            error_class = headers.get("x-agentform-error-class") or f"HTTP{status}"
        return Response(payload, status, headers), error_class
    return Response(outcome.body, 200, extra_headers, media_type="application/json"), None


@router.api_route(
    "/run/{env}/{kind}/{name}",
    methods=["POST", "GET"],
    include_in_schema=True,
    summary="Invoke a deployment",
)
@router.api_route(
    "/run/{env}/{kind}/{name}/{path:path}",
    methods=["POST", "GET", "DELETE"],
    summary="Invoke a deployment at a sub-path (model API, MCP)",
)
async def run(request: Request, env: str, kind: str, name: str, path: str = "") -> Response:
    host: HostContext = host_of(request)
    try:
        workload_kind = WorkloadKind(kind)
        check_name(env)
        check_name(name)
    except ValueError as exc:
        raise ApiError(404, "NotFound", f"no such workload: {exc}") from None
    identity = host.auth.end_user(request.headers, env)
    body = await read_payload(request)
    if body and request.method == "POST" and not path.startswith("mcp"):
        try:
            json.loads(body)
        except ValueError as exc:
            raise ApiError(
                400, "MalformedJson", f"the request body is not valid JSON: {exc}"
            ) from None
    trace_id, parent_span = trace_context(request.headers)
    request_id = uuid.uuid4().hex
    key = (env, workload_kind.value, name)
    live = host.deployments.route(key)  # no await between routing and invoke: see drain()
    pool = live.pool
    assert pool is not None
    context = {
        "x-agentform-request-id": request_id,
        "x-agentform-trace-id": trace_id,
        "x-agentform-identity": identity.sub,
        "x-agentform-environment": env,
        "traceparent": f"00-{trace_id}-{request_id[:16]}-01",
    }
    started = time.time()
    host.store.start_execution(
        ExecutionRow(
            request_id=request_id,
            trace_id=trace_id,
            parent_id=parent_span,
            environment=env,
            kind=workload_kind.value,
            name=name,
            version=live.version,
            identity=identity.sub,
            started=started,
            duration_ms=None,
            status="running",
            http_status=None,
            error_class=None,
            error=None,
            input_tokens=0,
            output_tokens=0,
        )
    )
    invocation = Invocation(
        request_id=request_id,
        event=_event(request, "/" + path, body, context),
        deadline_ms=int((started + pool.spec.timeout_s) * 1000),
        trace_header=f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={request_id[:16]};Sampled=1",
        function_arn=pool.spec.function_arn,
    )
    headers = {
        "x-agentform-request-id": request_id,
        "x-agentform-trace-id": trace_id,
        "x-agentform-version": live.version,
        "traceparent": context["traceparent"],
    }
    error_text: str | None = None
    try:
        outcome = await pool.invoke(invocation)
        response, error_class = _response(outcome, headers)
        if not outcome.ok:
            error_text = outcome.body.decode(errors="replace")
    except InvocationFailed as exc:
        response = ApiError(exc.status, exc.code, exc.message).response(headers)
        error_class, error_text = exc.code, exc.message
    host.store.finish_execution(
        request_id,
        status="ok" if response.status_code < 400 else "error",
        http_status=response.status_code,
        duration_ms=(time.time() - started) * 1000,
        error_class=error_class,
        error=error_text,
    )
    return response
