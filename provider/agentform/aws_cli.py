"""What `agentform traces`, `status` and `api-key create` do on an `aws` stack: lineage
records from the environment's DynamoDB table, deployments from Lambda (with the provider's
own reader, so they show what `pulumi refresh` would), API keys into the environment's table
and the account's API-key index."""

from __future__ import annotations

from typing import Any

from agentform.platforms.base import PlatformSettings
from agentform_runtime.aws_contract import table_name
from agentform_runtime.specs import DeploymentKey


def _platform(region: str | None, endpoint_url: str | None) -> Any:
    from agentform.platforms.aws import AwsPlatform

    return AwsPlatform(
        PlatformSettings(platform="aws", region=region, aws_endpoint_url=endpoint_url)
    )


def trace(
    environment: str, request_or_trace_id: str, region: str | None, endpoint_url: str | None
) -> list[dict[str, Any]]:
    """The records of the trace of `request_or_trace_id` (empty when there is none)."""
    from agentform.platforms.aws.session import aws_errors
    from agentform_runtime.workload.aws import lineage

    with _platform(region, endpoint_url) as platform:
        read = aws_errors(lineage.trace)
        return read(table_name(environment), request_or_trace_id, platform.aws.client("dynamodb"))


def status(region: str | None, endpoint_url: str | None) -> tuple[str, list[dict[str, Any]]]:
    """(the region, every deployment of every environment on AWS, as `status` rows)."""
    from agentform.platforms.aws import catalog
    from agentform.platforms.aws.session import aws_errors

    @aws_errors
    def read(platform: Any) -> list[dict[str, Any]]:
        rows = []
        for environment, _spec in catalog.list_records(platform.aws, "environments"):
            for path, _record in catalog.list_records(platform.aws, f"deployments/{environment}"):
                kind, name = path.split("/", 1)
                view = platform.get_deployment(DeploymentKey(environment, kind, name))
                if view is None:
                    continue
                rows.append(
                    {
                        "environment": environment,
                        "kind": kind,
                        "name": name,
                        "status": view["status"],
                        "version": view["version"],
                        # Lambda runs as many as it needs: there is no instance count to show.
                        "instances": None,
                        "url": view["url"],
                        "region": view["region"],
                        "lambda_version": view["lambda_version"],
                    }
                )
        return rows

    with _platform(region, endpoint_url) as platform:
        return platform.aws.home_region, read(platform)


def create_api_key(
    environment: str, region: str | None, endpoint_url: str | None
) -> tuple[str, str]:
    """A new API key of `environment` on AWS: (id, key); only its hash is stored."""
    from agentform.platforms.aws import catalog
    from agentform.platforms.aws.session import aws_errors
    from agentform_runtime.host.auth import new_api_key
    from agentform_runtime.workload.aws.identity import put_api_key

    @aws_errors
    def create(platform: Any) -> tuple[str, str]:
        catalog.environment_arns(platform.aws, environment)  # a clear error when it is not there
        key_id, key = new_api_key()
        dynamodb = platform.aws.client("dynamodb")
        put_api_key(table_name(environment), key_id, key, environment, dynamodb)
        return key_id, key

    with _platform(region, endpoint_url) as platform:
        return create(platform)
