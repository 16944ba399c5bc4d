"""Executions as spans, following the OpenTelemetry GenAI semantic conventions v1.37.0
(development status; https://github.com/open-telemetry/semantic-conventions/tree/v1.37.0/
docs/gen-ai, the release where `gen_ai.provider.name` replaced `gen_ai.system`).

One execution record is one span; its span id is the first 16 hex digits of the request id,
which is also the parent id the host hands the workload in `traceparent`, so a hop's span
hangs under its caller's and one request is one trace across agents, models and tools:

| workload | span name               | kind     | gen_ai.operation.name | also                 |
|----------|-------------------------|----------|-----------------------|----------------------|
| agent    | `invoke_agent {name}`   | CLIENT   | invoke_agent          | gen_ai.agent.name    |
| function | `execute_tool {name}`   | INTERNAL | execute_tool          | gen_ai.tool.name     |
| model    | `chat {provider model}` | CLIENT   | chat                  | gen_ai.request.model |

`gen_ai.provider.name` is the model API's provider on `chat` spans (`openai`, `anthropic`;
an `openai-compatible` server is `openai`, as the conventions ask for OpenAI-compatible
APIs, with `server.address`/`server.port` naming the real server) and `agentform` on
`invoke_agent` spans (the platform that runs the agent). Token usage is
`gen_ai.usage.input_tokens`/`output_tokens`. Beyond the conventions: `enduser.id`,
`deployment.environment.name`, `agentform.deployment.version`, `agentform.request.id`,
`agentform.status` (ok, error, refused), `http.response.status_code` and, on failure,
`error.type` with span status ERROR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from agentform_runtime.host.telemetry.otlp import (
    KIND_CLIENT,
    KIND_INTERNAL,
    STATUS_ERROR,
    BatchExporter,
    SpanData,
)
from agentform_runtime.specs import (
    DeploymentKey,
    Manifest,
    ModelSpec,
    WorkloadKind,
    execution_status,
)

if TYPE_CHECKING:
    from agentform_runtime.specs import Execution

PLATFORM_PROVIDER = "agentform"
MAX_OPEN = 10_000  # spans started and not yet finished (a cancelled request never finishes)

ManifestOf = Callable[[DeploymentKey], Manifest | None]


@dataclass
class _Open:
    """What a span needs from the start of its execution."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str | None
    parent_is_remote: bool
    start_ns: int
    attributes: dict[str, str | int | float | bool]


def _model_attributes(manifest: Manifest) -> dict[str, str | int | float | bool]:
    try:
        spec = ModelSpec.model_validate(manifest.spec)
    except ValueError:
        return {}
    attributes: dict[str, str | int | float | bool] = {
        "gen_ai.provider.name": "anthropic" if spec.provider == "anthropic" else "openai",
        "gen_ai.request.model": spec.model,
    }
    if spec.base_url:
        server = urlsplit(spec.base_url)
        if server.hostname:
            attributes["server.address"] = server.hostname
            attributes["server.port"] = server.port or (443 if server.scheme == "https" else 80)
    return attributes


class SpanRecorder:
    """Turns the lineage's start, refusal and finish of each execution into spans."""

    def __init__(self, exporter: BatchExporter, manifest_of: ManifestOf) -> None:
        self.exporter = exporter
        self.manifest_of = manifest_of  # the live manifest of a deployment, if any
        self._open: dict[str, _Open] = {}
        # A model API's attributes, by the id of its (immutable) manifest: validating its
        # spec on every request would cost more than the rest of the span.
        self._models: dict[int, tuple[Manifest, dict[str, str | int | float | bool]]] = {}

    def _model(self, manifest: Manifest | None) -> dict[str, str | int | float | bool]:
        if manifest is None:
            return {}
        cached = self._models.get(id(manifest))
        if cached is not None and cached[0] is manifest:
            return cached[1]
        if len(self._models) > 1000:
            self._models.clear()
        attributes = _model_attributes(manifest)
        self._models[id(manifest)] = (manifest, attributes)
        return attributes

    def _begin(
        self,
        key: DeploymentKey,
        execution: Execution,
        started: float,
        version: str | None,
        manifest: Manifest | None,
    ) -> _Open:
        environment, kind, name = key
        request_id, parent_id = execution.request_id, execution.parent_id
        attributes: dict[str, str | int | float | bool] = {}
        if kind == WorkloadKind.MODELS.value:
            attributes.update(self._model(manifest or self.manifest_of(key)))
            model = attributes.get("gen_ai.request.model")
            operation, span_kind = "chat", KIND_CLIENT
            span_name = f"chat {model}" if model else "chat"
        elif kind == WorkloadKind.FUNCTIONS.value:
            operation, span_kind = "execute_tool", KIND_INTERNAL
            span_name = f"execute_tool {name}"
            attributes["gen_ai.tool.name"] = name
            attributes["gen_ai.tool.type"] = "function"
        else:
            operation, span_kind = "invoke_agent", KIND_CLIENT
            span_name = f"invoke_agent {name}"
            attributes["gen_ai.provider.name"] = PLATFORM_PROVIDER
            attributes["gen_ai.agent.name"] = name
            manifest = manifest or self.manifest_of(key)
            if manifest is not None and len(manifest.models) == 1:
                model_key = DeploymentKey(environment, "models", manifest.models[0])
                model_api = self._model(self.manifest_of(model_key))
                if model_name := model_api.get("gen_ai.request.model"):
                    attributes["gen_ai.request.model"] = model_name
        attributes["gen_ai.operation.name"] = operation
        attributes["enduser.id"] = execution.identity
        attributes["deployment.environment.name"] = environment
        attributes["agentform.request.id"] = request_id
        if version:
            attributes["agentform.deployment.version"] = version
        return _Open(
            span_name,
            span_kind,
            execution.trace_id,
            request_id[:16],
            parent_id[:16] if parent_id else None,
            # A hop's parent is its caller's request id (32 hex digits); a parent span id
            # (16) came in a W3C traceparent, from outside the host.
            parent_id is not None and len(parent_id) == 16,
            int(started * 1e9),
            attributes,
        )

    def started(
        self,
        key: DeploymentKey,
        execution: Execution,
        version: str,
        started: float,
        manifest: Manifest | None,
    ) -> None:
        if len(self._open) >= MAX_OPEN:  # forget the oldest: its request was cancelled
            del self._open[next(iter(self._open))]
            self.exporter.counters.dropped_queue_full += 1
        self._open[execution.request_id] = self._begin(key, execution, started, version, manifest)

    def refused(
        self,
        key: DeploymentKey,
        execution: Execution,
        at: float,
        http_status: int,
        code: str,
        message: str,
    ) -> None:
        span = self._begin(key, execution, at, None, None)
        self._end(span, span.start_ns, "refused", http_status, code, message, 0, 0)

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
        span = self._open.pop(request_id, None)
        if span is None:
            return
        status = execution_status(http_status)
        end_ns = span.start_ns + int(duration_ms * 1e6)
        self._end(
            span, end_ns, status, http_status, error_class, error, input_tokens, output_tokens
        )

    def _end(
        self,
        span: _Open,
        end_ns: int,
        status: str,
        http_status: int,
        error_class: str | None,
        error: str | None,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        attributes = span.attributes
        attributes["agentform.status"] = status
        attributes["http.response.status_code"] = http_status
        if input_tokens or output_tokens or attributes["gen_ai.operation.name"] == "chat":
            attributes["gen_ai.usage.input_tokens"] = input_tokens
            attributes["gen_ai.usage.output_tokens"] = output_tokens
        failed = status != "ok"
        if failed:
            attributes["error.type"] = error_class or f"HTTP{http_status}"
        self.exporter.submit(
            SpanData(
                trace_id=span.trace_id,
                span_id=span.span_id,
                parent_span_id=span.parent,
                parent_is_remote=span.parent_is_remote,
                name=span.name,
                kind=span.kind,
                start_ns=span.start_ns,
                end_ns=end_ns,
                attributes=attributes,
                status_code=STATUS_ERROR if failed else 0,
                status_message=(error or "")[:500] if failed else "",
            )
        )
