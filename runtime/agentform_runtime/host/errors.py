"""Errors the host answers with: always JSON, `{"error": {"code", "message"}}`."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return error_response(self.status, self.code, self.message, headers, **self.extra)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}},
        status_code=status,
        headers=headers,
    )


def not_found(what: str) -> ApiError:
    return ApiError(404, "NotFound", f"{what} does not exist")
