"""Environments, policies, connections and artifacts on AWS (all in the home region).

- Environment -> its DynamoDB table (`pk` S, `sk` S), its hop-key secret (a random key made
  once, never returned) and a parameter record `/agentform/environments/<name>`.
- Policy -> a parameter record `/agentform/policies/<name>` (its spec).
- IntegrationConnection -> a Secrets Manager secret holding `{"provider", "config",
  "secrets"}`, the shape the local host hands a model workload.
- Artifacts -> an S3 bucket per account and region, one object per digest.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
from typing import Any

from botocore.exceptions import ClientError

from agentform.platforms.aws.session import AwsSession, is_missing
from agentform_runtime.aws_contract import (
    API_KEY_INDEX_TABLE,
    connection_secret_name,
    hop_key_secret_name,
    jwt_secret_name,
    table_name,
)
from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import ConnectionSpec, EnvironmentSpec, digest_of

PARAMETER_ROOT = "/agentform"
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # Lambda's limit for a zip sent in the request


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


# --- parameter records ----------------------------------------------------------------------


def put_record(aws: AwsSession, path: str, value: dict[str, Any]) -> None:
    aws.client("ssm").put_parameter(
        Name=f"{PARAMETER_ROOT}/{path}",
        Value=json.dumps(value, sort_keys=True),
        Type="String",
        Overwrite=True,
    )


def get_record(aws: AwsSession, path: str) -> dict[str, Any] | None:
    try:
        answer = aws.client("ssm").get_parameter(Name=f"{PARAMETER_ROOT}/{path}")
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise
    value: dict[str, Any] = json.loads(answer["Parameter"]["Value"])
    return value


def list_records(aws: AwsSession, path: str) -> list[tuple[str, dict[str, Any]]]:
    """The records under `path`, as (the rest of their name, value)."""
    prefix = f"{PARAMETER_ROOT}/{path}/"
    found: list[tuple[str, dict[str, Any]]] = []
    paginator = aws.client("ssm").get_paginator("get_parameters_by_path")
    for page in paginator.paginate(Path=prefix.rstrip("/"), Recursive=True):
        for parameter in page["Parameters"]:
            found.append((parameter["Name"].removeprefix(prefix), json.loads(parameter["Value"])))
    return found


def delete_record(aws: AwsSession, path: str) -> None:
    try:
        aws.client("ssm").delete_parameter(Name=f"{PARAMETER_ROOT}/{path}")
    except ClientError as exc:
        if not is_missing(exc):
            raise


def delete_secret(aws: AwsSession, name: str) -> None:
    try:
        aws.client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except ClientError as exc:
        if not is_missing(exc):
            raise


def secret_arn(aws: AwsSession, name: str) -> str | None:
    try:
        return str(aws.client("secretsmanager").describe_secret(SecretId=name)["ARN"])
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise


# --- environments ---------------------------------------------------------------------------


def environment_tags(name: str, spec: EnvironmentSpec) -> dict[str, str]:
    # Tag values allow letters, digits, spaces and `_.:/=+-@`: policy names are space-separated.
    return {"agentform:environment": name, "agentform:policies": " ".join(spec.policies)[:256]}


def put_table(aws: AwsSession, table: str, tags: dict[str, str], retag: bool = True) -> None:
    """A DynamoDB table keyed by `pk` (S) and `sk` (S), created if missing."""
    dynamodb = aws.client("dynamodb")
    try:
        arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
        if retag:
            dynamodb.tag_resource(ResourceArn=arn, Tags=tag_list(tags))
    except dynamodb.exceptions.ResourceNotFoundException:
        # Environments deployed in parallel share the API-key index: one of them creates it.
        with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
            dynamodb.create_table(
                TableName=table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
                Tags=tag_list(tags),
            )
        dynamodb.get_waiter("table_exists").wait(TableName=table)


def put_environment(aws: AwsSession, name: str, spec: EnvironmentSpec) -> None:
    tags = environment_tags(name, spec)
    put_table(aws, table_name(name), tags)
    # Account-wide and kept when environments go: it tells another environment's key (403)
    # from an unknown one (401).
    put_table(aws, API_KEY_INDEX_TABLE, {"agentform:index": "api-keys"}, retag=False)
    hop_key = hop_key_secret_name(name)
    manager = aws.client("secretsmanager")
    if secret_arn(aws, hop_key) is None:
        manager.create_secret(
            Name=hop_key,
            Description=f"Agentform: the key that signs hop tokens in environment '{name}'",
            SecretString=secrets.token_urlsafe(48),
            Tags=tag_list(tags),
        )
    else:
        manager.tag_resource(SecretId=hop_key, Tags=tag_list(tags))
    put_record(aws, f"environments/{name}", spec.model_dump(mode="json"))


def environment_arns(aws: AwsSession, name: str) -> tuple[str, str]:
    """The environment's table and hop-key secret ARNs; a clear error when it is not on AWS."""
    dynamodb = aws.client("dynamodb")
    try:
        table = str(dynamodb.describe_table(TableName=table_name(name))["Table"]["TableArn"])
    except dynamodb.exceptions.ResourceNotFoundException:
        table = ""
    hop_key = secret_arn(aws, hop_key_secret_name(name))
    if not table or hop_key is None:
        raise AgentformError(
            409,
            "EnvironmentMissing",
            f"environment '{name}' is not on AWS in {aws.home_region} (no table or hop key): "
            "declare its Environment in the same stack and run `pulumi up` again",
        )
    return table, hop_key


def delete_environment(aws: AwsSession, name: str) -> None:
    dynamodb = aws.client("dynamodb")
    _forget_api_keys(aws, name)
    try:
        dynamodb.delete_table(TableName=table_name(name))
        dynamodb.get_waiter("table_not_exists").wait(TableName=table_name(name))
    except dynamodb.exceptions.ResourceNotFoundException:
        pass
    delete_secret(aws, hop_key_secret_name(name))
    delete_secret(aws, jwt_secret_name(name))
    delete_record(aws, f"environments/{name}")


def _forget_api_keys(aws: AwsSession, environment: str) -> None:
    """Delete `environment`'s keys from the account's API-key index: once the environment is
    gone its keys are unknown everywhere (401), not another environment's (403)."""
    dynamodb = aws.client("dynamodb")
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=API_KEY_INDEX_TABLE,
        FilterExpression="#environment = :environment",
        ExpressionAttributeNames={"#environment": "environment"},
        ExpressionAttributeValues={":environment": {"S": environment}},
        ProjectionExpression="pk, sk",
    )
    try:
        for page in pages:
            for item in page["Items"]:
                dynamodb.delete_item(TableName=API_KEY_INDEX_TABLE, Key=item)
    except dynamodb.exceptions.ResourceNotFoundException:
        pass  # no index in this region (a stack made before it existed)


# --- connections ----------------------------------------------------------------------------


def put_connection(aws: AwsSession, name: str, spec: ConnectionSpec) -> None:
    manager = aws.client("secretsmanager")
    secret_name = connection_secret_name(name)
    value = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    tags = {"agentform:connection": name, "agentform:provider": spec.provider}
    if secret_arn(aws, secret_name) is None:
        manager.create_secret(
            Name=secret_name,
            Description=f"Agentform integration connection '{name}'",
            SecretString=value,
            Tags=tag_list(tags),
        )
    else:
        manager.put_secret_value(SecretId=secret_name, SecretString=value)
        manager.tag_resource(SecretId=secret_name, Tags=tag_list(tags))


def get_connection(aws: AwsSession, name: str) -> dict[str, Any] | None:
    try:
        answer = aws.client("secretsmanager").get_secret_value(
            SecretId=connection_secret_name(name)
        )
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise
    stored = json.loads(answer["SecretString"])
    # The values stay here: a connection's view names its secrets, never shows them.
    return {
        "provider": stored["provider"],
        "config": stored.get("config", {}),
        "secret_keys": sorted(stored.get("secrets", {})),
    }


# --- artifacts ------------------------------------------------------------------------------


def bucket_name(aws: AwsSession, region: str) -> str:
    return f"agentform-artifacts-{aws.account}-{region}"


def object_key(digest: str) -> str:
    return f"artifacts/{digest.removeprefix('sha256:')}.zip"


def code_sha256(digest: str) -> str:
    """Lambda's CodeSha256 (base64 of the zip's SHA-256) for an artifact digest."""
    return base64.b64encode(bytes.fromhex(digest.removeprefix("sha256:"))).decode()


def digest_from_code_sha256(value: str) -> str:
    return "sha256:" + base64.b64decode(value).hex()


def ensure_bucket(aws: AwsSession, region: str) -> str:
    s3 = aws.client("s3", region)
    bucket = bucket_name(aws, region)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if not is_missing(exc):
            raise
        extra = (
            {}
            if region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3.create_bucket(Bucket=bucket, **extra)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    return bucket


def has_artifact(aws: AwsSession, digest: str, region: str | None = None) -> bool:
    region = region or aws.home_region
    try:
        aws.client("s3", region).head_object(
            Bucket=bucket_name(aws, region), Key=object_key(digest)
        )
    except ClientError as exc:
        if is_missing(exc):
            return False
        raise
    return True


def upload_artifact(aws: AwsSession, data: bytes, region: str | None = None) -> str:
    """Store the zip under its digest (once) in the region's bucket; return the digest."""
    region = region or aws.home_region
    digest = digest_of(data)
    if not has_artifact(aws, digest, region):
        aws.client("s3", region).put_object(
            Bucket=ensure_bucket(aws, region),
            Key=object_key(digest),
            Body=data,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        )
    return digest


def code_location(aws: AwsSession, region: str, data: bytes) -> dict[str, Any]:
    """A zip for Lambda (a function's code, a layer's content): in the request when it fits,
    else through the region's bucket."""
    if len(data) <= DIRECT_UPLOAD_LIMIT:
        return {"ZipFile": data}
    digest = upload_artifact(aws, data, region)
    return {"S3Bucket": bucket_name(aws, region), "S3Key": object_key(digest)}


def read_artifact(aws: AwsSession, digest: str) -> bytes:
    """The artifact's bytes from the home bucket, checked against the digest."""
    s3 = aws.client("s3")
    try:
        answer = s3.get_object(Bucket=bucket_name(aws, aws.home_region), Key=object_key(digest))
    except ClientError as exc:
        if not is_missing(exc):
            raise
        raise AgentformError(
            404,
            "ArtifactMissing",
            f"artifact {digest} is not in s3://{bucket_name(aws, aws.home_region)}: "
            "its Function, ModelApi or Agent uploads it: declare the workload and run `pulumi up`",
        ) from None
    data: bytes = answer["Body"].read()
    if digest_of(data) != digest:
        raise AgentformError(409, "ArtifactCorrupt", f"artifact {digest} in S3 does not match it")
    return data
