"""Promotion example: one program, one stack per stage (`dev`, `prod`).

A triage agent hands order questions over to a specialist agent, which has one tool. The
stages differ only in their stack config: prod has an environment-level token budget
(`max_tokens_per_hour`), dev runs the specialist under a deployment-level location policy
(`specialist_location`). `agentform promote dev prod` then releases dev's exact versions to
prod; see the README's "Promote dev to prod".
"""

from pathlib import Path

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

stack = pulumi.get_stack()
config = pulumi.Config()
here = Path(__file__).parent

# Names on the host are global: per-stack names keep dev's and prod's objects apart.
environment_policies = []
tokens_per_hour = config.get_int("max_tokens_per_hour")
if tokens_per_hour:
    environment_policies.append(
        Policy(
            "token-budget",
            name=f"{stack}-token-budget",
            type="max_tokens",
            budgets=[{"window": "hour", "total": tokens_per_hour}],
        )
    )
# No `name=`: the environment is named after the stack (`dev`, `prod`).
environment = Environment(
    "environment", description=f"The {stack} stage", policies=environment_policies
)

specialist_policies = []
location = config.get("specialist_location")
if location:
    specialist_policies.append(
        Policy(
            "specialist-location",
            name=f"{stack}-specialist-location",
            type="location",
            values=[location],
        )
    )

# The scripted TEST model (`agentform scripted-model`) unless test_model_url says otherwise.
connection = IntegrationConnection(
    "model-key",
    name=f"{stack}-model-key",
    provider="openai-compatible",
    secrets={"api_key": "not-a-real-key"},
)
model = ModelApi(
    "model",
    provider="openai-compatible",
    model="scripted-test-model",
    base_url=config.get("test_model_url") or "http://127.0.0.1:4881/v1",
    connection=connection,
)
order_status = Function("order-status", code=here / "tools", entrypoint="orders:order_status")
specialist = Agent(
    "orders-specialist",
    model=model,
    functions=[order_status],
    instructions="Answer questions about orders with order-status.",
    description="Questions about an order's status.",
)
triage = Agent(
    "triage",
    model=model,
    agents=[specialist],
    instructions="Hand questions about orders over to orders-specialist.",
)

# Resource names are unique per stack: "<workload>-deployment".
deployments = {
    name: Deployment(
        f"{name}-deployment",
        workload=workload,
        environment=environment,
        policies=specialist_policies if workload is specialist else [],
    )
    for name, workload in (
        ("model", model),
        ("order-status", order_status),
        ("orders-specialist", specialist),
        ("triage", triage),
    )
}

pulumi.export("environment", environment.name)
pulumi.export("triage_url", deployments["triage"].url)
pulumi.export("order_status_url", deployments["order-status"].url)
