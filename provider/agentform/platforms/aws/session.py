"""boto3 clients for one provider call, and AWS failures as one line.

Every client uses botocore's standard retry mode (throttling and transient errors are
retried with backoff). The standard credential chain applies; `agentform:awsEndpointUrl`
points every client at an emulator such as moto or LocalStack."""

from __future__ import annotations

import functools
import os
import threading
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


class _Clients:
    """One boto3 session and its clients for a (region, endpoint): made once per process,
    because a session and its clients take about a second to build (they load the service
    models), and a `pulumi up` makes a provider call per resource. Clients are thread-safe;
    building them is not, hence the lock."""

    def __init__(self, region: str | None, endpoint_url: str | None) -> None:
        self.session = boto3.session.Session(region_name=region)
        self.endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.account: str | None = None

    def client(self, service: str, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = self.session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=_RETRIES
                )
            return self._clients[(service, region)]


@functools.cache
def _clients(region: str | None, endpoint_url: str | None) -> _Clients:
    return _Clients(region, endpoint_url)


class AwsSession:
    """The AWS clients of one provider call: per (service, region), shared in the process."""

    def __init__(self, region: str | None, endpoint_url: str | None) -> None:
        self._shared = _clients(region, endpoint_url)
        # boto3 reads AWS_DEFAULT_REGION and the profile; AWS_REGION is what the other SDKs
        # (and Lambda) set, so it counts too.
        region = region or self._shared.session.region_name or os.environ.get("AWS_REGION")
        if not region:
            raise AgentformError(
                400,
                "NoRegion",
                "no AWS region: set `pulumi config set agentform:region <region>`, AWS_REGION "
                "or AWS_DEFAULT_REGION",
            )
        self.home_region: str = region

    def client(self, service: str, region: str | None = None) -> Any:
        return self._shared.client(service, region or self.home_region)

    @property
    def account(self) -> str:
        if self._shared.account is None:
            self._shared.account = str(self.client("sts").get_caller_identity()["Account"])
        return self._shared.account

    @property
    def partition(self) -> str:
        return self._shared.session.get_partition_for_region(self.home_region)  # type: ignore[no-any-return]

    def lambda_arn(self, region: str, function: str, qualifier: str | None = None) -> str:
        arn = f"arn:{self.partition}:lambda:{region}:{self.account}:function:{function}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def close(self) -> None:
        """Nothing to release: the clients are kept for the process's next calls."""
