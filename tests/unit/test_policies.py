"""Policy semantics: OR within a type, AND across types, a deployment only narrows."""

from __future__ import annotations

import re

import pytest

from agentform_runtime.policies import PolicyConflict, combine
from agentform_runtime.specs import PolicySpec, WorkloadKind

AGENTS = WorkloadKind.AGENTS


def location(*values: str, **extra: object) -> PolicySpec:
    return PolicySpec.model_validate({"type": "location", "values": list(values), **extra})


def flavor(*values: str) -> PolicySpec:
    return PolicySpec.model_validate({"type": "flavor", "values": list(values)})


def test_environment_us_and_deployment_north_america_or_europe_is_us_only() -> None:
    result = combine([location("us")], [location("north-america"), location("europe")], AGENTS)
    assert result.locations == ["us"]


def test_types_set_on_one_level_pass_through() -> None:
    result = combine([location("north-america"), location("europe")], [flavor("t4")], AGENTS)
    assert result.flavors == ["t4"]
    assert "us" in (result.locations or []) and "fr" in (result.locations or [])


def test_an_empty_intersection_is_a_conflict() -> None:
    with pytest.raises(PolicyConflict, match="location policies leave nothing allowed"):
        combine([location("us")], [location("europe")], AGENTS)


def test_resource_types_limit_where_a_policy_applies() -> None:
    only_functions = location("us", resource_types=["functions"])
    assert combine([only_functions], [location("europe")], AGENTS).locations is not None
    with pytest.raises(PolicyConflict):
        combine([only_functions], [location("europe")], WorkloadKind.FUNCTIONS)


def test_gpu_expands_to_its_kinds_and_budgets_add_up() -> None:
    budget = PolicySpec.model_validate(
        {"type": "max_tokens", "budgets": [{"window": "day", "total": 1000}]}
    )
    result = combine([flavor("gpu"), budget], [flavor("t4", "cpu"), budget], AGENTS)
    assert result.flavors == ["t4"]
    assert len(result.token_budgets) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "location", "values": []}, "needs at least one value"),
        ({"type": "location", "values": ["atlantis"]}, "unknown location value(s) ['atlantis']"),
        ({"type": "flavor", "values": ["tpu"]}, "unknown flavor value(s) ['tpu']"),
        ({"type": "max_tokens", "values": ["us"]}, "needs at least one entry in budgets"),
        (
            {"type": "max_tokens", "budgets": [{"window": "day"}]},
            "at least one of input, output, total",
        ),
        (
            {"type": "weather", "values": ["sunny"]},
            "Input should be 'location', 'flavor' or 'max_tokens'",
        ),
    ],
)
def test_invalid_policies_say_why(body: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        PolicySpec.model_validate(body)
