"""Handler results in the Lambda function-URL response shape."""

from __future__ import annotations

import json
from typing import Any


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(body),
    }


def error(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """A structured error; `x-agentform-error-class` lets the host record its class."""
    return ok(
        {"error": {"code": code, "message": message, **extra}},
        status,
        {"x-agentform-error-class": code},
    )
