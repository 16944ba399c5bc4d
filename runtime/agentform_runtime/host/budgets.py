"""Token budgets (`max_tokens` policies): usage counted per deployment and window, durably,
in the host's store. The windows and the refusal rule are `agentform_runtime.budget_windows`,
shared with workloads on Lambda: the request that crosses a budget completes and later ones
wait for the window to roll."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from agentform_runtime.budget_windows import WINDOWS, check_budgets
from agentform_runtime.budget_windows import window_start as window_start
from agentform_runtime.host.state.store import Store
from agentform_runtime.specs import DeploymentKey, TokenBudget


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
        check_budgets(
            key,
            budgets,
            lambda window, start: self.store.token_usage(key, window, start),
            self.clock(),
        )

    def add(self, keys: Iterable[DeploymentKey], input_tokens: int, output_tokens: int) -> None:
        if not input_tokens and not output_tokens:
            return
        now = self.clock()
        starts = [(window, window_start(window, now)) for window in WINDOWS]
        self.store.add_token_usage(
            [(key, window, start) for key in keys for window, start in starts],
            input_tokens,
            output_tokens,
        )
