"""One invocation of one deployment: the path every request takes, whether it comes from an
end user, from another workload (a hop) or from an MCP client.

It enforces the caller's allow-list and the target's token budgets, writes the audit record
(start, then outcome), issues the hop token the workload may use for its own calls, hands a
Lambda function-URL event (payload format 2.0) to the workers, and counts model tokens
against the model and every agent above it in the lineage."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from agentform_runtime.errors import AgentformError
from agentform_runtime.host import results
from agentform_runtime.host.budgets import Budgets
from agentform_runtime.host.deployments import Deployments
from agentform_runtime.host.hops import Hop, HopRegistry
from agentform_runtime.host.lineage import LineageRecorder
from agentform_runtime.host.running.runtime_api import (
    MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES,
)
from agentform_runtime.host.running.runtime_api import (
    RESPONSE_TOO_LARGE,
    Invocation,
    Outcome,
)
from agentform_runtime.redaction import redact, redact_bytes
from agentform_runtime.specs import (
    ERROR_CLASS_HEADER,
    HOP_TOKEN_HEADER,
    IDENTITY_HEADER,
    MAX_TOKEN_BUDGET,
    REQUEST_ID_HEADER,
    TRACE_ID_HEADER,
    USAGE_HEADER,
    VERSION_HEADER,
    DeploymentKey,
    Execution,
    WorkloadKind,
)

log = logging.getLogger("agentform.host")


@dataclass(frozen=True)
class Caller:
    """Who asks, and where the request sits in its trace."""

    identity: str
    trace_id: str
    parent_id: str | None
    hop: Hop | None = None


@dataclass
class Request:
    """The HTTP request as the workload will see it."""

    method: str
    path: str
    body: bytes
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    source_ip: str = ""


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _error(exc: AgentformError, headers: dict[str, str]) -> Result:
    return Result(
        exc.status,
        {**headers, "content-type": "application/json"},
        json.dumps(exc.body()).encode(),
    )


def _event(request: Request, context: dict[str, str]) -> bytes:
    headers = {k: v for k, v in request.headers.items() if k not in ("authorization", "cookie")}
    headers.update(context)
    try:
        text, encoded = request.body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(request.body).decode(), True
    return json.dumps(
        {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": request.path,
            "rawQueryString": request.query,
            "headers": headers,
            "requestContext": {
                "requestId": context[REQUEST_ID_HEADER],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "sourceIp": request.source_ip,
                },
                "timeEpoch": int(time.time() * 1000),
            },
            "body": text,
            "isBase64Encoded": encoded,
        }
    ).encode()


def _result(outcome: Outcome, headers: dict[str, str]) -> tuple[Result, str | None]:
    """Map a handler's result as a Lambda function URL does; return (result, error class)."""
    if outcome.error_type == RESPONSE_TOO_LARGE:
        return _too_large(headers), "ResponseTooLarge"
    if not outcome.ok:
        error_type, message = results.error_of(outcome.body, outcome.error_type)
        failure = AgentformError(502, "FunctionError", message, type=error_type)
        return _error(failure, headers), error_type
    payload = results.parse(outcome.body)
    if not (isinstance(payload, dict) and "statusCode" in payload):
        status, merged, data = 200, {**headers, "content-type": "application/json"}, outcome.body
    else:
        try:
            status, merged, data = results.structured(payload)
        except results.InvalidResult as exc:
            return _error(exc, headers), exc.code
        merged.update(headers)
        merged.setdefault("content-type", "application/json")
    if len(data) > MAX_PAYLOAD_BYTES:
        return _too_large(headers), "ResponseTooLarge"
    error_class = (merged.get(ERROR_CLASS_HEADER) or f"HTTP{status}") if status >= 400 else None
    return Result(status, merged, data), error_class


def _too_large(headers: dict[str, str]) -> Result:
    failure = AgentformError(
        502, "ResponseTooLarge", f"the workload answered more than {MAX_PAYLOAD_BYTES} bytes"
    )
    return _error(failure, headers)


def _usage(headers: dict[str, str]) -> tuple[int, int]:
    try:
        usage = json.loads(headers.get(USAGE_HEADER, "{}"))
        counts = int(usage.get("input", 0)), int(usage.get("output", 0))
    except (ValueError, TypeError, AttributeError, RecursionError, OverflowError):
        return 0, 0
    # A workload reports its own usage: a count no model could produce is not counted.
    return counts if all(0 <= n <= MAX_TOKEN_BUDGET for n in counts) else (0, 0)


MAX_ERROR_TEXT = 2000  # characters of an error kept in its execution record
MAX_ERROR_CLASS = 100  # characters of an error class (a worker's errorType, a header) kept


def default_max_concurrency() -> int:
    return 8 * (os.cpu_count() or 1)


class Invoker:
    """Runs invocations: checks, lineage, hop tokens, workers, token counting.

    At most `max_concurrency` requests from outside run at once; the rest wait their turn,
    so a burst larger than the machine queues instead of thrashing it. Hops are not
    counted: the request they belong to already holds its place, and making them wait for
    one could deadlock a chain of agents."""

    def __init__(
        self,
        deployments: Deployments,
        hops: HopRegistry,
        budgets: Budgets,
        lineage: LineageRecorder,
        max_concurrency: int | None = None,
    ) -> None:
        self.deployments = deployments
        self.hops = hops
        self.budgets = budgets
        self.lineage = lineage
        self._admission = asyncio.Semaphore(max_concurrency or default_max_concurrency())

    async def invoke(self, key: DeploymentKey, caller: Caller, request: Request) -> Result:
        if caller.hop is not None:
            return await self._invoke(key, caller, request)
        async with self._admission:
            return await self._invoke(key, caller, request)

    def _redacted(
        self, connections: list[str], result: Result, error_text: str | None, error_class: str
    ) -> tuple[Result, str | None, str]:
        """The failure with its connections' secret values removed, from the answer and
        from the record: a workload's error may echo what its provider was sent. The
        workload redacts too; this holds for whatever code the artifact runs."""
        secrets: list[str] = []
        for connection in connections:
            try:
                opened = self.deployments.catalog.open_connection(connection)
            except AgentformError:  # deleted meanwhile: nothing left to protect
                continue
            values = opened.get("secrets")
            if isinstance(values, dict):
                secrets += [str(v) for v in values.values()]
        if not secrets:
            return result, error_text, error_class
        body = redact_bytes(result.body, secrets)
        headers = {k: redact(v, secrets) for k, v in result.headers.items()}
        headers.pop("content-length", None)
        text = None if error_text is None else redact(error_text, secrets)
        return Result(result.status, headers, body), text, redact(error_class, secrets)

    async def _invoke(self, key: DeploymentKey, caller: Caller, request: Request) -> Result:
        request_id = uuid.uuid4().hex
        headers = {REQUEST_ID_HEADER: request_id, TRACE_ID_HEADER: caller.trace_id}
        execution = Execution(
            request_id, caller.trace_id, caller.parent_id, caller.identity, request.path
        )
        try:
            if caller.hop is not None:
                caller.hop.check_allowed(key)
                if key in caller.hop.chain:
                    path = " > ".join(f"{k}/{n}" for _, k, n in reversed(caller.hop.chain))
                    raise AgentformError(
                        508,
                        "LoopDetected",
                        f"{key.kind}/{key.name} is already handling this request ({path}); "
                        "a handoff cycle was refused",
                    )
            live = self.deployments.route(key)
            self.budgets.check(key, live.effective.token_budgets)
        except AgentformError as exc:
            if exc.status in (403, 429, 508):  # refusing a real target: part of the lineage
                self.lineage.refused(key, execution, exc.status, exc.code, exc.message)
            return _error(exc, headers)
        # No await between routing and pool.invoke(): a draining pool counts this request
        # in flight before it can stop (see WorkerPool.drain). `route` only returns
        # deployments that have a pool.
        pool = live.pool
        if pool is None:
            return _error(
                AgentformError(503, "DeploymentDisabled", f"{key} is deactivated"), headers
            )
        chain = (key, *(caller.hop.chain if caller.hop else ()))
        hop_token = self.hops.issue(
            Hop(key, request_id, caller.trace_id, caller.identity, live.manifest, chain)
        )
        traceparent = f"00-{caller.trace_id}-{request_id[:16]}-01"
        context = {
            REQUEST_ID_HEADER: request_id,
            TRACE_ID_HEADER: caller.trace_id,
            IDENTITY_HEADER: caller.identity,
            "traceparent": traceparent,
            HOP_TOKEN_HEADER: hop_token,
        }
        headers.update({VERSION_HEADER: live.version, "traceparent": traceparent})
        started = time.time()
        self.lineage.started(key, execution, live.version, started, live.manifest)
        invocation = Invocation(
            request_id=request_id,
            event=_event(request, context),
            deadline_ms=int((started + pool.spec.timeout_s) * 1000),
            trace_header=f"Root=1-{caller.trace_id[:8]}-{caller.trace_id[8:]};Parent={request_id[:16]};Sampled=1",
            function_arn=pool.spec.function_arn,
        )
        error_text: str | None = None
        try:
            outcome = await pool.invoke(invocation)
            result, error_class = _result(outcome, headers)
            if not outcome.ok:
                error_text = outcome.body.decode(errors="replace")
            elif error_class is not None:
                error_text = result.body.decode(errors="replace")
        except AgentformError as exc:
            result, error_class, error_text = _error(exc, headers), exc.code, exc.message
        except Exception as exc:  # never leave the record running or answer without ids
            log.exception("invocation %s of %s failed unexpectedly", request_id, key)
            failure = AgentformError(
                500, "InternalError", f"{type(exc).__name__}: see the host log"
            )
            result, error_class, error_text = _error(failure, headers), failure.code, repr(exc)
        finally:
            self.hops.revoke(hop_token)
        connections = [live.spec.connection] if live.spec.connection else live.spec.connections
        if error_class is not None and connections:
            result, error_text, error_class = self._redacted(
                connections, result, error_text, error_class
            )
        # Cut after redaction: no prefix of a secret survives. The class is the workload's
        # (its errorType, a header): bounded like the text.
        if error_text is not None:
            error_text = error_text[:MAX_ERROR_TEXT]
        if error_class is not None:
            error_class = error_class[:MAX_ERROR_CLASS]
        input_tokens, output_tokens = _usage(result.headers)
        if key.kind == WorkloadKind.MODELS.value:
            self.budgets.add(chain, input_tokens, output_tokens)
        self.lineage.finished(
            request_id,
            result.status,
            (time.time() - started) * 1000,
            error_class,
            error_text,
            input_tokens,
            output_tokens,
        )
        return result
