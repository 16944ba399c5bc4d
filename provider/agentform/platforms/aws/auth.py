"""End users' JWT settings on AWS, from the stack configuration: `agentform:jwtSecret` (an
HS256 key, kept in a Secrets Manager secret per environment) and `agentform:jwksUrl`. Every
function gets them as `AGENTFORM_AUTH` (end users reach each at its function URL) and verifies
tokens itself; API keys need neither."""

from __future__ import annotations

import json
from dataclasses import dataclass

from agentform.platforms.aws import catalog
from agentform.platforms.aws.session import AwsSession
from agentform_runtime.aws_contract import jwt_secret_name


@dataclass(frozen=True)
class JwtSettings:
    secret: str | None = None  # agentform:jwtSecret
    jwks_url: str | None = None  # agentform:jwksUrl

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.jwks_url)


def put_jwt_secret(aws: AwsSession, environment: str, value: str) -> tuple[str, str]:
    """Create or update the environment's JWT secret; return its ARN and current version id."""
    manager = aws.client("secretsmanager")
    name = jwt_secret_name(environment)
    if catalog.secret_arn(aws, name) is None:
        try:
            made = manager.create_secret(
                Name=name,
                Description=f"Agentform: end users' HS256 JWT key in environment '{environment}'",
                SecretString=value,
                Tags=catalog.tag_list({"agentform:environment": environment}),
            )
            return str(made["ARN"]), str(made["VersionId"])
        except manager.exceptions.ResourceExistsException:
            pass  # another agent's deployment, put in parallel by the engine, made it just now
    current = manager.get_secret_value(SecretId=name)
    if current["SecretString"] != value:
        current = manager.put_secret_value(SecretId=name, SecretString=value)
    return str(current["ARN"]), str(current["VersionId"])


def resolve(aws: AwsSession, environment: str, settings: JwtSettings) -> tuple[str | None, str]:
    """(the JWT secret's ARN or None, the `AGENTFORM_AUTH` value or "") for a deployment.

    The value names the secret's version too: a new key is a new configuration, so Lambda
    publishes a version whose fresh execution environments read it (a warm one keeps the
    secret it read). Without `agentform:jwtSecret` the environment's JWT secret (if an earlier
    configuration made one) is deleted, so a removed key stops working."""
    arn = version = None
    if settings.secret:
        arn, version = put_jwt_secret(aws, environment, settings.secret)
    else:
        catalog.delete_secret(aws, jwt_secret_name(environment))
    if not settings.configured:
        return None, ""
    return arn, _auth_value(arn, version, settings)


def planned(aws: AwsSession, environment: str, settings: JwtSettings) -> str:
    """The `AGENTFORM_AUTH` value `resolve` will make, as long as it will be, without writing
    anything (for the variables' size check before any change): the secret's ARN as it is, or
    as long as AWS's will be, and a version id as long as a real one."""
    if not settings.configured:
        return ""
    arn = version = None
    if settings.secret:
        name = jwt_secret_name(environment)
        arn = catalog.secret_arn(aws, name) or (
            f"arn:{aws.partition}:secretsmanager:{aws.home_region}:{aws.account}:secret:"
            f"{name}-XXXXXX"
        )
        version = "0" * 36  # Secrets Manager's version ids are UUIDs
    return _auth_value(arn, version, settings)


def _auth_value(arn: str | None, version: str | None, settings: JwtSettings) -> str:
    auth = {"jwt_secret_arn": arn, "jwt_secret_version": version, "jwks_url": settings.jwks_url}
    return json.dumps({k: v for k, v in auth.items() if v}, sort_keys=True)
