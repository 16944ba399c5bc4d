"""N functions, N agents (one tool each), a model API and their deployments, or the same
number of no-op dynamic resources (config `mode: noop`) as the engine-only baseline.

Functions share `code_dir`, or with `per_function_code: true` each has its own code in
`code_dir/tool-<index>`."""

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

config = pulumi.Config()
count = config.require_int("count")


class Noop(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(props["name"], props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=False)


class NoopResource(Resource):
    pass


if config.require("mode") == "noop":
    for index in range(4 + 4 * count):  # as many resources as the agentform fleet
        NoopResource(Noop(), f"noop-{index}", {"name": f"noop-{index}"})
else:
    from agentform import Agent, Deployment, Environment, Function, IntegrationConnection, ModelApi

    development = Environment("development")
    key = IntegrationConnection(
        "llm-key", provider="openai-compatible", secrets={"api_key": "test"}
    )
    model = ModelApi(
        "chat",
        provider="openai-compatible",
        model="scripted",
        base_url=config.require("test_model_url"),
        connection=key,
    )
    Deployment("chat-dev", workload=model, environment=development)
    code_dir = config.require("code_dir")
    per_function = config.get_bool("per_function_code") or False
    for index in range(count):
        code = f"{code_dir}/tool-{index}" if per_function else code_dir
        tool = Function(f"tool-{index}", code=code, entrypoint="tool:main")
        agent = Agent(f"agent-{index}", model=model, functions=[tool], instructions="Use the tool.")
        Deployment(f"tool-{index}-dev", workload=tool, environment=development)
        Deployment(f"agent-{index}-dev", workload=agent, environment=development)
