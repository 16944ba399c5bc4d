"""`agentform:platform aws` under the real Pulumi engine, against moto's server mode: the
lifecycle of a stack, asserted on AWS's own state read back with boto3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentform import aws_cli
from agentform_runtime.aws_contract import (
    API_KEY_INDEX_TABLE,
    CONNECTION_SECRET_VAR,
    LIVE_ALIAS,
    TARGETS_VAR,
    connection_secret_name,
    hop_key_secret_name,
    table_name,
)
from agentform_runtime.workload.aws.identity import api_key_item
from tests.aws.moto_server import CREDENTIALS, REGION, Moto
from tests.support.engine import PulumiProject, change_summary

pytestmark = pytest.mark.engine

SECRET = "sk-aws-test-0123456789"
TOOL_V1 = 'def main(text: str = "") -> dict:\n    return {"echo": text, "release": 1}\n'
TOOL_V2 = 'def main(text: str = "") -> dict:\n    return {"echo": text, "release": 2}\n'
ACCOUNT = "123456789012"
FUNCTIONS = {
    "agents/helper": "agentform-development-agents-helper",
    "functions/echo": "agentform-development-functions-echo",
    "models/chat": "agentform-development-models-chat",
}


def _alias_arn(function: str, region: str = REGION) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{function}:{LIVE_ALIAS}"


def _alias_version(moto: Moto, function: str, region: str = REGION) -> str:
    alias = moto.client("lambda", region).get_alias(FunctionName=function, Name=LIVE_ALIAS)
    return str(alias["FunctionVersion"])


def _versions(moto: Moto, function: str) -> list[str]:
    answer = moto.client("lambda").list_versions_by_function(FunctionName=function)
    return [v["Version"] for v in answer["Versions"] if v["Version"] != "$LATEST"]


def _reserved(moto: Moto, function: str) -> int | None:
    answer = moto.client("lambda").get_function_concurrency(FunctionName=function)
    value = answer.get("ReservedConcurrentExecutions")
    return int(value) if value is not None else None


def _role_policy(moto: Moto, function: str) -> dict[str, Any]:
    iam = moto.client("iam")
    document = iam.get_role_policy(RoleName=function, PolicyName="agentform")["PolicyDocument"]
    return document if isinstance(document, dict) else dict(json.loads(document))


def _statement(policy: dict[str, Any], sid: str) -> dict[str, Any] | None:
    return next((s for s in policy["Statement"] if s.get("Sid") == sid), None)


def _live_variables(moto: Moto, function: str) -> dict[str, str]:
    lam = moto.client("lambda")
    version = _alias_version(moto, function)
    configuration = lam.get_function_configuration(FunctionName=function, Qualifier=version)
    return dict(configuration["Environment"]["Variables"])


def _state(project: PulumiProject, resource_name: str) -> dict[str, Any]:
    """A resource's outputs as the engine holds them (stack outputs change only on `up`)."""
    resource = next(r for r in project.resources() if r["urn"].endswith(f"::{resource_name}"))
    return dict(resource["outputs"])


def _stack(aws_project: Any, tmp_path: Path) -> tuple[PulumiProject, Path]:
    code = tmp_path / "tool"
    code.mkdir()
    (code / "tool.py").write_text(TOOL_V1)
    project = aws_project("stack")
    project.config("code_dir", str(code))
    project.config("api_key", SECRET, secret=True)
    return project, code


def test_up_deploys_every_resource_onto_lambda(
    aws_project: Any, moto: Moto, tmp_path: Path
) -> None:
    project, _code = _stack(aws_project, tmp_path)
    assert change_summary(project.up())["create"] == 9  # stack, env, conn, 3 workloads, 3 deps
    lam = moto.client("lambda")

    for function in FUNCTIONS.values():
        configuration = lam.get_function(FunctionName=function)["Configuration"]
        assert configuration["Handler"] == "agentform_runtime.workload.handler.handle"
        assert configuration["Runtime"] == "python3.11"
        assert _versions(moto, function) == ["1"]
        assert _alias_version(moto, function) == "1"
        url = lam.get_function_url_config(FunctionName=function, Qualifier=LIVE_ALIAS)
        assert url["FunctionUrl"].startswith("https://")
    echo = lam.get_function(FunctionName=FUNCTIONS["functions/echo"])
    assert echo["Configuration"]["MemorySize"] == 256
    assert echo["Configuration"]["Timeout"] == 30
    assert echo["Tags"]["agentform:environment"] == "development"
    assert echo["Tags"]["agentform:kind"] == "functions"
    assert echo["Tags"]["agentform:name"] == "echo"
    assert echo["Tags"]["agentform:version"] == project.outputs()["echo_version"]
    assert _reserved(moto, FUNCTIONS["functions/echo"]) == 2  # max_instances
    assert _reserved(moto, FUNCTIONS["agents/helper"]) == 4  # the default
    helper_url = lam.get_function_url_config(
        FunctionName=FUNCTIONS["agents/helper"], Qualifier=LIVE_ALIAS
    )["FunctionUrl"]
    assert project.outputs()["helper_url"] == helper_url

    # The agent may invoke exactly the live aliases its version declares; the others nothing.
    helper_policy = _role_policy(moto, FUNCTIONS["agents/helper"])
    targets = _statement(helper_policy, "DeclaredTargets")
    assert targets is not None
    assert targets["Action"] == "lambda:InvokeFunction"
    assert sorted(targets["Resource"]) == sorted(
        [_alias_arn(FUNCTIONS["functions/echo"]), _alias_arn(FUNCTIONS["models/chat"])]
    )
    assert json.loads(_live_variables(moto, FUNCTIONS["agents/helper"])[TARGETS_VAR]) == {
        "functions/echo": REGION,  # where each live alias is: the workload rebuilds the ARN
        "models/chat": REGION,
    }
    for function in (FUNCTIONS["functions/echo"], FUNCTIONS["models/chat"]):
        assert _statement(_role_policy(moto, function), "DeclaredTargets") is None

    # Only the model's role reads the connection's secret, which holds the key.
    manager = moto.client("secretsmanager")
    connection = manager.describe_secret(SecretId=connection_secret_name("llm-key"))
    stored = json.loads(
        manager.get_secret_value(SecretId=connection_secret_name("llm-key"))["SecretString"]
    )
    assert stored["secrets"] == {"api_key": SECRET}
    model_secrets = _statement(_role_policy(moto, FUNCTIONS["models/chat"]), "Secrets")
    assert model_secrets is not None and connection["ARN"] in model_secrets["Resource"]
    model_variables = _live_variables(moto, FUNCTIONS["models/chat"])
    assert model_variables[CONNECTION_SECRET_VAR] == connection["ARN"]
    assert model_variables["AGENTFORM_PLATFORM"] == "aws"
    for function in (FUNCTIONS["functions/echo"], FUNCTIONS["agents/helper"]):
        secrets = _statement(_role_policy(moto, function), "Secrets")
        assert secrets is not None and connection["ARN"] not in secrets["Resource"]
        assert CONNECTION_SECRET_VAR not in _live_variables(moto, function)
    assert SECRET not in json.dumps(project.export())

    # The environment: its table (pk, sk), its hop key and its record.
    table = moto.client("dynamodb").describe_table(TableName=table_name("development"))
    assert {(k["AttributeName"], k["KeyType"]) for k in table["Table"]["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    manager.describe_secret(SecretId=hop_key_secret_name("development"))
    record = moto.client("ssm").get_parameter(Name="/agentform/environments/development")
    assert json.loads(record["Parameter"]["Value"])["description"] == "AWS tests"

    # Nothing to do: no change, no new version.
    assert change_summary(project.up())["same"] == 9
    assert _versions(moto, FUNCTIONS["functions/echo"]) == ["1"]


def test_code_change_disable_rollback_refresh_region_and_destroy(
    aws_project: Any, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, code = _stack(aws_project, tmp_path)
    echo = FUNCTIONS["functions/echo"]
    project.up()
    first = project.outputs()["echo_version"]

    # A code change publishes a new version, moves `live`, keeps the previous one.
    (code / "tool.py").write_text(TOOL_V2)
    project.up()
    second = project.outputs()
    assert second["echo_version"] != first
    assert second["echo_previous_version"] == first
    assert _versions(moto, echo) == ["1", "2"]
    assert _alias_version(moto, echo) == "2"

    # Disable: reserved concurrency 0; enable: back to max_instances.
    project.config("enabled", "false")
    project.up()
    assert _reserved(moto, FUNCTIONS["agents/helper"]) == 0
    assert project.outputs()["helper_status"] == "disabled"
    project.config("enabled", "true")
    project.up()
    assert _reserved(moto, FUNCTIONS["agents/helper"]) == 4
    assert project.outputs()["helper_status"] == "live"

    # Rollback: the earlier code again repoints `live` at the kept version, publishing none.
    (code / "tool.py").write_text(TOOL_V1)
    project.up()
    assert _alias_version(moto, echo) == "1"
    assert _versions(moto, echo) == ["1", "2"]
    assert project.outputs()["echo_version"] == first

    # Refresh reads back the alias target and the concurrency someone changed out of band.
    lam = moto.client("lambda")
    lam.update_alias(FunctionName=echo, Name=LIVE_ALIAS, FunctionVersion="2")
    lam.put_function_concurrency(FunctionName=echo, ReservedConcurrentExecutions=3)
    project.refresh()
    refreshed = _state(project, "echo-dev")
    assert (refreshed["version"], refreshed["max_instances"]) == (second["echo_version"], 3)
    # ... and the next `up` puts back what the program declares.
    project.up()
    assert (_alias_version(moto, echo), _reserved(moto, echo)) == ("1", 2)
    # The alias target alone is part of the diff: moved out of band, it is moved back.
    lam.update_alias(FunctionName=echo, Name=LIVE_ALIAS, FunctionVersion="2")
    project.refresh()
    preview = project.preview()
    assert change_summary(preview)["update"] == 1, preview.output
    project.up()
    assert _alias_version(moto, echo) == "1"
    assert project.outputs()["echo_version"] == first

    # A location policy moves the function to a region in Germany.
    project.config("tool_location", "de")
    project.up()
    assert _alias_version(moto, echo, "eu-central-1") == "1"
    home = [f["FunctionName"] for f in moto.client("lambda").list_functions()["Functions"]]
    assert echo not in home
    # The agent that may call it is repointed: its role and its targets name the new ARN.
    targets = _statement(_role_policy(moto, FUNCTIONS["agents/helper"]), "DeclaredTargets")
    assert targets is not None and _alias_arn(echo, "eu-central-1") in targets["Resource"]
    helper_targets = json.loads(_live_variables(moto, FUNCTIONS["agents/helper"])[TARGETS_VAR])
    assert helper_targets["functions/echo"] == "eu-central-1"  # the alias's region

    # An end users' key of this environment, and one of another stack's environment.
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    aws_cli.create_api_key("development", REGION, moto.url)
    other = api_key_item("key_other", "0" * 64, "staging")
    moto.client("dynamodb").put_item(TableName=API_KEY_INDEX_TABLE, Item=other)

    # Destroy leaves nothing behind but the content-addressed artifacts and layers, and the
    # account-wide API-key index (other stacks' environments share it), without this
    # environment's keys: they are unknown everywhere now (401), not another's (403).
    project.destroy()
    index = moto.client("dynamodb").scan(TableName=API_KEY_INDEX_TABLE)["Items"]
    assert index == [other]
    for region in (REGION, "eu-central-1"):
        assert moto.client("lambda", region).list_functions()["Functions"] == []
    assert [r["RoleName"] for r in moto.client("iam").list_roles()["Roles"]] == []
    assert moto.client("secretsmanager").list_secrets()["SecretList"] == []
    assert moto.client("dynamodb").list_tables()["TableNames"] == [API_KEY_INDEX_TABLE]
    assert moto.client("ssm").describe_parameters()["Parameters"] == []


def test_a_location_without_an_aws_region_fails_at_preview(
    aws_project: Any, moto: Moto, tmp_path: Path
) -> None:
    project, _code = _stack(aws_project, tmp_path)
    project.config("tool_location", "nl")
    preview = project.preview(check=False)
    assert preview.returncode != 0
    assert "Deployment 'echo-dev': policies:" in preview.output
    assert "where AWS has no region" in preview.output
    assert moto.client("lambda").list_functions()["Functions"] == []


def test_an_aws_failure_is_one_line_naming_the_resource(aws_project: Any, tmp_path: Path) -> None:
    project, _code = _stack(aws_project, tmp_path)
    project.config("agentform:awsEndpointUrl", "http://127.0.0.1:9")  # nothing listens there
    up = project.up(check=False)
    assert up.returncode != 0
    assert "Environment 'development': AWS: Could not connect to the endpoint URL" in up.output
    assert "check the credentials (the standard AWS chain), agentform:region" in up.output
    assert "Traceback" not in up.output
