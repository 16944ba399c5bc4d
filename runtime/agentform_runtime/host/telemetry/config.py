"""Where spans go: `--otlp-endpoint`, or the standard `OTEL_*` variables of the OTLP exporter
specification. Nothing configured means nothing exported.

Read (the traces-specific variable wins over the general one):
- `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) / `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL:
  `/v1/traces` is appended);
- `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` (`k=v,k2=v2`, values URL-encoded);
- `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` (milliseconds, default 10000);
- `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`: we speak `http/json`; `http/protobuf` is accepted (an
  OTLP/HTTP receiver takes both on the same URL); `grpc` is refused with the reason;
- `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_SDK_DISABLED=true` or
  `OTEL_TRACES_EXPORTER=none` turn export off;
- `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY` (ms).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from agentform_runtime.errors import AgentformError

DEFAULT_SERVICE_NAME = "agentform-host"


@dataclass(frozen=True)
class OtlpSettings:
    traces_url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    resource: dict[str, str] = field(default_factory=dict)
    max_queue_size: int = 2048
    max_batch_size: int = 512
    schedule_delay_s: float = 1.0


def _invalid(variable: str, value: str, why: str) -> AgentformError:
    return AgentformError(400, "InvalidTelemetrySetting", f"{variable}={value!r}: {why}")


def _url(variable: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(variable, value, "an OTLP/HTTP endpoint is an http:// or https:// URL")
    return value


def _pairs(variable: str, value: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise _invalid(variable, value, "expected comma-separated key=value pairs")
        pairs[unquote(name.strip())] = unquote(text.strip())
    return pairs


def _positive(env: Mapping[str, str], variable: str, default: float) -> float:
    value = env.get(variable, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number <= 0:
        raise _invalid(variable, value, "expected a positive number")
    return number


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def otlp_settings(
    endpoint: str | None, env: Mapping[str, str] | None = None
) -> OtlpSettings | None:
    """The exporter's settings, or None when no endpoint is configured (or export is off).
    Raise AgentformError naming the variable when one is malformed."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    if endpoint:
        base = _url("--otlp-endpoint", endpoint.strip())
        url = base if base.rstrip("/").endswith("/v1/traces") else base.rstrip("/") + "/v1/traces"
    elif found := _first(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        url = _url(*found)
    elif found := _first(env, "OTEL_EXPORTER_OTLP_ENDPOINT"):
        url = _url(*found).rstrip("/") + "/v1/traces"
    else:
        return None
    protocol = _first(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol[1] not in ("http/json", "http/protobuf"):
        raise _invalid(
            *protocol, "the host exports OTLP over HTTP with JSON encoding (http/json) only"
        )
    headers = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        headers.update(_pairs(name, env.get(name, "")))
    timeout_ms = _positive(env, "OTEL_EXPORTER_OTLP_TIMEOUT", 10000)
    timeout_ms = _positive(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", timeout_ms)
    resource = {"service.name": DEFAULT_SERVICE_NAME}
    resource.update(_pairs("OTEL_RESOURCE_ATTRIBUTES", env.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    if service := env.get("OTEL_SERVICE_NAME", "").strip():
        resource["service.name"] = service
    queue = int(_positive(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048))
    return OtlpSettings(
        traces_url=url,
        headers=headers,
        timeout_s=timeout_ms / 1000,
        resource=resource,
        max_queue_size=queue,
        max_batch_size=min(queue, int(_positive(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))),
        schedule_delay_s=_positive(env, "OTEL_BSP_SCHEDULE_DELAY", 1000) / 1000,
    )
