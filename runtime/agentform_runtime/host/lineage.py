"""The lineage recorder: one audit record per execution, or refusal, in its trace.

Every invocation is recorded before its answer leaves the host. One still running after
`RECORD_RUNNING_AFTER_S` is recorded as running then (so a host that dies mid-request leaves
a record that the next start marks failed) and completed with its outcome; a quicker one is
written once, complete, which halves the writes on the request path. Records of one request
share its trace id and point at their parent, which is what `agentform traces` draws.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import TYPE_CHECKING

from agentform_runtime.host.state.store import ExecutionRow, Store
from agentform_runtime.specs import DeploymentKey, Execution, Manifest, execution_status

if TYPE_CHECKING:
    from agentform_runtime.host.telemetry.spans import SpanRecorder


log = logging.getLogger("agentform.host")

RECORD_RUNNING_AFTER_S = 0.25


class LineageRecorder:
    """Writes the audit records and, when OpenTelemetry export is on, the same hops as spans."""

    def __init__(self, store: Store, spans: SpanRecorder | None = None) -> None:
        self.store = store
        self.spans = spans
        # Started, not yet written: each with the timer that writes it as running.
        self._unwritten: dict[str, tuple[ExecutionRow, asyncio.TimerHandle]] = {}

    def started(
        self,
        key: DeploymentKey,
        execution: Execution,
        version: str,
        started: float,
        manifest: Manifest | None = None,
    ) -> None:
        row = _row(key, execution, started, version=version)
        timer = asyncio.get_running_loop().call_later(
            RECORD_RUNNING_AFTER_S, self._write_running, row.request_id
        )
        self._unwritten[row.request_id] = (row, timer)
        if self.spans is not None:
            self.spans.started(key, execution, version, started, manifest)

    def refused(
        self, key: DeploymentKey, execution: Execution, status: int, code: str, message: str
    ) -> None:
        """A refusal of a real target (403 undeclared, 429 budget, 508 loop) is a hop too."""
        now = time.time()
        if self.spans is not None:
            self.spans.refused(key, execution, now, status, code, message)
        self.store.start_execution(
            _row(
                key,
                execution,
                now,
                status="refused",
                duration_ms=0.0,
                http_status=status,
                error_class=code,
                error=message,
            )
        )

    def finished(
        self,
        request_id: str,
        http_status: int,
        duration_ms: float,
        error_class: str | None,
        error: str | None,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        outcome = {
            "status": execution_status(http_status),
            "http_status": http_status,
            "duration_ms": duration_ms,
            "error_class": error_class,
            "error": error,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        unwritten = self._unwritten.pop(request_id, None)
        if unwritten is None:
            self.store.finish_execution(request_id, **outcome)  # type: ignore[arg-type]
        else:
            row, timer = unwritten
            timer.cancel()
            self.store.start_execution(row.model_copy(update=outcome))
        if self.spans is not None:
            self.spans.finished(
                request_id,
                http_status,
                duration_ms,
                error_class,
                error,
                input_tokens,
                output_tokens,
            )

    def _write_running(self, request_id: str) -> None:
        unwritten = self._unwritten.pop(request_id, None)
        if unwritten is None:
            return
        try:
            self.store.start_execution(unwritten[0])
        except sqlite3.Error:
            # Kept, so that the outcome writes the whole record (and the request, not a
            # timer, fails if the store stays unwritable).
            log.exception("could not record execution %s as running", request_id)
            self._unwritten[request_id] = unwritten

    def flush(self) -> None:
        """Write every started, unfinished execution as running (before the host stops)."""
        for request_id in list(self._unwritten):
            self._unwritten[request_id][1].cancel()
            self._write_running(request_id)


def _row(
    key: DeploymentKey, execution: Execution, started: float, **outcome: object
) -> ExecutionRow:
    return ExecutionRow(
        request_id=execution.request_id,
        trace_id=execution.trace_id,
        parent_id=execution.parent_id,
        environment=key.environment,
        kind=key.kind,
        name=key.name,
        path=execution.path,
        identity=execution.identity,
        started=started,
        **outcome,  # type: ignore[arg-type]
    )
