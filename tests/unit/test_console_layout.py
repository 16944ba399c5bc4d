"""The console's trace layout, percentiles and charts, on records made here."""

from __future__ import annotations

from agentform_runtime.host.api.console.charts import Series, chart
from agentform_runtime.host.api.console.queries import percentile
from agentform_runtime.host.api.console.tree import lay_out
from agentform_runtime.host.state.store import ExecutionRow


def record(
    request_id: str, parent: str | None, kind: str, started: float, **more: object
) -> ExecutionRow:
    return ExecutionRow(
        request_id=request_id,
        trace_id="t",
        parent_id=parent,
        environment="development",
        kind=kind,
        name=request_id,
        identity="alice",
        started=started,
        **more,  # type: ignore[arg-type]
    )


def test_the_tree_is_depth_first_with_times_and_model_tokens() -> None:
    records = [
        record(
            "root",
            "outside-caller",
            "agents",
            100.0,
            duration_ms=1000.0,
            input_tokens=30,
            output_tokens=3,
            status="ok",
        ),
        record(
            "chat",
            "root",
            "models",
            100.1,
            duration_ms=100.0,
            input_tokens=10,
            output_tokens=1,
            status="ok",
        ),
        record(
            "sub",
            "root",
            "agents",
            100.3,
            duration_ms=500.0,
            input_tokens=20,
            output_tokens=2,
            status="ok",
        ),
        record(
            "chat2",
            "sub",
            "models",
            100.4,
            duration_ms=100.0,
            input_tokens=20,
            output_tokens=2,
            status="ok",
        ),
        record(
            "denied",
            "sub",
            "functions",
            100.6,
            duration_ms=0.0,
            status="refused",
            error_class="NotDeclared",
        ),
    ]
    tree = lay_out("t", list(reversed(records)))
    assert [(h.record.request_id, h.depth) for h in tree.hops] == [
        ("root", 0),
        ("chat", 1),
        ("sub", 1),
        ("chat2", 2),
        ("denied", 2),
    ]
    assert tree.input_tokens == 30 and tree.output_tokens == 3  # models only, no double count
    assert tree.refusals == 1 and tree.errors == 0
    assert tree.identities == ["alice"]
    sub = tree.hops[2]
    assert round(sub.offset_ms) == 300 and round(sub.bar_x) == 300 and round(sub.bar_width) == 500
    assert tree.hops[4].bar_width == 2.0  # a refusal still shows


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([], 0.5) is None


def test_charts_are_svg_with_escaped_labels_and_no_inline_style() -> None:
    svg = str(chart("<errors>", [Series("a&b", [1.0, None, 3.0], "series-1")], 0.0, 60.0))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "&lt;errors&gt;" in svg and "a&amp;b" in svg and "<errors>" not in svg
    assert "style=" not in svg
    assert svg.count("<circle") == 2  # no point where there was no data
    bars = str(chart("requests", [Series("ok", [2.0, 0.0], "series-1")], 0.0, 60.0, bars=True))
    assert bars.count("<rect") == 1
