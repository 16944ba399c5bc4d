"""The lineage recorder: one audit record per execution, or refusal, in its trace.

Every invocation is recorded when it starts (so a host that dies mid-request leaves a record
that the next start marks failed) and completed with its outcome. Records of one request
share its trace id and point at their parent, which is what `agentform traces` draws.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agentform_runtime.host.state.store import ExecutionRow, Store
from agentform_runtime.specs import DeploymentKey, Execution, Manifest

if TYPE_CHECKING:
    from agentform_runtime.host.telemetry.spans import SpanRecorder


class LineageRecorder:
    """Writes the audit records and, when OpenTelemetry export is on, the same hops as spans."""

    def __init__(self, store: Store, spans: SpanRecorder | None = None) -> None:
        self.store = store
        self.spans = spans

    def started(
        self,
        key: DeploymentKey,
        execution: Execution,
        version: str,
        started: float,
        manifest: Manifest | None = None,
    ) -> None:
        self.store.start_execution(_row(key, execution, started, version=version))
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
        self.store.finish_execution(
            request_id,
            status="ok" if http_status < 400 else "error",
            http_status=http_status,
            duration_ms=duration_ms,
            error_class=error_class,
            error=error,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
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
