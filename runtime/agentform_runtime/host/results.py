"""A worker's result as an HTTP answer, mapped as a Lambda function URL maps it.

The result comes from user code, so nothing in it is trusted: a status, a header or a body
that HTTP cannot carry faithfully (a status of 99, a header with CRLF, a `content-length`
that does not match the body, invalid base64) is refused with a 502 naming the field, rather
than sent broken (a dropped connection, a 500) while the record says `ok`."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from agentform_runtime.errors import AgentformError

STATUS_RANGE = (200, 599)  # 1xx are not final answers; HTTP has nothing above 599
# Headers about the connection, not the answer: the host's server sets these itself.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer"}
    | {"transfer-encoding", "upgrade"}
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # visible latin-1, spaces and tabs: no CR/LF/NUL


class InvalidResult(AgentformError):
    """The worker's result cannot be answered as it is."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(
            502,
            "InvalidWorkerResponse",
            f"the workload's result is invalid: {field}: {reason}",
            field=field,
        )


def parse(body: bytes) -> Any:
    """The result as JSON, or None when it is not JSON (or nested beyond the parser)."""
    try:
        return json.loads(body) if body else None
    except (ValueError, RecursionError):
        return None


def status_of(payload: dict[str, Any]) -> int:
    status = payload["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int):
        raise InvalidResult("statusCode", f"must be an integer, not {type(status).__name__}")
    if not STATUS_RANGE[0] <= status <= STATUS_RANGE[1]:
        raise InvalidResult(
            "statusCode", f"must be from {STATUS_RANGE[0]} to {STATUS_RANGE[1]}, not {status}"
        )
    return status


def headers_of(payload: dict[str, Any]) -> dict[str, str]:
    raw = payload.get("headers")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidResult("headers", f"must be an object, not {type(raw).__name__}")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not _TOKEN.fullmatch(name):  # fullmatch: `$` would let a final \n by
            raise InvalidResult("headers", f"{name[:60]!r} is not a valid header name")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidResult(f"headers.{name}", "must be a string or a number")
        text = str(value)
        if not _VALUE.fullmatch(text):
            raise InvalidResult(
                f"headers.{name}", "contains a control character (CR, LF, NUL) or non-latin-1"
            )
        if name.lower() not in HOP_BY_HOP:
            headers[name.lower()] = text
    return headers


def body_of(payload: dict[str, Any]) -> bytes:
    body = payload.get("body")
    encoded = payload.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise InvalidResult("isBase64Encoded", "must be true or false")
    if body is None:
        return b""
    if encoded:
        if not isinstance(body, str):
            raise InvalidResult("body", "must be a base64 string when isBase64Encoded is true")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidResult("body", "is not valid base64") from None
    if isinstance(body, str):
        return body.encode()
    try:
        return json.dumps(body).encode()
    except RecursionError:
        raise InvalidResult("body", "is nested too deeply") from None


def check_length(headers: dict[str, str], data: bytes) -> None:
    """A declared content-length must be the body's; the server then sets it itself."""
    declared = headers.pop("content-length", None)
    if declared is not None and (
        # isascii: "²".isdigit() is True, and int() refuses it
        not (declared.isascii() and declared.isdigit()) or int(declared) != len(data)
    ):
        raise InvalidResult(
            "headers.content-length", f"says {declared[:40]!r} but the body has {len(data)} bytes"
        )


def structured(payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a `{"statusCode": ...}` result; raise InvalidResult."""
    status = status_of(payload)
    headers = headers_of(payload)
    data = body_of(payload)
    check_length(headers, data)
    if status in (204, 304):  # HTTP forbids a body here; sending one corrupts the connection
        data = b""
    return status, headers, data


def error_of(body: bytes, error_type: str | None) -> tuple[str, str]:
    """(error type, message) of a function error posted to `/invocation/{id}/error`."""
    error = parse(body)
    if not isinstance(error, dict):
        return str(error_type), body.decode(errors="replace")[:2000]
    return (
        str(error.get("errorType") or error_type),
        str(error.get("errorMessage", ""))[:2000],
    )
