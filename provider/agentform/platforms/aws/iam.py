"""One IAM role per deployment: what its function may do, enforced by AWS itself.

- `lambda:InvokeFunction` on exactly the `live` aliases its version declares (none: no such
  statement);
- `secretsmanager:GetSecretValue` on its own connection's secret (model deployments only), on
  the secrets of exactly the connections it declares (function deployments only), on its
  environment's hop-key secret and, with JWT settings, on the environment's JWT secret;
- its environment's DynamoDB table, reads of the account's API-key index, and its own
  CloudWatch log group."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentform.platforms.aws.session import AwsSession, is_missing
from agentform_runtime.aws_contract import API_KEY_INDEX_TABLE

POLICY_NAME = "agentform"
_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def role_policy(
    *,
    targets: list[str],
    table_arn: str,
    hop_key_arn: str,
    connection_arn: str | None,
    log_group_arn: str,
    jwt_secret_arn: str | None = None,
    connection_arns: Sequence[str] = (),
) -> dict[str, Any]:
    statements: list[dict[str, Any]] = []
    if targets:
        statements.append(
            {
                "Sid": "DeclaredTargets",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": sorted(targets),
            }
        )
    secrets = [hop_key_arn] + [arn for arn in (connection_arn, jwt_secret_arn) if arn]
    secrets += sorted(set(connection_arns) - set(secrets))  # a function's `connections`
    statements += [
        {
            "Sid": "Secrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secrets,
        },
        {
            "Sid": "Records",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                # TransactWriteItems is authorised per item: its condition checks need this.
                "dynamodb:ConditionCheckItem",
                "dynamodb:Query",
            ],
            "Resource": [table_arn],
        },
        {
            "Sid": "ApiKeyIndex",
            "Effect": "Allow",
            "Action": "dynamodb:GetItem",
            "Resource": [f"{table_arn.rsplit('/', 1)[0]}/{API_KEY_INDEX_TABLE}"],
        },
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group_arn, f"{log_group_arn}:*"],
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def put_role(
    aws: AwsSession, name: str, policy: dict[str, Any], tags: dict[str, str]
) -> tuple[str, bool]:
    """Create or update the role and its inline policy; return (ARN, whether it is new)."""
    iam = aws.client("iam")
    created = False
    try:
        arn = str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        arn = str(
            iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(_TRUST),
                Description="Agentform deployment role",
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )["Role"]["Arn"]
        )
        created = True
    iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
    return arn, created


def delete_role(aws: AwsSession, name: str) -> None:
    from botocore.exceptions import ClientError

    iam = aws.client("iam")
    try:
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)
    except ClientError as exc:
        if not is_missing(exc):
            raise
