"""A function that a location policy placed outside the stack's region still finds its
environment: the table, the API-key index and the secrets in the home region
(`AGENTFORM_HOME_REGION`), each hop in its target's region. The workload's own boto3 clients
against moto's server, which keeps every region apart as AWS does."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import pytest

from agentform.platforms.aws import catalog
from agentform.platforms.aws.session import AwsSession
from agentform_runtime.aws_contract import (
    API_KEY_INDEX_TABLE,
    HOME_REGION_VAR,
    HOP_KEY_SECRET_VAR,
    LIVE_ALIAS,
    TABLE_VAR,
    TARGETS_VAR,
    function_name,
)
from agentform_runtime.specs import DeploymentKey
from agentform_runtime.workload.aws import clients, identity
from agentform_runtime.workload.aws.hops import LambdaHopClient
from agentform_runtime.workload.context import Context
from tests.aws.moto_server import CREDENTIALS, REGION, Moto

ELSEWHERE = "eu-west-1"  # where the location policy put the function (and its target)
TABLE = "agentform-dev"
ACCOUNT = "123456789012"  # moto's


@pytest.fixture
def placed_elsewhere(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[Moto]:
    """This process as a function running in ELSEWHERE of an environment homed in REGION."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("AWS_REGION", ELSEWHERE)  # Lambda's, for the function's own region
    monkeypatch.setenv(HOME_REGION_VAR, REGION)
    monkeypatch.setenv(TABLE_VAR, TABLE)
    clients.client.cache_clear()
    clients.forget_secrets()
    try:
        yield moto
    finally:
        clients.client.cache_clear()
        clients.forget_secrets()


def test_an_api_key_is_checked_in_the_home_regions_tables(placed_elsewhere: Moto) -> None:
    home = AwsSession(REGION, placed_elsewhere.url)
    for name in (TABLE, API_KEY_INDEX_TABLE):
        catalog.put_table(home, name, {})  # as the deployer makes them
    key = "afk_" + "k" * 40
    identity.put_api_key(TABLE, "key_1", key, "dev", placed_elsewhere.client("dynamodb"))
    assert identity.end_user({"authorization": f"Bearer {key}"}, "dev") == "api-key:key_1"


def test_a_hop_reaches_its_target_in_the_targets_region(
    placed_elsewhere: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto = placed_elsewhere
    hop_key = moto.client("secretsmanager").create_secret(
        Name="agentform/dev/hop-key", SecretString="h" * 48
    )["ARN"]
    monkeypatch.setenv(HOP_KEY_SECRET_VAR, hop_key)  # read in the home region
    target = DeploymentKey("dev", "functions", "add")
    monkeypatch.setenv(TARGETS_VAR, json.dumps({"functions/add": ELSEWHERE}))
    role = moto.client("iam").create_role(
        RoleName="callee",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return event\n")
    lam = moto.client("lambda", ELSEWHERE)
    name = function_name(target)
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handle",
        Code={"ZipFile": code.getvalue()},
    )
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name=LIVE_ALIAS, FunctionVersion=version)

    me = DeploymentKey("dev", "agents", "calc")
    context = Context("0" * 32, "1" * 32, "", "erin", "dev", "calc", "v1")
    own_arn = f"arn:aws:lambda:{ELSEWHERE}:{ACCOUNT}:function:{function_name(me)}:live"
    client = LambdaHopClient(context, 0.0, me, (me,), own_arn)
    # moto runs no code: its Invoke answers with the event it was given, which is how this
    # test sees that the hop reached the function in ELSEWHERE (elsewhere it does not exist).
    answered = client.call("functions", "add", {"a": 2, "b": 3})
    assert json.loads(answered["body"]) == {"a": 2, "b": 3}
    assert "x-agentform-hop-token" in answered["headers"]
