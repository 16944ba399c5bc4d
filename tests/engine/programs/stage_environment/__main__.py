"""One Environment without `name=`, so named after the stack, as in the README's examples;
its description comes from stack config."""

import pulumi

from agentform import Environment

config = pulumi.Config()
environment = Environment("environment", description=config.get("description") or "first")
pulumi.export("name", environment.name)
pulumi.export("description", environment.description)
