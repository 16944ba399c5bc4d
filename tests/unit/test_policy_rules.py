"""The policy pack's rules as plain functions (the engine runs them in tests/iac)."""

from __future__ import annotations

from agentform.policypack import rules


def test_handoff_depth_counts_the_longest_chain_and_names_loops() -> None:
    chain = {"triage": ["billing"], "billing": ["refunds"], "refunds": []}
    assert rules.handoff_depth(chain, {"max_depth": 2}) == []
    [message] = rules.handoff_depth(chain, {"max_depth": 1})
    assert "Agent 'triage': a handoff chain of depth 2 (triage -> billing -> refunds)" in message
    loop = {"a": ["b"], "b": ["a"]}
    messages = rules.handoff_depth(loop, {})
    assert messages[0].startswith("Agent 'a': handoffs loop (a -> b -> a)")


def test_unknown_values_are_skipped() -> None:
    props = {"kind": "agents", "environment": rules.UNKNOWN, "name": "triage"}
    assert rules.token_budget("t", props, {}) == []
    props = {"kind": "agents", "environment": "prod", "environment_policy_specs": rules.UNKNOWN}
    assert rules.token_budget("t", props, {}) == []
    assert (
        rules.model_allow_list("m", {"provider": rules.UNKNOWN, "model": rules.UNKNOWN}, {}) == []
    )


def test_budgets_must_apply_to_the_deployments_kind() -> None:
    only_functions = [
        {
            "type": "max_tokens",
            "budgets": [{"window": "day", "total": 5}],
            "resource_types": ["functions"],
        }
    ]
    props = {"kind": "models", "environment": "prod", "policy_specs": only_functions}
    assert rules.token_budget("m", props, {}) != []
    props["policy_specs"] = [{**only_functions[0], "resource_types": []}]
    assert rules.token_budget("m", props, {}) == []


def test_secret_shapes_in_model_inputs_are_found_without_repeating_them() -> None:
    key = "AKIAABCDEFGHIJKLMNOP"
    [message] = rules.no_secret_values(
        "m", rules.MODEL_API, {"base_url": f"https://x.example/{key}"}, {}
    )
    assert "base_url looks like an AWS access key id" in message and key not in message
