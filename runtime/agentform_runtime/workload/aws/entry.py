"""The handler's front door on Lambda: what the local host does around each invocation, done
by the invocation itself.

An event reaches a function from its function URL (an end user: API key or JWT) or from
another workload's `lambda:Invoke` (a hop: a signed hop token). Either way the request gets
an id, joins its trace (an incoming W3C `traceparent` is honoured), is checked against the
deployment's token budgets, is recorded in the lineage table when it starts and when it ends,
and answers with the host's headers. Identity headers sent by the caller are never trusted.

A function's declared connections (`CONNECTION_SECRETS_VAR`) are read from Secrets Manager
once per process, at init, into `ctx.connections`, as the local host hands them to its
workers; a failure's answer and record lose every secret value the workload holds, as the
local host removes them."""

from __future__ import annotations

import base64
import json
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agentform_runtime.aws_contract import CONNECTION_SECRET_VAR, CONNECTION_SECRETS_VAR
from agentform_runtime.errors import AgentformError
from agentform_runtime.redaction import redact, redact_bytes
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
from agentform_runtime.workload.aws import budgets, clients, hop_token, identity, lineage
from agentform_runtime.workload.aws.hops import LambdaHopClient
from agentform_runtime.workload.context import Connection, Context, serving
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


def connections() -> Mapping[str, Connection]:
    """The function's declared connections by name, as `ctx.connections` on the local host:
    each secret `CONNECTION_SECRETS_VAR` names, read once per process (`clients.secret_json`
    keeps it)."""
    arns = json.loads(os.environ.get(CONNECTION_SECRETS_VAR) or "{}")
    return MappingProxyType(
        {name: _connection(clients.secret_json(arn)) for name, arn in sorted(arns.items())}
    )


def _connection(value: dict[str, Any]) -> Connection:
    def strings(key: str) -> dict[str, str]:
        found = value.get(key)
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    return Connection(str(value.get("provider", "")), strings("config"), strings("secrets"))


def secret_values() -> list[str]:
    """Every secret value this workload holds: its declared connections' and a model API's
    own connection's."""
    values = [value for c in connections().values() for value in c.secrets.values()]
    arn = os.environ.get(CONNECTION_SECRET_VAR, "")
    if arn:
        values += _connection(clients.secret_json(arn)).secrets.values()
    return values


def _redacted(result: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """A failure's answer with `secrets` removed from its body and headers: a workload's
    error may echo what its provider was sent (the local host does the same)."""
    body = result.get("body")
    if isinstance(body, str) and result.get("isBase64Encoded"):
        body = base64.b64encode(redact_bytes(base64.b64decode(body), secrets)).decode()
    elif isinstance(body, str):
        body = redact(body, secrets)
    headers = {
        str(k): redact(str(v), secrets)
        for k, v in (result.get("headers") or {}).items()
        if str(k).lower() != "content-length"
    }
    return {**result, "body": body, "headers": headers}


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
        connections=connections(),
    )
    own_arn = getattr(lambda_context, "invoked_function_arn", "") or ""
    client = LambdaHopClient(context, deadline, key, chain, own_arn)
    try:
        with serving(context):
            result = respond(body, context, client)
    except Exception as exc:  # the handler itself failed: record it, let Lambda report it
        try:
            secrets = secret_values()
        except Exception:  # unreadable now: what was never read cannot leak either
            secrets = []
        lineage.finished(
            execution,
            502,
            (time.time() - started) * 1000,
            redact(type(exc).__name__, secrets),
            redact(traceback.format_exc(), secrets),
            0,
            0,
        )
        message = redact(str(exc), secrets)
        if message != str(exc):  # Lambda would report the message as it is
            raise RuntimeError(f"{redact(type(exc).__name__, secrets)}: {message}") from None
        raise
    if int(result.get("statusCode", 200)) >= 400:
        secrets = secret_values()
        if secrets:
            result = _redacted(result, secrets)
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


# Read at init, as a model API's connection is: a function whose connections cannot be read
# fails its readiness check, so `live` never moves to it.
if os.environ.get(CONNECTION_SECRETS_VAR):
    connections()
