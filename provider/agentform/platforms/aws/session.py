"""boto3 clients for one provider call, and AWS failures as one line.

Every client uses botocore's standard retry mode (throttling and transient errors are
retried with backoff). The standard credential chain applies; `agentform:awsEndpointUrl`
points every client at an emulator such as moto or LocalStack."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from agentform_runtime.errors import AgentformError

_RETRIES = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10)

P = ParamSpec("P")
R = TypeVar("R")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_missing(exc: ClientError) -> bool:
    """AWS's "it does not exist", whatever the service calls it."""
    code = error_code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in {
        "ResourceNotFoundException",
        "NoSuchEntity",
        "NoSuchKey",
        "NoSuchBucket",
        "ParameterNotFound",
        "404",
        "NotFound",
    } or (status == 404 and code not in {"UnknownOperationException"})


def aws_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn a botocore failure into one line: the AWS call and AWS's own message."""

    @functools.wraps(method)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except ClientError as exc:
            message = exc.response.get("Error", {}).get("Message") or str(exc)
            raise AgentformError(
                502, "AwsError", f"AWS {exc.operation_name} failed: {error_code(exc)}: {message}"
            ) from None
        except BotoCoreError as exc:
            raise AgentformError(
                502,
                "AwsError",
                f"AWS: {exc}; check the credentials (the standard AWS chain), agentform:region "
                "and agentform:awsEndpointUrl",
            ) from None

    return wrapped


class AwsSession:
    """Clients per (service, region), created on first use, for the life of one call."""

    def __init__(self, region: str | None, endpoint_url: str | None) -> None:
        self._session = boto3.session.Session(region_name=region)
        region = region or self._session.region_name
        if not region:
            raise AgentformError(
                400,
                "NoRegion",
                "no AWS region: set `pulumi config set agentform:region <region>` or AWS_REGION",
            )
        self.home_region: str = region
        self._endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        self._account: str | None = None

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self.home_region)
        if key not in self._clients:
            self._clients[key] = self._session.client(
                service, region_name=key[1], endpoint_url=self._endpoint_url, config=_RETRIES
            )
        return self._clients[key]

    @property
    def account(self) -> str:
        if self._account is None:
            self._account = str(self.client("sts").get_caller_identity()["Account"])
        return self._account

    @property
    def partition(self) -> str:
        return self._session.get_partition_for_region(self.home_region)  # type: ignore[no-any-return]

    def lambda_arn(self, region: str, function: str, qualifier: str | None = None) -> str:
        arn = f"arn:{self.partition}:lambda:{region}:{self.account}:function:{function}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
