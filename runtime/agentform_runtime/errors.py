"""The one error of Agentform: a status, a code and a message.

Every layer speaks it: the host answers with it, a workload returns it from a hop, the
provider and the CLI read it back. On the wire it is `{"error": {"code", "message", ...}}`.
"""

from __future__ import annotations

import json
from typing import Any


class AgentformError(Exception):
    """A refusal or failure with an HTTP status, a stable code and a readable message.

    `extra` holds further fields of the error body (for example `field` or
    `retry_after_s`). Status 0 means no HTTP answer at all (unreachable)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body that carries this error."""
        return {"error": {"code": self.code, "message": self.message, **self.extra}}

    @classmethod
    def from_response(cls, status: int, content: bytes | str) -> AgentformError:
        """Read an error body back; anything else becomes `HTTP<status>` with its text."""
        text = content.decode(errors="replace") if isinstance(content, bytes) else content
        try:
            error = json.loads(text).get("error")
        except (ValueError, AttributeError):
            error = None
        if not isinstance(error, dict):
            return cls(status, f"HTTP{status}", text[:500])
        extra = {k: v for k, v in error.items() if k not in ("code", "message")}
        return cls(
            status,
            str(error.get("code") or f"HTTP{status}"),
            str(error.get("message", text[:500])),
            **extra,
        )


def not_found(what: str) -> AgentformError:
    return AgentformError(404, "NotFound", f"{what} does not exist")
