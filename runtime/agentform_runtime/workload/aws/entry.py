"""The handler's front door on Lambda: what the local host does around each invocation, done
by the invocation itself.

An event reaches a function from its function URL (an end user: API key or JWT) or from
another workload's `lambda:Invoke` (a hop: a signed hop token). Either way the request gets
an id, joins its trace (an incoming W3C `traceparent` is honoured), is checked against the
deployment's token budgets, is recorded in the lineage table when it starts and when it ends,
and answers with the host's headers. Identity headers sent by the caller are never trusted."""

from __future__ import annotations

import json
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import (
    ERROR_CLASS_HEADER,
    HOP_TOKEN_HEADER,
    REQUEST_ID_HEADER,
    TRACE_ID_HEADER,
    USAGE_HEADER,
    VERSION_HEADER,
    DeploymentKey,
    Execution,
    WorkloadKind,
)
from agentform_runtime.workload import responses
from agentform_runtime.workload.aws import budgets, hop_token, identity, lineage
from agentform_runtime.workload.aws.hops import LambdaHopClient
from agentform_runtime.workload.context import Context, serving
from agentform_runtime.workload.host_client import HostClient

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# Headers only Agentform sets: dropped from what the caller sent.
_RESERVED = ("authorization", "cookie", "x-agentform-")

Respond = Callable[[Any, Context, HostClient], dict[str, Any]]


@dataclass(frozen=True)
class Caller:
    identity: str
    trace_id: str
    parent_id: str | None
    chain: tuple[DeploymentKey, ...] = ()


def me() -> DeploymentKey:
    return DeploymentKey(
        os.environ.get("AGENTFORM_ENVIRONMENT", ""),
        os.environ.get("AGENTFORM_KIND", ""),
        os.environ.get("AGENTFORM_NAME", ""),
    )


def _trace_context(headers: dict[str, str]) -> tuple[str, str | None]:
    match = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    if match and set(match.group(1)) != {"0"}:
        return match.group(1), match.group(2)
    return uuid.uuid4().hex, None


def caller_of(headers: dict[str, str], key: DeploymentKey) -> Caller:
    """A hop (signed token) or an end user (API key or JWT): 401/403 otherwise."""
    token = headers.get(HOP_TOKEN_HEADER)
    if token:
        claims = hop_token.verify(token, key)
        return Caller(claims.identity, claims.trace_id, claims.parent_id, claims.chain)
    user = identity.end_user(headers, key.environment)
    trace_id, parent = _trace_context(headers)
    return Caller(user, trace_id, parent)


def _error(exc: AgentformError, headers: dict[str, str]) -> dict[str, Any]:
    return responses.ok(exc.body(), exc.status, headers)


def _usage(headers: dict[str, str]) -> tuple[int, int]:
    try:
        usage = json.loads(headers.get(USAGE_HEADER, "{}"))
        return int(usage.get("input", 0)), int(usage.get("output", 0))
    except (ValueError, TypeError, AttributeError):
        return 0, 0


def serve(
    event: dict[str, Any],
    lambda_context: Any,
    deadline: float,
    body_of: Callable[[dict[str, Any]], Any],
    respond: Respond,
) -> dict[str, Any]:
    """Serve one function-URL event (or a hop shaped like one) on Lambda."""
    key = me()
    request_id = uuid.uuid4().hex
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    answer = {REQUEST_ID_HEADER: request_id}
    try:
        caller = caller_of(headers, key)
    except AgentformError as exc:
        return _error(exc, answer)
    answer[TRACE_ID_HEADER] = caller.trace_id
    path = event.get("rawPath") or "/"
    execution = Execution(request_id, caller.trace_id, caller.parent_id, caller.identity, path)
    try:
        body = body_of(event)
    except ValueError as exc:
        return _error(
            AgentformError(400, "MalformedJson", f"the request body is not valid JSON: {exc}"),
            answer,
        )
    try:
        budgets.check(key, budgets.budgets_of(key.kind))
    except AgentformError as exc:
        lineage.refused(key, execution, exc.status, exc.code, exc.message)
        return _error(exc, answer)
    version = os.environ.get("AGENTFORM_VERSION", "")
    traceparent = f"00-{caller.trace_id}-{request_id[:16]}-01"
    answer.update({VERSION_HEADER: version, "traceparent": traceparent})
    started = time.time()
    lineage.started(key, execution, version, started)
    chain = (key, *caller.chain)
    visible = {k: v for k, v in headers.items() if not k.startswith(_RESERVED)}
    context = Context(
        request_id=request_id,
        trace_id=caller.trace_id,
        traceparent=traceparent,
        identity=caller.identity,
        environment=key.environment,
        deployment=key.name,
        version=version,
        headers=visible,
    )
    own_arn = getattr(lambda_context, "invoked_function_arn", "") or ""
    client = LambdaHopClient(context, deadline, key, chain, own_arn)
    try:
        with serving(context):
            result = respond(body, context, client)
    except Exception as exc:  # the handler itself failed: record it, let Lambda report it
        lineage.finished(
            execution,
            502,
            (time.time() - started) * 1000,
            type(exc).__name__,
            traceback.format_exc(),
            0,
            0,
        )
        raise
    result_headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    result["headers"] = {**result_headers, **answer}
    status = int(result.get("statusCode", 200))
    error_class = (
        (result_headers.get(ERROR_CLASS_HEADER) or f"HTTP{status}") if status >= 400 else None
    )
    error_text = str(result.get("body", ""))[:2000] if status >= 400 else None
    input_tokens, output_tokens = _usage(result_headers)
    if key.kind == WorkloadKind.MODELS.value:
        budgets.add(chain, input_tokens, output_tokens)
    lineage.finished(
        execution,
        status,
        (time.time() - started) * 1000,
        error_class,
        error_text,
        input_tokens,
        output_tokens,
    )
    return result
