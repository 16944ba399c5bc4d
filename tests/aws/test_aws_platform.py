"""The AWS platform called directly: readiness, S3 for large zips, provisioned concurrency
(botocore's Stubber: moto does not implement it), failures as one line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from agentform.packaging import build_artifact
from agentform.platforms import PlatformSettings
from agentform.platforms.aws import AwsPlatform, catalog, functions
from agentform.platforms.aws.regions import placement_failure, region_for
from agentform_runtime.aws_contract import LIVE_ALIAS, function_name
from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import DeploymentKey, EnvironmentSpec, Manifest, WorkloadKind
from tests.aws.moto_server import REGION, Moto

KEY = DeploymentKey("dev", "functions", "tool")
NAME = "agentform-dev-functions-tool"


def _artifact(platform: AwsPlatform) -> str:
    data = build_artifact(
        Manifest(kind=WorkloadKind.FUNCTIONS, name="tool", entrypoint="tool:main"), None
    )
    platform.put_environment("dev", EnvironmentSpec())
    return platform.upload_artifact(data)


def test_live_moves_only_after_a_readiness_invocation_succeeds(aws: Any, moto: Moto) -> None:
    platform = aws("state")
    digest = _artifact(platform)
    assert platform.put_deployment(KEY, {"artifact": digest}, None)["status"] == "live"

    # moto runs no code: it echoes the health event, which is no healthy answer.
    with pytest.raises(AgentformError) as failed:
        aws("invoke").put_deployment(KEY, {"artifact": digest, "memory_mb": 1024}, None)
    assert "failed its health check" in failed.value.message
    lam = moto.client("lambda")
    assert lam.get_alias(FunctionName=NAME, Name=LIVE_ALIAS)["FunctionVersion"] == "1"
    live = lam.get_function_configuration(FunctionName=NAME, Qualifier=LIVE_ALIAS)
    assert live["MemorySize"] == 512


def test_the_next_put_finishes_what_a_failed_one_left(aws: Any, moto: Moto) -> None:
    digest = _artifact(aws())
    with pytest.raises(AgentformError):
        aws("invoke").put_deployment(KEY, {"artifact": digest}, None)
    lam = moto.client("lambda")
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=NAME)["Versions"]] == [
        "$LATEST",
        "1",
    ]
    assert aws().get_deployment(KEY) is None  # no `live` yet: not deployed
    view = aws().put_deployment(KEY, {"artifact": digest}, None)
    assert (view["status"], view["lambda_version"]) == ("live", "1")  # the same version reused


def test_a_zip_over_the_direct_upload_limit_goes_through_s3(
    aws: Any, moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "DIRECT_UPLOAD_LIMIT", 1000)
    platform = aws()
    digest = _artifact(platform)
    view = platform.put_deployment(
        KEY, {"artifact": digest}, {"locations": ["de"], "flavors": ["arm64"], "token_budgets": []}
    )
    assert (view["region"], view["architecture"]) == ("eu-central-1", "arm64")
    s3 = moto.client("s3", "eu-central-1")
    key = f"artifacts/{digest.removeprefix('sha256:')}.zip"
    s3.head_object(Bucket="agentform-artifacts-123456789012-eu-central-1", Key=key)
    assert view["settings"]["artifact"] == digest


def test_every_function_lists_the_layer_published_once_per_region_and_content(
    aws: Any, moto: Moto
) -> None:
    platform = aws()
    digest = _artifact(platform)
    other = DeploymentKey("dev", "functions", "other")
    for key in (KEY, other):
        platform.put_deployment(key, {"artifact": digest}, None)
    lam = moto.client("lambda")
    versions = lam.list_layer_versions(LayerName="agentform-runtime-x86_64")["LayerVersions"]
    assert len(versions) == 1
    for key in (KEY, other):
        configuration = lam.get_function_configuration(
            FunctionName=function_name(key), Qualifier="live"
        )
        assert [entry["Arn"] for entry in configuration["Layers"]] == [
            versions[0]["LayerVersionArn"]
        ]
    assert versions[0]["Description"].startswith("agentform runtime packages sha256:")

    # A policy moves it to arm64 in another region: that region gets its own arm64 layer.
    view = platform.put_deployment(
        KEY, {"artifact": digest}, {"locations": ["de"], "flavors": ["arm64"], "token_budgets": []}
    )
    assert (view["region"], view["architecture"]) == ("eu-central-1", "arm64")
    there = moto.client("lambda", "eu-central-1")
    arm = there.list_layer_versions(LayerName="agentform-runtime-arm64")["LayerVersions"]
    assert len(arm) == 1
    moved = there.get_function_configuration(FunctionName=function_name(KEY), Qualifier="live")
    assert [entry["Arn"] for entry in moved["Layers"]] == [arm[0]["LayerVersionArn"]]


def test_the_function_url_is_public_with_both_statements_lambda_requires(
    aws: Any, moto: Moto
) -> None:
    """Since October 2025 an auth-NONE URL needs lambda:InvokeFunction (through the URL) as
    well as lambda:InvokeFunctionUrl; a put restores a missing one (older deployments)."""
    platform = aws()
    digest = _artifact(platform)
    platform.put_deployment(KEY, {"artifact": digest}, None)
    lam = moto.client("lambda")

    def statements() -> dict[str, dict[str, Any]]:
        policy = json.loads(lam.get_policy(FunctionName=NAME, Qualifier=LIVE_ALIAS)["Policy"])
        return {statement["Sid"]: statement for statement in policy["Statement"]}

    found = statements()
    assert found["agentform-function-url"]["Action"] == "lambda:InvokeFunctionUrl"
    assert found["agentform-function-url-invoke"]["Action"] == "lambda:InvokeFunction"
    assert found["agentform-function-url-invoke"]["InvokedViaFunctionUrl"] is True
    assert {s["Principal"] for s in found.values()} == {"*"}

    lam.remove_permission(
        FunctionName=NAME, Qualifier=LIVE_ALIAS, StatementId="agentform-function-url-invoke"
    )
    platform.put_deployment(KEY, {"artifact": digest, "memory_mb": 1024}, None)
    assert sorted(statements()) == ["agentform-function-url", "agentform-function-url-invoke"]


def test_targets_are_regions_so_many_fit_and_oversized_variables_are_named(
    aws: Any, moto: Moto
) -> None:
    """Lambda allows 4 KB of variables: an agent declaring 60 functions fits (its targets are
    regions; the workload rebuilds each ARN), and a `config` too large is refused by name."""
    platform = aws()
    platform.put_environment("dev", EnvironmentSpec())
    tools = tuple(f"tool-number-{i:02}" for i in range(60))
    manifest = Manifest(
        kind=WorkloadKind.AGENTS, name="many", models=["chat"], functions=list(tools)
    )
    digest = platform.upload_artifact(build_artifact(manifest, None))
    key = DeploymentKey("dev", "agents", "many")
    view = platform.put_deployment(key, {"artifact": digest}, None)
    variables = moto.client("lambda").get_function_configuration(
        FunctionName=function_name(key), Qualifier=LIVE_ALIAS
    )["Environment"]["Variables"]
    assert len(json.dumps(variables, separators=(",", ":"))) <= 4096
    assert json.loads(variables["AGENTFORM_TARGETS"])["functions/tool-number-07"] == REGION
    tool = DeploymentKey("dev", "functions", "tool-number-07")
    assert view["targets"]["functions/tool-number-07"] == (
        f"arn:aws:lambda:{REGION}:123456789012:function:{function_name(tool)}:live"
    )

    with pytest.raises(AgentformError) as refused:
        platform.put_deployment(key, {"artifact": digest, "config": {"blob": "x" * 5000}}, None)
    assert refused.value.code == "VariablesTooLarge"
    assert "AGENTFORM_CONFIG (5" in refused.value.message and "Lambda allows 4096" in (
        refused.value.message
    )


def _stubbed(platform: AwsPlatform) -> tuple[Any, Stubber]:
    client = platform.aws.client("lambda")
    return client, Stubber(client)


def test_min_instances_is_provisioned_concurrency_on_live(aws: Any) -> None:
    client, stub = _stubbed(aws())
    live = {"FunctionName": NAME, "Qualifier": LIVE_ALIAS}
    stub.add_response(
        "put_provisioned_concurrency_config",
        {"RequestedProvisionedConcurrentExecutions": 2, "Status": "IN_PROGRESS"},
        {**live, "ProvisionedConcurrentExecutions": 2},
    )
    # Back to 0: the config is found and deleted.
    stub.add_response(
        "get_provisioned_concurrency_config",
        {"RequestedProvisionedConcurrentExecutions": 2, "Status": "READY"},
        live,
    )
    stub.add_response("delete_provisioned_concurrency_config", {}, live)
    # Already none: nothing to delete.
    stub.add_client_error(
        "get_provisioned_concurrency_config",
        "ProvisionedConcurrencyConfigNotFoundException",
        http_status_code=404,
        expected_params=live,
    )
    with stub:
        functions.put_provisioned_concurrency(client, NAME, 2)
        functions.put_provisioned_concurrency(client, NAME, 0)
        functions.put_provisioned_concurrency(client, NAME, 0)
    stub.assert_no_pending_responses()


def test_a_version_that_does_not_become_active_keeps_live_where_it_was(aws: Any) -> None:
    platform = aws()
    client, stub = _stubbed(platform)
    stub.add_response(
        "get_function_configuration",
        {"State": "Failed", "StateReason": "image missing"},
        {"FunctionName": NAME, "Qualifier": "3"},
    )
    with stub, pytest.raises(AgentformError) as failed:
        functions.Deployer(platform.aws, "state")._make_ready(client, NAME, "3", "v1")
    assert "is Failed: image missing; `live` stays where it was" in failed.value.message


def test_an_aws_failure_is_one_line_naming_the_call_and_awss_message(aws: Any) -> None:
    platform = aws()
    _client, stub = _stubbed(platform)
    stub.add_client_error(
        "get_function",
        "AccessDeniedException",
        "User is not authorized to perform: lambda:GetFunction",
        http_status_code=403,
    )
    with stub, pytest.raises(AgentformError) as failed:
        platform.get_deployment(KEY)
    message = failed.value.message
    assert message == (
        "AWS GetFunction failed: AccessDeniedException: "
        "User is not authorized to perform: lambda:GetFunction"
    )


def test_location_policies_pick_the_region_and_fail_without_one() -> None:
    assert region_for(None, "us-east-1") == "us-east-1"
    assert region_for(["us", "de"], "us-west-2") == "us-west-2"
    assert region_for(["fr", "de"], "us-east-1") == "eu-west-3"
    reason = placement_failure({"locations": ["nl", "pl"], "flavors": None}, "us-east-1")
    assert reason is not None and "where AWS has no region" in reason
    gpu = placement_failure({"locations": None, "flavors": ["t4"]}, "us-east-1")
    assert gpu is not None and "CPUs only" in gpu


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"agentform:platform": "gcp"}, "agentform:platform is 'gcp'; supported: local, aws"),
        (
            {"agentform:platform": "aws", "agentform:awsReadiness": "ping"},
            "agentform:awsReadiness is 'ping'; supported: invoke, state",
        ),
    ],
)
def test_settings_name_the_bad_key(config: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlatformSettings.from_config(config)
    defaults = PlatformSettings.from_config({})
    assert (defaults.platform, defaults.aws_readiness) == ("local", "invoke")
