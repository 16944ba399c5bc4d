"""Kept for the code that imports the local client from here: it lives in `platforms.local`."""

from agentform.platforms.local import Endpoint, LocalPlatform, unreachable

__all__ = ["Endpoint", "LocalPlatform", "unreachable"]
