"""A model API, a function and an agent using both, deployed by config onto AWS (moto)."""

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
enabled = config.get_bool("enabled")
location = config.get("tool_location")

development = Environment("development", name="development", description="AWS tests")
key = IntegrationConnection(
    "llm-key", provider="openai-compatible", secrets={"api_key": config.require_secret("api_key")}
)
model = ModelApi(
    "chat",
    provider="openai-compatible",
    model="scripted-1",
    base_url="http://127.0.0.1:9/v1",
    connection=key,
)
tool = Function("echo", code=config.require("code_dir"), entrypoint="tool:main")
helper = Agent("helper", model=model, functions=[tool], instructions="Help with the tool.")

where = [Policy("tool-where", type="location", values=[location])] if location else []
model_deployment = Deployment("chat-dev", workload=model, environment=development)
tool_deployment = Deployment(
    "echo-dev",
    workload=tool,
    environment=development,
    max_instances=2,
    timeout_s=30,
    memory_mb=256,
    policies=where,
)
helper_deployment = Deployment(
    "helper-dev",
    workload=helper,
    environment=development,
    enabled=True if enabled is None else enabled,
)

pulumi.export("helper_url", helper_deployment.url)
pulumi.export("helper_status", helper_deployment.status)
pulumi.export("echo_version", tool_deployment.version)
pulumi.export("echo_previous_version", tool_deployment.previous_version)
