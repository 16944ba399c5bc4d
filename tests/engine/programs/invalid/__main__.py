"""One invalid input per case (stack config `case`): each must fail at `pulumi preview`."""

import pulumi

from agentform import Agent, Deployment, Environment, Function, ModelApi, Policy

case = pulumi.Config().require("case")
code = pulumi.Config().require("code_dir")

if case == "name":
    Environment("dev", name="Not_DNS_Safe")
elif case == "policy-type":
    Policy("odd", type="weather", values=["sunny"])
elif case == "policy-values":
    Policy("odd", type="location", values=["atlantis"])
elif case == "model-provider":
    ModelApi("chat", provider="skynet", model="t-800")
elif case == "chained-self":
    model = ModelApi("chat", provider="openai", model="gpt-4o-mini")
    twin = Agent("twin", name="loop", model=model)
    Agent("loop", model=model, agents=[twin])
else:
    environment_policy = Policy("us", type="location", values=["us"])
    development = Environment("development", name="development", policies=[environment_policy])
    tool = Function("echo", code=code, entrypoint="tool:main")
    if case == "memory":
        Deployment("echo-dev", workload=tool, environment=development, memory_mb=64)
    elif case == "timeout":
        Deployment("echo-dev", workload=tool, environment=development, timeout_s=1000)
    elif case == "policy-conflict":
        europe = Policy("eu", type="location", values=["europe"])
        Deployment("echo-dev", workload=tool, environment=development, policies=[europe])
    else:
        raise ValueError(f"unknown case {case}")
