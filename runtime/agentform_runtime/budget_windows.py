"""Token budget windows and the refusal rule, shared by the local host and workloads on Lambda.

A request is refused (429) only when its deployment's usage in the current window has already
reached a limit, so the request that crosses a budget completes and later ones wait for the
window to roll. Where the usage is counted (SQLite on the host, DynamoDB on Lambda) is the
caller's business: it passes `usage(window, start) -> (input, output)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import DeploymentKey, TokenBudget

WINDOWS = ("minute", "hour", "day", "month")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def window_start(window: str, now: float) -> int:
    """The start of the window containing `now` (calendar months for `month`)."""
    if window == "month":
        moment = datetime.fromtimestamp(now, UTC)
        return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())
    size = _SECONDS[window]
    return int(now // size * size)


def next_window(window: str, start: int) -> float:
    """The start of the window after the one starting at `start`."""
    if window != "month":
        return start + _SECONDS[window]
    moment = datetime.fromtimestamp(start, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def check_budgets(
    key: DeploymentKey,
    budgets: Iterable[TokenBudget],
    usage: Callable[[str, int], tuple[int, int]],
    now: float,
) -> None:
    """Raise 429 `TokenBudgetExceeded` when a budget of `key` is used up in its window."""
    for budget in budgets:
        start = window_start(budget.window, now)
        used_in, used_out = usage(budget.window, start)
        for limit, used, what in (
            (budget.input, used_in, "input"),
            (budget.output, used_out, "output"),
            (budget.total, used_in + used_out, "total"),
        ):
            if limit is not None and used >= limit:
                raise AgentformError(
                    429,
                    "TokenBudgetExceeded",
                    f"{key.kind}/{key.name} used {used} of its {limit} {what} tokens this "
                    f"{budget.window}; try again when the window rolls over",
                    retry_after_s=max(1, int(next_window(budget.window, start) - now)),
                )
