"""`AwsPlatform`: the Platform interface on AWS, one boto3 session per provider call."""

from __future__ import annotations

from typing import Any

from agentform.platforms.aws import catalog
from agentform.platforms.aws.auth import JwtSettings
from agentform.platforms.aws.functions import Deployer
from agentform.platforms.aws.regions import PlacementError
from agentform.platforms.aws.session import AwsSession, aws_errors
from agentform.platforms.base import PlatformSettings
from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import ConnectionSpec, DeploymentKey, EnvironmentSpec


class AwsPlatform:
    """Environments, policies, connections, artifacts and deployments on AWS."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        self.aws = AwsSession(settings.region, settings.aws_endpoint_url)
        jwt = JwtSettings(settings.jwt_secret, settings.jwks_url)
        self._deployer = Deployer(self.aws, settings.aws_readiness, jwt)

    def __enter__(self) -> AwsPlatform:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.aws.close()

    @aws_errors
    def put_environment(self, name: str, spec: EnvironmentSpec) -> dict[str, Any]:
        catalog.put_environment(self.aws, name, spec)
        # No shared gateway on AWS: each deployment's `url` is its own function URL.
        return {"run_url": ""}

    @aws_errors
    def get_environment(self, name: str) -> dict[str, Any] | None:
        return catalog.get_record(self.aws, f"environments/{name}")

    @aws_errors
    def delete_environment(self, name: str) -> None:
        catalog.delete_environment(self.aws, name)

    @aws_errors
    def put_policy(self, name: str, spec: dict[str, Any]) -> None:
        catalog.put_record(self.aws, f"policies/{name}", spec)

    @aws_errors
    def get_policy(self, name: str) -> dict[str, Any] | None:
        return catalog.get_record(self.aws, f"policies/{name}")

    @aws_errors
    def delete_policy(self, name: str) -> None:
        catalog.delete_record(self.aws, f"policies/{name}")

    @aws_errors
    def put_connection(self, name: str, spec: ConnectionSpec) -> None:
        catalog.put_connection(self.aws, name, spec)

    @aws_errors
    def get_connection(self, name: str) -> dict[str, Any] | None:
        return catalog.get_connection(self.aws, name)

    @aws_errors
    def delete_connection(self, name: str) -> None:
        from agentform_runtime.aws_contract import connection_secret_name

        catalog.delete_secret(self.aws, connection_secret_name(name))

    @aws_errors
    def upload_artifact(self, data: bytes) -> str:
        return catalog.upload_artifact(self.aws, data)

    @aws_errors
    def has_artifact(self, digest: str) -> bool:
        return catalog.has_artifact(self.aws, digest)

    @aws_errors
    def put_deployment(
        self, key: DeploymentKey, spec: dict[str, Any], effective: dict[str, Any] | None
    ) -> dict[str, Any]:
        try:
            return self._deployer.put(key, spec, effective)
        except PlacementError as exc:
            raise AgentformError(422, "NoPlacement", str(exc)) from None

    @aws_errors
    def get_deployment(self, key: DeploymentKey) -> dict[str, Any] | None:
        return self._deployer.get(key)

    @aws_errors
    def delete_deployment(self, key: DeploymentKey) -> None:
        self._deployer.delete(key)
