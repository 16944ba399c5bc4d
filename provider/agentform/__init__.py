"""Agentform: AI agents, their tools and their model APIs as Pulumi resources.

The resources are imported on first use, so that importing `agentform.cli` (or anything else in
the package) does not load Pulumi."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in __all__:
        from agentform import resources

        return getattr(resources, name)
    raise AttributeError(f"module 'agentform' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
