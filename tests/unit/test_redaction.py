"""Redaction of secret values, in every form an error text may carry them."""

from __future__ import annotations

import json
from urllib.parse import quote

from agentform_runtime.redaction import REDACTED, redact, redact_bytes


def test_every_form_of_a_secret_is_redacted() -> None:
    secret = 'sk-"a b"/c+d'
    text = f"raw {secret} json {json.dumps(secret)} url {quote(secret, safe='')}"
    cleaned = redact(text, [secret])
    assert secret not in cleaned and json.dumps(secret)[1:-1] not in cleaned
    assert quote(secret, safe="") not in cleaned
    assert cleaned.count(REDACTED) == 3


def test_a_json_escaped_secret_inside_a_json_body_is_redacted() -> None:
    secret = 'sk-"a b"/c+d'
    body = json.dumps({"message": f"key={json.dumps(secret)} url={quote(secret)}"}).encode()
    assert json.loads(redact_bytes(body, [secret]))["message"] == (
        f'key="{REDACTED}" url={REDACTED}'
    )


def test_a_longer_secret_containing_a_shorter_one_is_redacted_whole() -> None:
    assert redact("key=abcd-efgh", ["abcd", "abcd-efgh"]) == f"key={REDACTED}"


def test_values_too_short_to_be_secrets_leave_text_alone() -> None:
    assert redact("a note on it", ["a", "on", ""]) == "a note on it"


def test_a_body_that_is_not_text_is_redacted_byte_for_byte() -> None:
    body = b"\xff\xfe key sk-live-1234 \x00"
    assert redact_bytes(body, ["sk-live-1234"]) == b"\xff\xfe key [redacted] \x00"
