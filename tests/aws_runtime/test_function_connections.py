"""A function's declared integration connections (`Function(..., connections=[db])`): the
same `ctx.connections` on `local` and on `aws` (the provider's deployer, the zip under AWS's
runtime emulator), and the same redaction of their secret values from the function's errors,
in the answer and in the lineage record."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.aws_runtime.platforms import AwsPlatform, LocalPlatform, Platform
from tests.support.engine import change_summary
from tests.support.workloads import deploy, function_artifact

# Each form differs: raw, JSON-escaped, URL-encoded with and without '/' kept, form-encoded.
PASSWORD = 'pg-SECRET "4242"/x+y'
DB = {
    "name": "db",
    "provider": "generic",
    "config": {"host": "db.internal", "port": "5432"},
    "secrets": {"password": PASSWORD},
}

READER = """
import hashlib

from agentform_runtime.workload.context import Context


def main(ctx: Context) -> dict:
    db = ctx.connections["db"]
    password = db.secrets["password"]
    return {
        "connections": sorted(ctx.connections),
        "provider": db.provider,
        "host": db.config["host"],
        "port": db.config["port"],
        "secret_keys": sorted(db.secrets),
        "password_length": len(password),
        "password_sha256": hashlib.sha256(password.encode()).hexdigest(),
    }
"""

NOSY = """
from agentform_runtime.workload.context import Context


def main(ctx: Context) -> dict:
    return {"connections": sorted(ctx.connections)}
"""

LEAKY = """
import json
from urllib.parse import quote, quote_plus

from agentform_runtime.workload.context import Context


def main(ctx: Context) -> dict:
    secret = ctx.connections["db"].secrets["password"]
    forms = [secret, json.dumps(secret), quote(secret), quote(secret, safe=""), quote_plus(secret)]
    raise RuntimeError("could not log in with " + " | ".join(forms))
"""


def _function(platform: Platform, name: str, source: str, connections: list[str]) -> None:
    """Deploy a function declaring `connections` (of DB), on either platform."""
    if isinstance(platform, AwsPlatform):
        platform.function(name, source)
        platform.declared["functions"][-1]["connections"] = connections
        if connections and not platform.declared.get("connections"):
            platform.declared["connections"] = [DB]
        return
    assert isinstance(platform, LocalPlatform)
    if connections:
        body = {k: v for k, v in DB.items() if k != "name"}
        platform.admin.put("/v1/connections/db", json=body).raise_for_status()
    artifact = function_artifact(platform.workdir, name, source)
    deploy(platform.admin, artifact, name, connections=connections).raise_for_status()


def _record(platform: Platform, response: Any) -> dict[str, Any]:
    records = platform.trace(response.headers["x-agentform-trace-id"])
    request_id = response.headers["x-agentform-request-id"]
    (record,) = [r for r in records if r["request_id"] == request_id]
    return record


def test_a_function_reads_its_declared_connection_and_its_errors_are_redacted(
    platform: Platform,
) -> None:
    _function(platform, "reader", READER, ["db"])
    _function(platform, "leaky", LEAKY, ["db"])
    _function(platform, "nosy", NOSY, [])
    key = platform.api_key()

    answer = platform.post("functions", "reader", key, {})
    assert answer.status_code == 200, (platform.name, answer.text)
    assert answer.json() == {
        "connections": ["db"],
        "provider": "generic",
        "host": "db.internal",
        "port": "5432",
        "secret_keys": ["password"],
        "password_length": len(PASSWORD),
        "password_sha256": hashlib.sha256(PASSWORD.encode()).hexdigest(),
    }
    # A function that declares none sees none.
    nosy = platform.post("functions", "nosy", key, {})
    assert nosy.status_code == 200, (platform.name, nosy.text)
    assert nosy.json() == {"connections": []}

    failed = platform.post("functions", "leaky", key, {})
    assert failed.status_code == 500, (platform.name, failed.text)
    error = failed.json()["error"]
    assert error["code"] == "FunctionRaised"
    assert error["message"] == (
        'could not log in with [redacted] | "[redacted]" | [redacted] | [redacted] | [redacted]'
    )
    assert "4242" not in failed.text
    record = _record(platform, failed)
    assert record["status"] == "error" and record["http_status"] == 500
    assert "4242" not in json.dumps(record) and "[redacted]" in record["error"]

    if isinstance(platform, AwsPlatform):
        # Read back from Lambda, the deployments are what the program declares: no drift.
        refreshed = change_summary(platform.project.refresh())
        assert set(refreshed) <= {"same"}, refreshed
        preview = platform.project.preview()
        assert set(change_summary(preview)) <= {"same"}, preview.output
