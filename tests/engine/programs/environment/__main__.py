"""One Environment whose description comes from stack config."""

import pulumi

from agentform import Environment

config = pulumi.Config()
environment = Environment(
    "development", name="development", description=config.get("description") or "first"
)
pulumi.export("name", environment.name)
pulumi.export("description", environment.description)
pulumi.export("run_url", environment.run_url)
