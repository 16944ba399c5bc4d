"""The Agentform quickstart: an agent that answers with the help of a tool, on the local host.

By default the model is the scripted TEST model (`agentform scripted-model`, started by
scripts/quickstart.sh): deterministic and offline. To use a real model instead:

    pulumi config set agentform-quickstart:openai_api_key --secret
"""

from pathlib import Path

import pulumi

from agentform import Agent, Deployment, Environment, Function, IntegrationConnection, ModelApi

config = pulumi.Config()
here = Path(__file__).parent

# Named after the stack (`dev` in scripts/quickstart.sh): one program serves every stage.
environment = Environment("environment", description="Where the quickstart runs")

openai_key = config.get_secret("openai_api_key")
if openai_key is not None:
    connection = IntegrationConnection("openai", provider="openai", secrets={"api_key": openai_key})
    model = ModelApi(
        "assistant-model",
        provider="openai",
        model=config.get("openai_model") or "gpt-4o-mini",
        connection=connection,
    )
else:
    connection = IntegrationConnection(
        "test-model", provider="openai-compatible", secrets={"api_key": "not-a-real-key"}
    )
    model = ModelApi(
        "assistant-model",
        provider="openai-compatible",
        model="scripted-test-model",
        base_url=config.get("test_model_url") or "http://127.0.0.1:4870/v1",
        connection=connection,
    )

weather = Function("get-weather", code=here / "tools", entrypoint="weather:get_weather")
assistant = Agent(
    "assistant",
    model=model,
    functions=[weather],
    instructions="You answer questions about the weather. Use get-weather for forecasts.",
    description="Answers questions about the weather.",
)

deployments = {
    workload: Deployment(f"{workload}-deployment", workload=resource, environment=environment)
    for workload, resource in (("model", model), ("weather", weather), ("assistant", assistant))
}

pulumi.export("url", deployments["assistant"].url)
pulumi.export("version", deployments["assistant"].version)
