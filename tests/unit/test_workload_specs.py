"""The specs in agentform_runtime.specs validate a workload's inputs at `pulumi preview` and
are the manifest's `spec` the workload reads (the providers called directly, as the engine
would)."""

from __future__ import annotations

from typing import Any

import pytest

from agentform.resources._provider import UNKNOWN
from agentform.resources.workloads import AgentProvider, ModelApiProvider
from agentform_runtime.specs import AgentSpec, ModelSpec


def _failures(provider: ModelApiProvider | AgentProvider, inputs: dict[str, Any]) -> list[str]:
    return [f"{f.property} | {f.reason}" for f in provider.check({}, inputs).failures]


@pytest.mark.parametrize(
    ("inputs", "failure"),
    [
        (
            {"provider": "skynet", "model": "t-800"},
            "provider | ModelApi 'chat': provider: Input should be 'openai', 'anthropic' or "
            "'openai-compatible'",
        ),
        (
            {"provider": "openai-compatible", "model": "local"},
            "base_url | ModelApi 'chat': base_url: an openai-compatible provider needs the "
            "server's URL",
        ),
        ({"provider": "openai"}, "model | ModelApi 'chat': model: Field required"),
        (
            {"provider": "openai", "model": "gpt", "max_retries": 2.5},
            "max_retries | ModelApi 'chat': max_retries: Input should be a valid integer, got a "
            "number with a fractional part",
        ),
    ],
)
def test_a_bad_model_api_input_fails_with_its_field_and_reason(
    inputs: dict[str, Any], failure: str
) -> None:
    assert _failures(ModelApiProvider(), {"name": "chat", **inputs}) == [failure]


def test_a_value_not_known_yet_is_not_judged() -> None:
    inputs = {"name": "chat", "provider": "openai-compatible", "model": "m", "base_url": UNKNOWN}
    assert _failures(ModelApiProvider(), inputs) == []


def test_agent_inputs_are_checked_by_the_agent_spec() -> None:
    inputs = {"name": "loop", "model": "chat", "agents": ["loop"], "max_steps": 500.0}
    assert _failures(AgentProvider(), inputs) == [
        "max_steps | Agent 'loop': max_steps: Input should be less than or equal to 100",
        "agents | Agent 'loop': agents: an agent cannot be chained to itself",
    ]


def test_the_manifest_spec_is_the_spec_the_workload_reads() -> None:
    # Numbers reach dynamic providers as floats; the spec gives the workload integers.
    agent = AgentProvider().manifest(
        {"name": "triage", "model": "chat", "max_steps": 4.0, "handoffs": {"billing": "bills"}}
    )
    assert AgentSpec.model_validate(agent.spec) == AgentSpec(
        max_steps=4, handoffs={"billing": "bills"}
    )
    assert agent.spec["max_steps"] == 4 and agent.models == ["chat"]
    model = ModelApiProvider().manifest(
        {"name": "chat", "provider": "openai", "model": "gpt", "max_retries": 1.0, "base_url": None}
    )
    assert ModelSpec.model_validate(model.spec) == ModelSpec(
        provider="openai", model="gpt", max_retries=1
    )
