"""`agentform promote` from a stack on the local host to a stack on AWS (moto): the release's
artifacts are copied into the AWS stack's S3 bucket by digest, and prod runs dev's code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentform.platforms.aws.catalog import code_sha256
from tests.aws.moto_server import CREDENTIALS, REGION, Moto
from tests.promotion.conftest import TwoStacks, ask_tool
from tests.support.hosts import RunningHost

pytestmark = pytest.mark.engine

ACCOUNT = "123456789012"


def test_promote_from_a_local_stack_to_an_aws_stack(
    tmp_path: Path, pulumi_bin: Path, host: RunningHost, moto: Moto
) -> None:
    stacks = TwoStacks(tmp_path, pulumi_bin, host)
    stacks.project.env.update(CREDENTIALS)
    for key, value in {
        "agentform:platform": "aws",
        "agentform:region": REGION,
        "agentform:awsEndpointUrl": moto.url,
        "agentform:awsReadiness": "state",  # moto runs no code
    }.items():
        stacks.config("prod", key, value)
    stacks.up("dev")
    dev = json.loads(
        stacks.agentform("release", "show", "dev", "--cwd", str(stacks.workdir)).stdout
    )
    artifacts = {f"{d['kind']}/{d['name']}": d["artifact"] for d in dev["deployments"]}

    promoted = stacks.promote("dev", "prod")
    assert promoted.returncode == 0, promoted.output
    destination = f"AWS ({REGION}, {moto.url})"
    copies = [line for line in promoted.output.splitlines() if "copied artifact" in line]
    assert len(copies) == len(set(artifacts.values())), promoted.output
    assert all(f"to {destination} (digest verified)" in line for line in copies)

    # Each artifact is in the bucket under its digest, and prod's functions run exactly it.
    s3 = moto.client("s3")
    bucket = f"agentform-artifacts-{ACCOUNT}-{REGION}"
    lam = moto.client("lambda")
    for target, digest in artifacts.items():
        key = f"artifacts/{digest.removeprefix('sha256:')}.zip"
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
        kind, name = target.split("/")
        function = f"agentform-prod-{kind}-{name}"
        live = lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"]
        configuration = lam.get_function_configuration(FunctionName=function, Qualifier=live)
        assert configuration["CodeSha256"] == code_sha256(digest), target

    # Promoting the same release again copies nothing: the artifacts are found by digest.
    again = stacks.promote("dev", "prod")
    assert again.returncode == 0, again.output
    assert "copied artifact" not in again.output


def test_promote_from_an_aws_stack_to_a_local_stack(
    tmp_path: Path, pulumi_bin: Path, host: RunningHost, moto: Moto
) -> None:
    stacks = TwoStacks(tmp_path, pulumi_bin, host)
    stacks.project.env.update(CREDENTIALS)
    for key, value in {
        "agentform:platform": "aws",
        "agentform:region": REGION,
        "agentform:awsEndpointUrl": moto.url,
        "agentform:awsReadiness": "state",
    }.items():
        stacks.config("dev", key, value)
    stacks.up("dev")
    stacks.set_tool_answer("v2")  # the working tree moves on; dev on AWS still has v1

    promoted = stacks.promote("dev", "prod")
    assert promoted.returncode == 0, promoted.output
    assert f"to {host.url} (digest verified)" in promoted.output
    # The artifacts came from S3, by digest: prod on the local host runs dev's code.
    answer = ask_tool(host, "prod")
    assert answer.status_code == 200, answer.text
    assert "order-status v1" in json.dumps(answer.json())


def test_promote_from_an_aws_stack_to_an_aws_stack_in_another_region(
    tmp_path: Path, pulumi_bin: Path, host: RunningHost, moto: Moto
) -> None:
    stacks = TwoStacks(tmp_path, pulumi_bin, host)
    stacks.project.env.update(CREDENTIALS)
    regions = {"dev": REGION, "prod": "eu-west-1"}
    for stack, region in regions.items():
        for key, value in {
            "agentform:platform": "aws",
            "agentform:region": region,
            "agentform:awsEndpointUrl": moto.url,
            "agentform:awsReadiness": "state",
        }.items():
            stacks.config(stack, key, value)
    stacks.up("dev")
    dev = json.loads(
        stacks.agentform("release", "show", "dev", "--cwd", str(stacks.workdir)).stdout
    )
    artifacts = {f"{d['kind']}/{d['name']}": d["artifact"] for d in dev["deployments"]}
    stacks.set_tool_answer("v2")  # the working tree moves on; dev on AWS still has v1

    promoted = stacks.promote("dev", "prod")
    assert promoted.returncode == 0, promoted.output
    # prod's home region has its own bucket: each artifact is copied there once, by digest.
    copies = [line for line in promoted.output.splitlines() if "copied artifact" in line]
    assert len(copies) == len(set(artifacts.values())), promoted.output
    assert all(f"to AWS (eu-west-1, {moto.url}) (digest verified)" in c for c in copies)
    lam = moto.client("lambda", "eu-west-1")
    for target, digest in artifacts.items():
        kind, name = target.split("/")
        function = f"agentform-prod-{kind}-{name}"
        live = lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"]
        configuration = lam.get_function_configuration(FunctionName=function, Qualifier=live)
        assert configuration["CodeSha256"] == code_sha256(digest), target
        # The runtime layer is published in prod's region too.
        assert ":eu-west-1:" in configuration["Layers"][0]["Arn"], target
