"""Token budget windows line up with the clock (calendar months for `month`)."""

from __future__ import annotations

from datetime import UTC, datetime

from agentform_runtime.host.budgets import window_start


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_windows() -> None:
    moment = at("2026-02-17T13:45:12")
    assert window_start("minute", moment) == at("2026-02-17T13:45:00")
    assert window_start("hour", moment) == at("2026-02-17T13:00:00")
    assert window_start("day", moment) == at("2026-02-17T00:00:00")
    assert window_start("month", moment) == at("2026-02-01T00:00:00")
    assert window_start("month", at("2026-12-31T23:59:59")) == at("2026-12-01T00:00:00")
