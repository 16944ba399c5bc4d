"""OTLP/HTTP with JSON encoding, batched on a background thread.

The request path only appends a finished span to a bounded queue (a lock and a list append);
encoding and sending happen on the exporter's own thread. When the queue is full, or the
collector refuses or cannot be reached, spans are dropped and counted, never retried at the
cost of a request. The JSON is written directly (the official OTLP JSON classes cost 250 us
a span, which on this thread would hold the GIL against the event loop); the tests parse
it with those classes (`opentelemetry-proto-json`)."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from agentform_runtime.host.telemetry.config import OtlpSettings

log = logging.getLogger("agentform.host")

SCOPE_NAME = "agentform_runtime.host"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"  # the semantic conventions we follow

KIND_INTERNAL = 1  # Span.SpanKind in opentelemetry/proto/trace/v1/trace.proto
KIND_CLIENT = 3
STATUS_UNSET = 0  # Status.StatusCode
STATUS_ERROR = 2

_SAMPLED = 0x01  # W3C trace flags, in the low byte of Span.flags
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags: whether the parent is remote


@dataclass
class SpanData:
    """One finished span, as the request path hands it over (ids in lowercase hex)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    parent_is_remote: bool
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, str | int | float | bool] = field(default_factory=dict)
    status_code: int = STATUS_UNSET
    status_message: str = ""


def _value(value: str | int | float | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 is a string in OTLP/JSON
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in values.items()]


def _span(data: SpanData) -> dict[str, Any]:
    span: dict[str, Any] = {"traceId": data.trace_id, "spanId": data.span_id}
    if data.parent_span_id:
        span["parentSpanId"] = data.parent_span_id
    span["flags"] = _SAMPLED | _HAS_IS_REMOTE | (_IS_REMOTE if data.parent_is_remote else 0)
    span["name"] = data.name
    span["kind"] = data.kind
    span["startTimeUnixNano"] = str(data.start_ns)
    span["endTimeUnixNano"] = str(data.end_ns)
    if data.attributes:  # the JSON mapping leaves empty fields out
        span["attributes"] = _attributes(data.attributes)
    if data.status_code != STATUS_UNSET:
        span["status"] = {"message": data.status_message, "code": data.status_code}
    return span


def encode(resource: dict[str, str], spans: list[SpanData], version: str) -> bytes:
    """An ExportTraceServiceRequest in OTLP's JSON encoding (the field names and value
    forms of the protobuf JSON mapping; the tests check it against the official classes)."""
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource)},
                "scopeSpans": [
                    {
                        "scope": {"name": SCOPE_NAME, "version": version},
                        "spans": [_span(span) for span in spans],
                        "schemaUrl": SCHEMA_URL,
                    }
                ],
                "schemaUrl": SCHEMA_URL,
            }
        ]
    }
    return json.dumps(request, separators=(",", ":")).encode()


@dataclass
class ExportCounters:
    exported: int = 0
    dropped_queue_full: int = 0
    dropped_export_failed: int = 0
    failed_exports: int = 0
    last_error: str | None = None

    @property
    def dropped(self) -> int:
        return self.dropped_queue_full + self.dropped_export_failed


class BatchExporter:
    """A bounded queue of spans and the thread that sends them in batches."""

    def __init__(self, settings: OtlpSettings, version: str = "0") -> None:
        self.settings = settings
        self.version = version
        self.counters = ExportCounters()
        self._queue: list[SpanData] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="otlp-exporter", daemon=True)
        self._client = httpx.Client(
            timeout=settings.timeout_s,
            headers={**settings.headers, "content-type": "application/json"},
        )

    def start(self) -> None:
        self._thread.start()

    def submit(self, span: SpanData) -> None:
        """Queue one span; never blocks (a full queue drops it and counts it)."""
        with self._lock:
            if len(self._queue) >= self.settings.max_queue_size:
                self.counters.dropped_queue_full += 1
                return
            self._queue.append(span)
            full_batch = len(self._queue) >= self.settings.max_batch_size
        if full_batch:
            self._wake.set()

    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within `timeout_s`), then stop the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._client.close()

    def _take(self) -> list[SpanData]:
        with self._lock:
            batch = self._queue[: self.settings.max_batch_size]
            del self._queue[: len(batch)]
            return batch

    def _run(self) -> None:
        while True:
            self._wake.wait(self.settings.schedule_delay_s)
            self._wake.clear()
            while batch := self._take():
                self._send(batch)
            if self._stopping:
                return

    def _send(self, batch: list[SpanData]) -> None:
        try:
            body = encode(self.settings.resource, batch, self.version)
            response = self._client.post(self.settings.traces_url, content=body)
            if response.status_code >= 300:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        except Exception as exc:  # the collector's trouble must never reach a request
            self._failed(batch, f"{type(exc).__name__}: {exc}")
            return
        self.counters.exported += len(batch)
        if self.counters.last_error is not None:
            log.info("OTLP export to %s works again", self.settings.traces_url)
            self.counters.last_error = None

    def _failed(self, batch: list[SpanData], error: str) -> None:
        counters = self.counters
        counters.dropped_export_failed += len(batch)
        counters.failed_exports += 1
        if counters.last_error is None:  # log when it starts failing, not every batch
            log.warning(
                "OTLP export to %s failed (%s); dropping spans until it works again",
                self.settings.traces_url,
                error,
            )
        counters.last_error = error
        if not self._stopping:
            time.sleep(min(1.0, self.settings.schedule_delay_s))  # no busy loop while down
