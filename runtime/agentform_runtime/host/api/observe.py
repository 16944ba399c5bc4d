"""`/v1/telemetry` and `/v1/retention`: how span export and pruning are doing (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from agentform_runtime.host.context import host_of
from agentform_runtime.host.state.retention import Pruner
from agentform_runtime.host.telemetry.otlp import BatchExporter


def _admin(request: Request) -> None:
    host_of(request).auth.admin(request.headers)


router = APIRouter(prefix="/v1", dependencies=[Depends(_admin)], tags=["observe"])


class TelemetryView(BaseModel):
    enabled: bool
    endpoint: str | None = None
    exported: int = 0
    queued: int = 0
    dropped: int = 0
    dropped_queue_full: int = 0
    dropped_export_failed: int = 0
    failed_exports: int = 0
    last_error: str | None = None


class RetentionView(BaseModel):
    max_age_s: float
    max_store_bytes: int
    log_max_bytes: int
    log_keep: int
    interval_s: float
    runs: int
    records: int
    oldest_record: float | None
    deleted_by_age: int
    deleted_by_size: int
    token_rows_deleted: int
    logs_rotated: int
    logs_deleted: int
    store_bytes: int
    log_bytes: int
    last_run: float | None
    last_error: str | None


@router.get("/telemetry", response_model=TelemetryView)
async def telemetry(request: Request) -> TelemetryView:
    exporter: BatchExporter | None = request.app.state.exporter
    if exporter is None:
        return TelemetryView(enabled=False)
    counters = exporter.counters
    return TelemetryView(
        enabled=True,
        endpoint=exporter.settings.traces_url,
        exported=counters.exported,
        queued=exporter.queued(),
        dropped=counters.dropped,
        dropped_queue_full=counters.dropped_queue_full,
        dropped_export_failed=counters.dropped_export_failed,
        failed_exports=counters.failed_exports,
        last_error=counters.last_error,
    )


@router.get("/retention", response_model=RetentionView)
async def retention(request: Request) -> RetentionView:
    pruner: Pruner = request.app.state.pruner
    settings, totals = pruner.retention, pruner.totals
    return RetentionView(
        max_age_s=settings.max_age_s,
        max_store_bytes=settings.max_bytes,
        log_max_bytes=settings.log_max_bytes,
        log_keep=settings.log_keep,
        interval_s=settings.interval_s,
        runs=totals.runs,
        records=totals.records,
        oldest_record=totals.oldest_record,
        deleted_by_age=totals.deleted_by_age,
        deleted_by_size=totals.deleted_by_size,
        token_rows_deleted=totals.token_rows_deleted,
        logs_rotated=totals.logs_rotated,
        logs_deleted=totals.logs_deleted,
        store_bytes=totals.store_bytes,
        log_bytes=totals.log_bytes,
        last_run=totals.last_run,
        last_error=totals.last_error,
    )
