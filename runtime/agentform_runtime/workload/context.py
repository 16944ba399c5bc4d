"""What a workload knows about the request it serves: who, which trace, which deployment."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


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
