"""The acceptance cases' workloads, declared from the `workloads` config (JSON) that the test
platform fills in, deployed by the real provider onto `agentform:platform aws`."""

import json

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
declared = json.loads(config.require("workloads"))

environment = Environment(
    "development", name="development", description="the acceptance suite on AWS"
)
# Another environment: its API keys are refused (403) by the workloads of `development`.
Environment("production", name="production", description="another environment")
models = {}
for model in declared["models"]:
    key = IntegrationConnection(
        f"{model['name']}-key",
        provider="openai-compatible",
        secrets={"api_key": config.require_secret("model_api_key")},
    )
    models[model["name"]] = ModelApi(
        model["name"],
        provider="openai-compatible",
        model="scripted-1",
        base_url=model["base_url"],
        connection=key,
    )
# Integration connections that functions declare (`connections=[...]`), if any.
connections = {
    c["name"]: IntegrationConnection(
        c["name"],
        provider=c["provider"],
        config=c.get("config") or {},
        secrets={k: pulumi.Output.secret(v) for k, v in (c.get("secrets") or {}).items()},
    )
    for c in declared.get("connections", [])
}
functions = {
    f["name"]: Function(
        f["name"],
        code=f["code"],
        entrypoint=f["entrypoint"],
        connections=[connections[c] for c in f.get("connections", [])],
    )
    for f in declared["functions"]
}
agents: dict[str, Agent] = {}
for agent in declared["agents"]:  # in declaration order: chained agents come first
    agents[agent["name"]] = Agent(
        agent["name"],
        model=models["chat"],
        functions=[functions[f] for f in agent["functions"]],
        agents=[agents[a] for a in agent["agents"]],
        instructions=agent["instructions"],
        description=agent["description"],
        code=agent["code"],
        entrypoint=agent["entrypoint"],
    )

deployed = {}
workloads: dict[str, ModelApi | Function | Agent] = {**models, **functions, **agents}
for name, workload in workloads.items():
    policies = [
        Policy(f"{name}-policy-{index}", **policy)
        for index, policy in enumerate(
            next((a["policies"] for a in declared["agents"] if a["name"] == name), [])
        )
    ]
    deployed[name] = Deployment(
        f"{name}-dev", workload=workload, environment=environment, policies=policies
    )
    pulumi.export(f"{name}_url", deployed[name].url)
    pulumi.export(f"{name}_version", deployed[name].version)
