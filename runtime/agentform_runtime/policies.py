"""How environment-level and deployment-level policies combine.

On one level, policies of the same type are OR-ed (their values united); different types are
AND-ed. A deployment cannot widen a type its environment restricts: where both levels set a
type, the result is the intersection; a type set on one level only passes through. Token
budgets only ever add up: every budget from either level applies.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from agentform_runtime.specs import (
    FLAVORS,
    LOCATIONS,
    PolicySpec,
    PolicyType,
    TokenBudget,
    WorkloadKind,
)


class PolicyConflict(ValueError):
    """The combination of policies leaves nothing allowed."""


class EffectivePolicies(BaseModel):
    """What a deployment may do once every applicable policy is combined.

    `None` means the type is unrestricted."""

    locations: list[str] | None = None
    flavors: list[str] | None = None
    token_budgets: list[TokenBudget] = Field(default_factory=list)


def _expand(policy: PolicySpec) -> set[str]:
    table = LOCATIONS if policy.type is PolicyType.LOCATION else FLAVORS
    expanded: set[str] = set()
    for value in policy.values:
        expanded |= table.get(value, {value})
    return expanded


def _level(
    policies: Iterable[PolicySpec], kind: WorkloadKind
) -> tuple[dict[PolicyType, set[str]], list[TokenBudget]]:
    allowed: dict[PolicyType, set[str]] = {}
    budgets: list[TokenBudget] = []
    for policy in policies:
        if policy.resource_types and kind not in policy.resource_types:
            continue
        if policy.type is PolicyType.MAX_TOKENS:
            budgets.extend(policy.budgets)
        else:
            allowed[policy.type] = allowed.get(policy.type, set()) | _expand(policy)
    return allowed, budgets


def combine(
    environment: Iterable[PolicySpec],
    deployment: Iterable[PolicySpec],
    kind: WorkloadKind,
) -> EffectivePolicies:
    """Combine both levels for one workload kind; raise PolicyConflict when a type ends empty."""
    env_allowed, env_budgets = _level(environment, kind)
    dep_allowed, dep_budgets = _level(deployment, kind)
    result: dict[PolicyType, set[str]] = {}
    for policy_type in (PolicyType.LOCATION, PolicyType.FLAVOR):
        levels = [a[policy_type] for a in (env_allowed, dep_allowed) if policy_type in a]
        if not levels:
            continue
        merged = set.intersection(*levels)
        if not merged:
            raise PolicyConflict(
                f"{policy_type.value} policies leave nothing allowed: the environment allows "
                f"{sorted(env_allowed[policy_type])}, the deployment asks for "
                f"{sorted(dep_allowed[policy_type])}; a deployment can only narrow what its "
                "environment allows"
            )
        result[policy_type] = merged
    return EffectivePolicies(
        locations=sorted(result[PolicyType.LOCATION]) if PolicyType.LOCATION in result else None,
        flavors=sorted(result[PolicyType.FLAVOR]) if PolicyType.FLAVOR in result else None,
        token_budgets=[*env_budgets, *dep_budgets],
    )
