"""What `agentform traces`, `status` and `api-key create|list|revoke` do on an `aws` stack:
lineage records from the environment's DynamoDB table, deployments from Lambda (with the
provider's own reader, so they show what `pulumi refresh` would), API keys in the
environment's table and the account's API-key index."""

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


def status(
    region: str | None, endpoint_url: str | None
) -> tuple[str, list[str], list[dict[str, Any]]]:
    """(the region, every environment on AWS, every deployment of them as `status` rows)."""
    from agentform.platforms.aws import catalog
    from agentform.platforms.aws.session import aws_errors

    @aws_errors
    def read(platform: Any) -> tuple[list[str], list[dict[str, Any]]]:
        rows = []
        environments = [name for name, _spec in catalog.list_records(platform.aws, "environments")]
        for environment in environments:
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
        return environments, rows

    with _platform(region, endpoint_url) as platform:
        return platform.aws.home_region, *read(platform)


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


def list_api_keys(
    environment: str, region: str | None, endpoint_url: str | None
) -> list[dict[str, Any]]:
    """`environment`'s API keys on AWS, oldest first: `id`, `created`, `revoked` (epoch
    seconds; `revoked` None while the key works), as the local host lists them."""
    from agentform.platforms.aws import catalog
    from agentform.platforms.aws.session import aws_errors
    from agentform_runtime.workload.aws.identity import API_KEY_LISTING

    @aws_errors
    def read(platform: Any) -> list[dict[str, Any]]:
        catalog.environment_arns(platform.aws, environment)  # a clear error when it is not there
        pages = (
            platform.aws.client("dynamodb")
            .get_paginator("query")
            .paginate(
                TableName=table_name(environment),
                KeyConditionExpression="pk = :listing",
                ExpressionAttributeValues={":listing": {"S": API_KEY_LISTING}},
                ConsistentRead=True,
            )
        )
        keys = [
            {
                "id": item["sk"]["S"],
                "created": float(item["created"]["N"]),
                "revoked": float(item["revoked"]["N"]) if "revoked" in item else None,
            }
            for page in pages
            for item in page["Items"]
        ]
        return sorted(keys, key=lambda k: k["created"])

    with _platform(region, endpoint_url) as platform:
        return read(platform)


def revoke_api_key(
    environment: str, key_id: str, region: str | None, endpoint_url: str | None
) -> None:
    """Revoke one of `environment`'s API keys on AWS: its hash leaves the environment's table
    and the API-key index (the next request with it is a 401), and its listing item records
    when. AgentformError 404 when `environment` has no such key that still works."""
    import time

    from agentform.platforms.aws import catalog
    from agentform.platforms.aws.session import aws_errors
    from agentform_runtime.aws_contract import API_KEY_INDEX_TABLE
    from agentform_runtime.errors import not_found
    from agentform_runtime.workload.aws.identity import api_key_key, api_key_listing_key

    @aws_errors
    def revoke(platform: Any) -> None:
        catalog.environment_arns(platform.aws, environment)
        dynamodb = platform.aws.client("dynamodb")
        table = table_name(environment)
        listing = api_key_listing_key(key_id)
        item = dynamodb.get_item(TableName=table, Key=listing, ConsistentRead=True).get("Item")
        if item is None or "revoked" in item:
            raise not_found(f"active API key '{key_id}' on environment '{environment}'")
        # The key stops working first; only then is it marked, so a failure part-way leaves a
        # key that is still listed as active and can be revoked again.
        for name in (table, API_KEY_INDEX_TABLE):
            dynamodb.delete_item(TableName=name, Key=api_key_key(item["key_hash"]["S"]))
        dynamodb.update_item(
            TableName=table,
            Key=listing,
            UpdateExpression="SET revoked = :now",
            ExpressionAttributeValues={":now": {"N": repr(time.time())}},
        )

    with _platform(region, endpoint_url) as platform:
        revoke(platform)
