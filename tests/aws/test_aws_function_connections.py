"""The AWS deployer against moto (no code runs): a function's declared `connections` become
a grant on exactly their secrets and one variable of their ARNs, and are read back; a
deployment over Lambda's 4 KB of variables is refused before anything on AWS changes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentform.packaging import build_artifact
from agentform.platforms.aws import AwsPlatform, functions
from agentform_runtime.aws_contract import (
    CONNECTION_SECRETS_VAR,
    LIVE_ALIAS,
    connection_secret_name,
    function_name,
    jwt_secret_name,
)
from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import (
    ConnectionSpec,
    DeploymentKey,
    EnvironmentSpec,
    Manifest,
    WorkloadKind,
)
from tests.aws.moto_server import Moto

KEY = DeploymentKey("dev", "functions", "tool")
NAME = "agentform-dev-functions-tool"
PASSWORD = "pg-SECRET-4242"


def _function(platform: AwsPlatform, name: str = "tool") -> str:
    platform.put_environment("dev", EnvironmentSpec())
    manifest = Manifest(kind=WorkloadKind.FUNCTIONS, name=name, entrypoint="tool:main")
    return platform.upload_artifact(build_artifact(manifest, None))


def _secrets_granted(moto: Moto, role: str) -> list[str]:
    document = moto.client("iam").get_role_policy(RoleName=role, PolicyName="agentform")
    policy = document["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    (statement,) = [s for s in policy["Statement"] if s["Sid"] == "Secrets"]
    return sorted(statement["Resource"])


def _roles(moto: Moto) -> list[str]:
    return [role["RoleName"] for role in moto.client("iam").list_roles()["Roles"]]


def test_declared_connections_are_granted_passed_as_arns_and_read_back(
    aws: Any, moto: Moto
) -> None:
    platform = aws()
    digest = _function(platform)
    platform.put_connection(
        "db", ConnectionSpec(provider="generic", config={"host": "db"}, secrets={"pw": PASSWORD})
    )
    platform.put_connection("other", ConnectionSpec(provider="generic", secrets={"k": "v-other"}))
    view = platform.put_deployment(KEY, {"artifact": digest, "connections": ["db"]}, None)

    manager = moto.client("secretsmanager")
    db_arn = manager.describe_secret(SecretId=connection_secret_name("db"))["ARN"]
    hop_arn = manager.describe_secret(SecretId="agentform/dev/hop-key")["ARN"]
    assert _secrets_granted(moto, NAME) == sorted([hop_arn, db_arn])  # not `other`
    variables = moto.client("lambda").get_function_configuration(
        FunctionName=NAME, Qualifier=LIVE_ALIAS
    )["Environment"]["Variables"]
    assert json.loads(variables[CONNECTION_SECRETS_VAR]) == {"db": db_arn}
    assert PASSWORD not in json.dumps(variables)
    assert view["settings"]["connections"] == ["db"]
    assert platform.get_deployment(KEY)["settings"]["connections"] == ["db"]
    tags = moto.client("lambda").get_function(FunctionName=NAME)["Tags"]
    assert tags["agentform:connections"] == "db"

    # Dropping the connection drops the grant, the variable and the tag's names.
    platform.put_deployment(KEY, {"artifact": digest}, None)
    assert _secrets_granted(moto, NAME) == [hop_arn]
    live = moto.client("lambda").get_function_configuration(FunctionName=NAME, Qualifier=LIVE_ALIAS)
    assert CONNECTION_SECRETS_VAR not in live["Environment"]["Variables"]
    assert platform.get_deployment(KEY)["settings"]["connections"] == []
    tags = moto.client("lambda").get_function(FunctionName=NAME)["Tags"]
    assert tags["agentform:connections"] == ""


def test_a_connection_not_on_aws_is_a_409_before_anything_is_made(aws: Any, moto: Moto) -> None:
    platform = aws()
    digest = _function(platform)
    with pytest.raises(AgentformError) as refused:
        platform.put_deployment(KEY, {"artifact": digest, "connections": ["nowhere"]}, None)
    assert (refused.value.status, refused.value.code) == (409, "ConnectionMissing")
    assert "nowhere" in refused.value.message
    assert NAME not in _roles(moto)


def test_only_functions_declare_connections(aws: Any, moto: Moto) -> None:
    platform = aws()
    platform.put_environment("dev", EnvironmentSpec())
    platform.put_connection("db", ConnectionSpec(provider="generic", secrets={"pw": PASSWORD}))
    manifest = Manifest(kind=WorkloadKind.AGENTS, name="helper", models=["chat"])
    digest = platform.upload_artifact(build_artifact(manifest, None))
    key = DeploymentKey("dev", "agents", "helper")
    with pytest.raises(AgentformError) as refused:
        platform.put_deployment(key, {"artifact": digest, "connections": ["db"]}, None)
    assert (refused.value.status, refused.value.code) == (400, "InvalidField")
    assert function_name(key) not in _roles(moto)


def test_variables_too_large_fail_before_any_change_and_leave_no_role(aws: Any, moto: Moto) -> None:
    # With JWT settings, whose secret the deployer would otherwise write first.
    platform = aws(**{"agentform:jwtSecret": "a-test-jwt-secret-of-32-bytes-or-more"})
    digest = _function(platform)
    with pytest.raises(AgentformError) as refused:
        platform.put_deployment(KEY, {"artifact": digest, "config": {"blob": "x" * 5000}}, None)
    assert refused.value.code == "VariablesTooLarge"
    assert "AGENTFORM_CONFIG (5" in refused.value.message
    assert "Lambda allows 4096" in refused.value.message
    assert NAME not in _roles(moto)
    assert moto.client("lambda").list_functions()["Functions"] == []
    secrets = moto.client("secretsmanager").list_secrets()["SecretList"]
    assert jwt_secret_name("dev") not in [s["Name"] for s in secrets]
    # Nothing left to clean up, and the same deployment made smaller goes through.
    view = platform.put_deployment(KEY, {"artifact": digest, "config": {"blob": "x"}}, None)
    assert view["status"] == "live" and NAME in _roles(moto)


def test_the_size_check_counts_the_connections_and_the_jwt_settings(aws: Any, moto: Moto) -> None:
    """Just under the limit without them is over it with them: refused, nothing made."""
    platform = aws(**{"agentform:jwtSecret": "a-test-jwt-secret-of-32-bytes-or-more"})
    digest = _function(platform)
    names = [f"connection-number-{i:02}" for i in range(20)]
    for name in names:
        platform.put_connection(name, ConnectionSpec(provider="generic", secrets={"k": "value"}))
    with pytest.raises(AgentformError) as refused:
        platform.put_deployment(
            KEY, {"artifact": digest, "connections": names, "config": {"blob": "x" * 2500}}, None
        )
    assert refused.value.code == "VariablesTooLarge"
    assert CONNECTION_SECRETS_VAR in refused.value.message
    assert NAME not in _roles(moto)


def test_the_connections_tag_keeps_whole_names_within_256_characters() -> None:
    names = [f"{i:02}-" + "n" * 60 for i in range(6)]  # 63 characters each
    assert functions._names_tag(names[:4]) == " ".join(names[:4])  # 255 characters
    tag = functions._names_tag(list(reversed(names)))
    assert tag == " ".join(names[:3]) + " +3" and len(tag) <= 256
    assert functions._names_tag([]) == ""
