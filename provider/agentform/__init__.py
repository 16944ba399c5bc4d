"""Agentform: AI agents, their tools and their model APIs as Pulumi resources."""

from agentform.resources import Environment

__all__ = ["Environment"]
