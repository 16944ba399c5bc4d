"""Redaction of secret values from text that leaves a workload or the host (errors, records).

An upstream error may echo the credential it was sent (a provider's "invalid API key sk-..."),
raw or escaped. Every form a value can take in such text is replaced before the text is
returned to a caller, stored in an execution record or logged."""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
# Shorter values would redact ordinary words ("a", "on"): a real secret is never this short.
MIN_SECRET_LENGTH = 4


def _json_escaped(text: str) -> str:
    return json.dumps(text)[1:-1]


def _forms(value: str) -> set[str]:
    """The spellings of `value` that error text may carry: raw or URL-encoded (with and
    without '/' kept, or form-encoded), each also JSON-escaped once and twice (an error text
    that holds the JSON-escaped value is escaped again inside a JSON answer body)."""
    spelled = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    once = {_json_escaped(form) for form in spelled}
    return spelled | once | {_json_escaped(form) for form in once}


def _all_forms(secrets: Iterable[str]) -> list[str]:
    forms = {f for s in secrets if len(s) >= MIN_SECRET_LENGTH for f in _forms(s)}
    # Longest first, so a value containing another is replaced whole.
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value (in every form of `_forms`) replaced by [redacted]."""
    for form in _all_forms(secrets):
        text = text.replace(form, REDACTED)
    return text


def redact_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    """`redact` for a body that may not be text: its UTF-8 spellings are replaced."""
    for form in _all_forms(secrets):
        data = data.replace(form.encode(), REDACTED.encode())
    return data
