"""A support desk: triage hands over to billing, billing to refunds, each with its tools.

Stack config (all optional) changes one thing at a time for the IaC tests:
  environment   the environment's name (default `development`)
  budget        a daily total-token budget policy on the environment
  agents        JSON overrides per agent: {"triage": {"handoffs": ["billing"], ...}}
                (keys: name, model, tools, handoffs, instructions)
  models        JSON overrides per model API: {"fast": {"provider": ..., "model": ...}}
  settings      JSON Deployment arguments per deployed workload: {"triage": {"memory_mb": 1024}}
"""

import json
from pathlib import Path
from typing import Any

import pulumi

from agentform import (
    Agent,
    Deployment,
    Environment,
    Function,
    IntegrationConnection,
    ModelApi,
    Policy,
)

config = pulumi.Config()


def overrides(key: str) -> dict[str, dict[str, Any]]:
    text = config.get(key)
    return json.loads(text) if text else {}


env_name = config.get("environment") or "development"
budget = config.get_int("budget")
policies = (
    [Policy("daily-budget", type="max_tokens", budgets=[{"window": "day", "total": budget}])]
    if budget
    else []
)
environment = Environment("environment", name=env_name, policies=policies)
key = IntegrationConnection(
    "llm-key", provider="openai-compatible", secrets={"api_key": "not-a-real-key"}
)

model_specs: dict[str, dict[str, Any]] = {
    "fast": {
        "provider": "openai-compatible",
        "model": "small-1",
        "base_url": "http://127.0.0.1:9/v1",
    },
    "smart": {
        "provider": "openai-compatible",
        "model": "large-1",
        "base_url": "http://127.0.0.1:9/v1",
    },
}
for name, change in overrides("models").items():
    model_specs[name].update(change)
models = {name: ModelApi(name, connection=key, **spec) for name, spec in model_specs.items()}

code = Path(__file__).parent / "tools"
tools = {
    "refund-payment": Function("refund-payment", code=code, entrypoint="tools:refund_payment"),
    "lookup-order": Function("lookup-order", code=code, entrypoint="tools:lookup_order"),
}

# In handoff order: an agent can hand over only to one declared before it.
agent_specs: dict[str, dict[str, Any]] = {
    "refunds": {"model": "fast", "tools": ["refund-payment"], "handoffs": []},
    "billing": {"model": "fast", "tools": ["lookup-order"], "handoffs": ["refunds"]},
    "triage": {"model": "fast", "tools": [], "handoffs": []},
}
for name, change in overrides("agents").items():
    agent_specs[name].update(change)
agents: dict[str, Agent] = {}
for name, spec in agent_specs.items():
    agents[name] = Agent(
        name,
        name=spec.get("name"),
        model=models[spec["model"]],
        functions=[tools[t] for t in spec["tools"]],
        agents=[agents[a] for a in spec["handoffs"]],
        instructions=spec.get("instructions", f"You are the {name} desk. Be brief."),
        description=f"Handles {name} requests.",
    )

settings = overrides("settings")
workloads: dict[str, Any] = {**agents, "fast": models["fast"]}
for name, workload in workloads.items():
    Deployment(
        f"{name}-live",
        workload=workload,
        environment=environment,
        **settings.get(name, {}),
    )
