"""Token budgets on Lambda: `max_tokens` usage counted with DynamoDB atomic counters
(`ADD`), per deployment and window, with the local host's windows and refusal rule
(`agentform_runtime.budget_windows`): the request that crosses a budget completes, later ones
in that window are refused with 429."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable

from agentform_runtime.aws_contract import POLICIES_VAR
from agentform_runtime.budget_windows import WINDOWS, check_budgets, window_start
from agentform_runtime.policies import combine
from agentform_runtime.specs import DeploymentKey, PolicySpec, TokenBudget, WorkloadKind
from agentform_runtime.workload.aws import clients

_TRANSACTION_MAX = 100


def budgets_of(kind: str) -> list[TokenBudget]:
    """The token budgets of this function's effective policies (`AGENTFORM_POLICIES`)."""
    raw = os.environ.get(POLICIES_VAR, "")
    policies = [PolicySpec.model_validate(p) for p in json.loads(raw)] if raw else []
    return combine([], policies, WorkloadKind(kind)).token_budgets


def _key(key: DeploymentKey, window: str, start: int) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"usage#{key.kind}/{key.name}"}, "sk": {"S": f"{window}#{start}"}}


def _usage(key: DeploymentKey, window: str, start: int) -> tuple[int, int]:
    item = (
        clients.client("dynamodb")
        .get_item(TableName=clients.table(), Key=_key(key, window, start), ConsistentRead=True)
        .get("Item")
    )
    if item is None:
        return 0, 0
    return int(item["input_tokens"]["N"]), int(item["output_tokens"]["N"])


def check(key: DeploymentKey, budgets: Iterable[TokenBudget]) -> None:
    """Raise 429 when a budget of `key` is used up in its current window."""
    check_budgets(key, budgets, lambda window, start: _usage(key, window, start), time.time())


def add(keys: Iterable[DeploymentKey], input_tokens: int, output_tokens: int) -> None:
    """Count a model's tokens against it and every agent above it, in every window."""
    if not input_tokens and not output_tokens:
        return
    now = time.time()
    table = clients.table()
    updates = [
        {
            "Update": {
                "TableName": table,
                "Key": _key(key, window, window_start(window, now)),
                "UpdateExpression": "ADD input_tokens :i, output_tokens :o",
                "ExpressionAttributeValues": {
                    ":i": {"N": str(input_tokens)},
                    ":o": {"N": str(output_tokens)},
                },
            }
        }
        for key in dict.fromkeys(keys)
        for window in WINDOWS
    ]
    # One round trip for the whole chain (a transaction holds up to 100 items).
    for first in range(0, len(updates), _TRANSACTION_MAX):
        clients.client("dynamodb").transact_write_items(
            TransactItems=updates[first : first + _TRANSACTION_MAX]
        )
