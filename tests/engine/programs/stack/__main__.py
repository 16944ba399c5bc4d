"""A model API, a function, an agent using both, and their deployments, driven by config."""

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

europe = Policy("europe", type="location", values=["europe"])
development = Environment("development", name="development", policies=[europe])
key = IntegrationConnection(
    "llm-key", provider="openai-compatible", secrets={"api_key": config.require_secret("api_key")}
)
model = ModelApi(
    "chat",
    provider="openai-compatible",
    model="scripted-1",
    base_url=config.require("test_model_url"),
    connection=key,
)
tool = Function("echo", code=config.require("code_dir"), entrypoint="tool:main")
helper = Agent("helper", model=model, functions=[tool], instructions="Help with the tool.")

model_deployment = Deployment("chat-dev", workload=model, environment=development)
tool_deployment = Deployment(
    "echo-dev", workload=tool, environment=development, max_instances=2, timeout_s=30
)
helper_deployment = Deployment(
    "helper-dev",
    workload=helper,
    environment=development,
    enabled=True if enabled is None else enabled,
)

pulumi.export("helper_url", helper_deployment.url)
pulumi.export("echo_url", tool_deployment.url)
pulumi.export("echo_version", tool_deployment.version)
pulumi.export("effective_policies", helper_deployment.effective_policies)
