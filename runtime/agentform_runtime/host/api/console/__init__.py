"""The web console at /console: deployments, their figures and logs, executions and traces."""

from agentform_runtime.host.api.console.routes import router

__all__ = ["router"]
