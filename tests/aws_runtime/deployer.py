"""TEST-ONLY: create Agentform deployments in moto with boto3, following `aws_contract`'s
names and variables, the way the AWS deployer (`agentform.platforms.aws`) does: per
environment a DynamoDB table and a hop-key secret; per deployment an IAM role that may invoke
exactly the declared targets, a function running the exact zip with the runtime's layer, a
version, the `live` alias and a function URL on it."""

from __future__ import annotations

import json
import secrets
from typing import Any

from agentform.platforms.aws import layer
from agentform.platforms.aws.functions import URL_PERMISSIONS
from agentform_runtime import aws_contract as contract
from agentform_runtime.specs import (
    DeploymentKey,
    DeploymentSpec,
    Manifest,
    PolicySpec,
    digest_of,
    version_of,
)
from agentform_runtime.workload.aws.identity import api_key_item, hash_key
from tests.aws_runtime.router import REGION, LambdaRouter

ACCOUNT = "123456789012"  # moto's default account
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


def alias_arn(key: DeploymentKey) -> str:
    name = contract.function_name(key)
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:{contract.LIVE_ALIAS}"


class AwsEnvironment:
    """One environment in moto: its table and hop key, then its deployments."""

    def __init__(self, router: LambdaRouter, environment: str = "development") -> None:
        self.router = router
        self.environment = environment
        self.table = contract.table_name(environment)
        self.lam = router.client("lambda")
        self.iam = router.client("iam")
        self.secrets = router.client("secretsmanager")
        self.dynamodb = router.client("dynamodb")
        self.dynamodb.create_table(
            TableName=self.table,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        self.hop_key_arn = self.secrets.create_secret(
            Name=contract.hop_key_secret_name(environment),
            SecretString=secrets.token_urlsafe(32),
        )["ARN"]
        self.auth: dict[str, str] = {}
        self.layer_arn = self.lam.publish_layer_version(
            LayerName=layer.layer_name("x86_64"),
            Content={"ZipFile": layer.build_layer("x86_64")},
            CompatibleRuntimes=[layer.RUNTIME],
        )["LayerVersionArn"]

    def use_jwt_secret(self, secret: str) -> None:
        arn = self.secrets.create_secret(
            Name=f"agentform/{self.environment}/jwt-secret", SecretString=secret
        )["ARN"]
        self.auth = {"jwt_secret_arn": arn}

    def connection(self, name: str, spec: dict[str, Any]) -> str:
        return str(
            self.secrets.create_secret(
                Name=contract.connection_secret_name(name), SecretString=json.dumps(spec)
            )["ARN"]
        )

    def api_key(self, key_id: str = "key_test") -> str:
        key = "afk_" + secrets.token_urlsafe(32)
        self.dynamodb.put_item(
            TableName=self.table, Item=api_key_item(key_id, hash_key(key), self.environment)
        )
        return key

    def _role(self, key: DeploymentKey, targets: dict[str, str]) -> str:
        name = contract.function_name(key)
        arn = str(
            self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(_TRUST))[
                "Role"
            ]["Arn"]
        )
        statements: list[dict[str, Any]] = [
            {
                "Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.table}",
            },
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        ]
        if targets:
            statements.append(
                {
                    "Effect": "Allow",
                    "Action": "lambda:InvokeFunction",
                    "Resource": sorted(targets.values()),
                }
            )
        self.iam.put_role_policy(
            RoleName=name,
            PolicyName="agentform",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        return arn

    def _variables(
        self,
        key: DeploymentKey,
        declared: dict[str, str],
        artifact: bytes,
        connection_arn: str | None,
        policies: list[dict[str, Any]] | None,
    ) -> dict[str, str]:
        spec = DeploymentSpec(artifact=digest_of(artifact))
        variables = {
            contract.PLATFORM_VAR: "aws",
            "AGENTFORM_ENVIRONMENT": self.environment,
            "AGENTFORM_KIND": key.kind,
            "AGENTFORM_NAME": key.name,
            "AGENTFORM_VERSION": version_of(spec),
            "AGENTFORM_CONFIG": "{}",
            contract.TARGETS_VAR: json.dumps({k: arn.split(":")[3] for k, arn in declared.items()}),
            contract.TABLE_VAR: self.table,
            contract.HOP_KEY_SECRET_VAR: self.hop_key_arn,
            contract.POLICIES_VAR: json.dumps(
                [PolicySpec.model_validate(p).model_dump(mode="json") for p in policies or []]
            ),
        }
        if connection_arn:
            variables[contract.CONNECTION_SECRET_VAR] = connection_arn
        if key.kind == "agents" and self.auth:
            variables[contract.AUTH_VAR] = json.dumps(self.auth)
        return variables

    def update(self, manifest: Manifest, artifact: bytes) -> str:
        """Blue-green, as on Lambda: new code and variables, a published version, then the
        `live` alias moves to it in one step. Returns the new version."""
        key = DeploymentKey(self.environment, manifest.kind.value, manifest.name)
        name = contract.function_name(key)
        current = self.lam.get_function_configuration(FunctionName=name)
        variables = dict(current["Environment"]["Variables"])
        variables["AGENTFORM_VERSION"] = version_of(DeploymentSpec(artifact=digest_of(artifact)))
        self.lam.update_function_code(FunctionName=name, ZipFile=artifact)
        self.lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        self.lam.update_function_configuration(
            FunctionName=name, Environment={"Variables": variables}
        )
        self.lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        version = str(self.lam.publish_version(FunctionName=name)["Version"])
        self.lam.update_alias(FunctionName=name, Name=contract.LIVE_ALIAS, FunctionVersion=version)
        return version

    def deploy(
        self,
        manifest: Manifest,
        artifact: bytes,
        *,
        connection_arn: str | None = None,
        policies: list[dict[str, Any]] | None = None,
    ) -> str:
        """Deploy `artifact`; return the function's name."""
        key = DeploymentKey(self.environment, manifest.kind.value, manifest.name)
        declared = {
            f"{kind}/{name}": alias_arn(DeploymentKey(self.environment, kind, name))
            for kind, names in (
                ("models", manifest.models),
                ("functions", manifest.functions),
                ("agents", manifest.agents),
            )
            for name in names
        }
        variables = self._variables(key, declared, artifact, connection_arn, policies)
        spec = DeploymentSpec(artifact=digest_of(artifact))
        name = contract.function_name(key)
        function = self.lam.create_function(
            FunctionName=name,
            Runtime=layer.RUNTIME,
            Layers=[self.layer_arn],
            Role=self._role(key, declared),
            Handler=manifest.handler,
            Code={"ZipFile": artifact},
            Timeout=spec.timeout_s,
            MemorySize=spec.memory_mb,
            Environment={"Variables": variables},
            Publish=True,
        )
        self.lam.create_alias(
            FunctionName=name, Name=contract.LIVE_ALIAS, FunctionVersion=function["Version"]
        )
        self.lam.create_function_url_config(
            FunctionName=name, Qualifier=contract.LIVE_ALIAS, AuthType="NONE"
        )
        for statement in URL_PERMISSIONS:
            self.lam.add_permission(
                FunctionName=name, Qualifier=contract.LIVE_ALIAS, Principal="*", **statement
            )
        return name
