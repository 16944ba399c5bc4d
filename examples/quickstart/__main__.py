"""The Agentform quickstart: a `development` environment on the local host."""

import pulumi

from agentform import Environment

development = Environment("development", description="Where the quickstart runs")

pulumi.export("environment", development.name)
pulumi.export("run_url", development.run_url)
