"""The one interface every platform implements, and the settings that choose one.

Resources speak to a platform only through `Platform`: environments, policies, connections,
artifacts and deployments. `local` is the local host's control plane over HTTP; `aws` is AWS
Lambda (+ IAM, Secrets Manager, DynamoDB, SSM, S3) through boto3."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from agentform_runtime.specs import ConnectionSpec, DeploymentKey, EnvironmentSpec

PLATFORMS = ("local", "aws")
READINESS = ("invoke", "state")


class Platform(Protocol):
    """What a resource may ask of the platform it deploys onto.

    Getters return None when the object does not exist; deletes treat "already gone" as done.
    A deployment view has `url`, `version`, `previous_version`, `status`, `effective_policies`
    and `settings` (the DeploymentSpec as the platform holds it)."""

    def close(self) -> None: ...

    def put_environment(self, name: str, spec: EnvironmentSpec) -> dict[str, Any]: ...
    def get_environment(self, name: str) -> dict[str, Any] | None: ...
    def delete_environment(self, name: str) -> None: ...

    def put_policy(self, name: str, spec: dict[str, Any]) -> None: ...
    def get_policy(self, name: str) -> dict[str, Any] | None: ...
    def delete_policy(self, name: str) -> None: ...

    def put_connection(self, name: str, spec: ConnectionSpec) -> None: ...
    def get_connection(self, name: str) -> dict[str, Any] | None: ...
    def delete_connection(self, name: str) -> None: ...

    def upload_artifact(self, data: bytes) -> str: ...
    def has_artifact(self, digest: str) -> bool: ...

    def put_deployment(
        self, key: DeploymentKey, spec: dict[str, Any], effective: dict[str, Any] | None
    ) -> dict[str, Any]: ...
    def get_deployment(self, key: DeploymentKey) -> dict[str, Any] | None: ...
    def delete_deployment(self, key: DeploymentKey) -> None: ...


@dataclass(frozen=True)
class PlatformSettings:
    """The `agentform:*` stack configuration that picks and reaches a platform."""

    platform: Literal["local", "aws"] = "local"
    endpoint: str | None = None  # local: agentform:endpoint
    token: str | None = None  # local: agentform:token
    region: str | None = None  # aws: agentform:region (default: the AWS SDK's)
    aws_endpoint_url: str | None = None  # aws: agentform:awsEndpointUrl (moto, LocalStack)
    aws_readiness: Literal["invoke", "state"] = "invoke"  # aws: agentform:awsReadiness
    jwt_secret: str | None = None  # aws: agentform:jwtSecret (secret), end users' HS256 key
    jwks_url: str | None = None  # aws: agentform:jwksUrl, end users' JWKS document

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PlatformSettings:
        """From the stack configuration the engine hands a provider (`agentform:` keys);
        raise ValueError naming the key when a value is not one of the allowed ones."""
        platform = config.get("agentform:platform") or "local"
        if platform not in PLATFORMS:
            raise ValueError(
                f"agentform:platform is '{platform}'; supported: {', '.join(PLATFORMS)}"
            )
        readiness = config.get("agentform:awsReadiness") or "invoke"
        if readiness not in READINESS:
            raise ValueError(
                f"agentform:awsReadiness is '{readiness}'; supported: {', '.join(READINESS)}"
            )
        return cls(
            platform=cast(Literal["local", "aws"], platform),
            endpoint=config.get("agentform:endpoint"),
            token=config.get("agentform:token"),
            region=config.get("agentform:region"),
            aws_endpoint_url=config.get("agentform:awsEndpointUrl"),
            aws_readiness=cast(Literal["invoke", "state"], readiness),
            jwt_secret=config.get("agentform:jwtSecret") or None,
            jwks_url=config.get("agentform:jwksUrl") or None,
        )
