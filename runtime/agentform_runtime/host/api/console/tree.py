"""The lineage tree of one trace, laid out for the trace page: hops in depth-first order,
each with its depth and its place on the trace's time line."""

from __future__ import annotations

from dataclasses import dataclass

from agentform_runtime.host.state.store import ExecutionRow
from agentform_runtime.specs import WorkloadKind


@dataclass(frozen=True)
class Hop:
    record: ExecutionRow
    depth: int
    offset_ms: float  # from the start of the trace's first hop
    bar_x: float  # the hop's bar on a 0..1000 time line
    bar_width: float

    @property
    def workload(self) -> str:
        return f"{self.record.kind}/{self.record.name}"

    @property
    def tokens(self) -> int:
        return self.record.input_tokens + self.record.output_tokens


@dataclass(frozen=True)
class TraceTree:
    trace_id: str
    hops: list[Hop]
    total_ms: float
    input_tokens: int
    output_tokens: int
    identities: list[str]
    refusals: int
    errors: int


TIMELINE = 1000.0


def lay_out(trace_id: str, records: list[ExecutionRow]) -> TraceTree:
    """Records whose parent is not in the trace (a caller outside the host) become roots."""
    ids = {r.request_id for r in records}
    children: dict[str | None, list[ExecutionRow]] = {}
    for record in sorted(records, key=lambda r: r.started):
        parent = record.parent_id if record.parent_id in ids else None
        children.setdefault(parent, []).append(record)
    origin = min((r.started for r in records), default=0.0)
    end = max((r.started + (r.duration_ms or 0.0) / 1000 for r in records), default=origin)
    total_ms = max((end - origin) * 1000, 0.001)
    hops: list[Hop] = []

    def visit(record: ExecutionRow, depth: int) -> None:
        offset = (record.started - origin) * 1000
        width = (record.duration_ms or 0.0) / total_ms * TIMELINE
        hops.append(
            Hop(
                record=record,
                depth=depth,
                offset_ms=offset,
                bar_x=offset / total_ms * TIMELINE,
                bar_width=max(width, 2.0),  # a refusal (0 ms) still shows as a tick
            )
        )
        for child in children.get(record.request_id, []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    return TraceTree(
        trace_id=trace_id,
        hops=hops,
        total_ms=total_ms,
        # Models spend the tokens; an agent's record repeats the sum of its hops' tokens.
        input_tokens=sum(r.input_tokens for r in records if r.kind == WorkloadKind.MODELS),
        output_tokens=sum(r.output_tokens for r in records if r.kind == WorkloadKind.MODELS),
        identities=sorted({r.identity for r in records if r.identity}),
        refusals=sum(r.status == "refused" for r in records),
        errors=sum(r.status in ("error", "failed") for r in records),
    )
