"""Agentform: AI agents, their tools and their model APIs as Pulumi resources."""

from agentform.resources import (
    Agent,
    Deployment,
    Environment,
    Function,
    IntegrationConnection,
    ModelApi,
    Policy,
)

__all__ = [
    "Agent",
    "Deployment",
    "Environment",
    "Function",
    "IntegrationConnection",
    "ModelApi",
    "Policy",
]
