"""What a workload knows about the request it serves: who, which trace, which deployment."""

from __future__ import annotations

import contextvars
import functools
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

CONNECTIONS_VARIABLE = "AGENTFORM_CONNECTIONS"


@dataclass(frozen=True)
class Connection:
    """An integration connection as a workload reads it: its provider, its plain configuration
    and its secret values (all strings)."""

    provider: str = ""
    config: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)


@functools.cache
def declared_connections() -> Mapping[str, Connection]:
    """The connections this function's deployment declares, by name (read once per worker:
    the host starts fresh workers when one of them changes)."""
    raw = json.loads(os.environ.get(CONNECTIONS_VARIABLE) or "{}")
    return MappingProxyType({name: Connection(**value) for name, value in raw.items()})


@dataclass(frozen=True)
class Context:
    """The request context given to user code (a `ctx: Context` parameter, or `current()`)."""

    request_id: str
    trace_id: str
    traceparent: str
    identity: str | None
    environment: str
    deployment: str
    version: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    connections: Mapping[str, Connection] = field(default_factory=dict, repr=False)
    """The integration connections the deployment declares (`connections=[...]`), by name."""

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Context:
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        return cls(
            request_id=headers.get("x-agentform-request-id", ""),
            trace_id=headers.get("x-agentform-trace-id", ""),
            traceparent=headers.get("traceparent", ""),
            identity=headers.get("x-agentform-identity"),
            environment=os.environ.get("AGENTFORM_ENVIRONMENT", ""),
            deployment=os.environ.get("AGENTFORM_NAME", ""),
            version=os.environ.get("AGENTFORM_VERSION", ""),
            headers=headers,
            connections=declared_connections(),
        )


_current: contextvars.ContextVar[Context] = contextvars.ContextVar("agentform_context")


def current() -> Context:
    """The context of the request being served."""
    return _current.get()


@contextmanager
def serving(context: Context) -> Iterator[Context]:
    """Make `context` the current one while a request is served."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
