"""Agentform's Pulumi resources."""

from agentform.resources.environment import Environment

__all__ = ["Environment"]
