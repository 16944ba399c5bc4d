"""boto3 clients and secrets, one of each per process, so warm invocations reuse them.

Endpoints follow boto3's own settings (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`).
Regions: the environment's table and secrets are in its home region (`AGENTFORM_HOME_REGION`,
the stack's `agentform:region`), which is not the function's own (Lambda's `AWS_REGION`) when
a location policy placed it elsewhere; a hop goes to its target's region."""

from __future__ import annotations

import functools
import json
import os
import threading
from typing import Any

import boto3
from botocore.config import Config

from agentform_runtime.aws_contract import HOME_REGION_VAR, TABLE_VAR

_lock = threading.Lock()
_secrets: dict[str, str] = {}


def own_region() -> str:
    """The region this function runs in."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def home_region() -> str:
    """The environment's region: its table, secrets and API-key index are there."""
    return os.environ.get(HOME_REGION_VAR) or own_region()


@functools.cache
def client(service: str, region: str | None = None) -> Any:
    """A client for `service` in `region` (default: the environment's home region); a hop
    waits as long as its callee may run, and is not retried (a retried Invoke would run the
    callee twice)."""
    if service == "lambda":
        config = Config(read_timeout=900, connect_timeout=5, retries={"total_max_attempts": 1})
    else:
        config = Config(retries={"mode": "standard"})
    return boto3.session.Session().client(
        service, region_name=region or home_region(), config=config
    )


def table() -> str:
    """The environment's DynamoDB table, as the deployer named it."""
    name = os.environ.get(TABLE_VAR, "")
    if not name:
        raise RuntimeError(f"{TABLE_VAR} is not set: the deployer sets it on every function")
    return name


def secret(arn: str) -> str:
    """A Secrets Manager secret's string, read once per process."""
    with _lock:
        cached = _secrets.get(arn)
    if cached is None:
        cached = str(client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
        with _lock:
            _secrets[arn] = cached
    return cached


def secret_json(arn: str) -> dict[str, Any]:
    value = json.loads(secret(arn))
    if not isinstance(value, dict):
        raise ValueError(f"secret {arn} does not hold a JSON object")
    return value


def forget_secrets() -> None:
    """Drop the secrets read so far (the next read asks Secrets Manager again)."""
    with _lock:
        _secrets.clear()
