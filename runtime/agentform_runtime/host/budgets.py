"""Token budgets (`max_tokens` policies): usage counted per deployment and window, durably.

A request is refused (429) only when its deployment's usage in the current window has
already reached a limit, so the request that crosses a budget completes and later ones wait
for the window to roll."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from agentform_runtime.errors import AgentformError
from agentform_runtime.host.state.store import Store
from agentform_runtime.specs import DeploymentKey, TokenBudget

_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def window_start(window: str, now: float) -> int:
    """The start of the window containing `now` (calendar months for `month`)."""
    if window == "month":
        moment = datetime.fromtimestamp(now, UTC)
        return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())
    size = _SECONDS[window]
    return int(now // size * size)


def clock_from(path: Path | None) -> Callable[[], float]:
    """The budget clock: the system clock, or (for tests) the number in `path`."""
    if path is None:
        return time.time

    def read() -> float:
        try:
            return float(path.read_text().strip())
        except (OSError, ValueError):
            return time.time()

    return read


class Budgets:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def check(self, key: DeploymentKey, budgets: Iterable[TokenBudget]) -> None:
        """Raise 429 when a budget of `key` is used up in its current window."""
        now = self.clock()
        for budget in budgets:
            start = window_start(budget.window, now)
            used_in, used_out = self.store.token_usage(key, budget.window, start)
            for limit, used, what in (
                (budget.input, used_in, "input"),
                (budget.output, used_out, "output"),
                (budget.total, used_in + used_out, "total"),
            ):
                if limit is not None and used >= limit:
                    raise AgentformError(
                        429,
                        "TokenBudgetExceeded",
                        f"{key[1]}/{key[2]} used {used} of its {limit} {what} tokens this "
                        f"{budget.window}; try again when the window rolls over",
                        retry_after_s=max(1, int(_next_window(budget.window, start) - now)),
                    )

    def add(self, keys: Iterable[DeploymentKey], input_tokens: int, output_tokens: int) -> None:
        if not input_tokens and not output_tokens:
            return
        now = self.clock()
        for key in keys:
            for window in ("minute", "hour", "day", "month"):
                self.store.add_token_usage(
                    key, window, window_start(window, now), input_tokens, output_tokens
                )


def _next_window(window: str, start: int) -> float:
    if window != "month":
        return start + _SECONDS[window]
    moment = datetime.fromtimestamp(start, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()
