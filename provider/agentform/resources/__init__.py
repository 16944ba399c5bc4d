"""Agentform's Pulumi resources."""

from agentform.resources.connection import IntegrationConnection
from agentform.resources.deployment import Deployment
from agentform.resources.environment import Environment
from agentform.resources.policy import Policy
from agentform.resources.workloads import Agent, Function, ModelApi

__all__ = [
    "Agent",
    "Deployment",
    "Environment",
    "Function",
    "IntegrationConnection",
    "ModelApi",
    "Policy",
]
