"""Where spans go: `--otlp-endpoint` or the standard OTEL_* variables; nothing otherwise."""

from __future__ import annotations

import pytest

from agentform_runtime.errors import AgentformError
from agentform_runtime.host.telemetry.config import otlp_settings


def test_nothing_is_exported_without_an_endpoint() -> None:
    assert otlp_settings(None, {}) is None
    assert otlp_settings(None, {"OTEL_SERVICE_NAME": "x"}) is None


def test_the_flag_and_the_variables_name_the_traces_url() -> None:
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    from_base = otlp_settings(None, base)
    assert from_base is not None and from_base.traces_url == "http://collector:4318/v1/traces"
    traces = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://other:9/custom"}
    from_traces = otlp_settings(None, traces)
    assert from_traces is not None and from_traces.traces_url == "http://other:9/custom"
    flag = otlp_settings("http://flag:4318", traces)
    assert flag is not None and flag.traces_url == "http://flag:4318/v1/traces"
    full = otlp_settings("http://flag:4318/v1/traces", {})
    assert full is not None and full.traces_url == "http://flag:4318/v1/traces"


def test_headers_timeout_resource_and_batching_come_from_the_standard_variables() -> None:
    settings = otlp_settings(
        "http://c:4318",
        {
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc, x-team=ai",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-team=agents",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,service.name=a",
            "OTEL_SERVICE_NAME": "b",
            "OTEL_BSP_MAX_QUEUE_SIZE": "100",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "500",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    )
    assert settings is not None
    assert settings.headers == {"authorization": "Bearer abc", "x-team": "agents"}
    assert settings.timeout_s == 2.5
    assert settings.resource == {"service.name": "b", "deployment.environment.name": "prod"}
    assert (settings.max_queue_size, settings.max_batch_size) == (100, 100)
    assert settings.schedule_delay_s == 0.2


def test_export_can_be_turned_off_and_bad_settings_are_named() -> None:
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert otlp_settings(None, {**on, "OTEL_SDK_DISABLED": "true"}) is None
    assert otlp_settings(None, {**on, "OTEL_TRACES_EXPORTER": "none"}) is None
    assert otlp_settings(None, {**on, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    with pytest.raises(AgentformError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL='grpc'.*http/json"):
        otlp_settings(None, {**on, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(AgentformError, match="--otlp-endpoint='collector:4318'"):
        otlp_settings("collector:4318", {})
    with pytest.raises(AgentformError, match="OTEL_EXPORTER_OTLP_TIMEOUT"):
        otlp_settings(None, {**on, "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"})


def test_the_encoding_is_what_the_official_otlp_json_classes_read_and_write() -> None:
    import json

    from opentelemetry.proto_json.collector.trace.v1.trace_service import (
        ExportTraceServiceRequest,
    )

    from agentform_runtime.host.telemetry.otlp import STATUS_ERROR, SpanData, encode

    spans = [
        SpanData(
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
            "00f067aa0ba902b7",
            True,
            "chat gpt-4o",
            3,
            1_700_000_000_000_000_000,
            1_700_000_000_250_000_000,
            {"gen_ai.usage.input_tokens": 812, "x.ratio": 0.5, "x.flag": True, "x.s": "é"},
            STATUS_ERROR,
            "HTTP 502",
        ),
        SpanData(
            "0af7651916cd43dd8448eb211c80319c",
            "1111111111111111",
            None,
            False,
            "execute_tool lookup",
            1,
            5,
            6,
        ),
    ]
    body = encode({"service.name": "agentform-host"}, spans, "0.1.0")
    official = ExportTraceServiceRequest.from_json(body)
    assert official.to_dict() == json.loads(body)
    span = official.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    assert span.start_time_unix_nano == 1_700_000_000_000_000_000
    assert span.attributes[0].value is not None and span.attributes[0].value.int_value == 812
