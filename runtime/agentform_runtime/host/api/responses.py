"""Errors as HTTP answers: always JSON, `{"error": {"code", "message", ...}}`."""

from __future__ import annotations

from starlette.responses import JSONResponse

from agentform_runtime.errors import AgentformError


def error_response(error: AgentformError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=headers)
