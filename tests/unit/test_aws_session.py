"""The AWS platform's region when `agentform:region` is not set: the SDKs' variables."""

from __future__ import annotations

import pytest

from agentform.platforms.aws.session import AwsSession
from agentform_runtime.errors import AgentformError


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no profile's region either


@pytest.mark.usefixtures("no_region")
def test_aws_region_is_a_default_as_aws_default_region_is(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each endpoint its own (cached) session, as each distinct stack setting gets.
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    assert AwsSession(None, "http://127.0.0.1:9/a").home_region == "eu-west-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")  # boto3's own comes first
    assert AwsSession(None, "http://127.0.0.1:9/b").home_region == "eu-central-1"
    assert AwsSession("ap-south-1", "http://127.0.0.1:9/c").home_region == "ap-south-1"


@pytest.mark.usefixtures("no_region")
def test_no_region_at_all_is_one_clear_error() -> None:
    with pytest.raises(AgentformError, match="AWS_REGION or AWS_DEFAULT_REGION"):
        AwsSession(None, "http://127.0.0.1:9/d")
