"""The two platforms the acceptance cases run on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws_runtime.platforms import (
    JWT_SECRET,
    AwsPlatform,
    DeployerAwsPlatform,
    LocalPlatform,
    Platform,
)
from tests.aws_runtime.router import LambdaRouter, rie_binary
from tests.support.hosts import RunningHost


@pytest.fixture(scope="session")
def rie() -> Path:
    return rie_binary()


@pytest.fixture
def local_platform(tmp_path: Path) -> Iterator[LocalPlatform]:
    host = RunningHost(tmp_path / "host-state", ("--jwt-secret", JWT_SECRET)).start()
    try:
        yield LocalPlatform(host, tmp_path / "local")
    finally:
        host.stop()


@pytest.fixture
def router(tmp_path: Path, rie: Path) -> Iterator[LambdaRouter]:
    """moto behind the test-only router, which runs each function's zip under RIE."""
    (tmp_path / "aws").mkdir()
    running = LambdaRouter(tmp_path / "aws", rie).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def aws_platform(tmp_path: Path, router: LambdaRouter, pulumi_bin: Path) -> AwsPlatform:
    """`agentform:platform aws`: the real provider under the real engine, onto the router."""
    return AwsPlatform(router, tmp_path / "aws", pulumi_bin)


@pytest.fixture
def deployer_aws_platform(tmp_path: Path, router: LambdaRouter) -> DeployerAwsPlatform:
    """The test deployer, for what a program cannot declare (a cycle of chained agents)."""
    return DeployerAwsPlatform(router, tmp_path / "aws")


@pytest.fixture(params=["local", "aws"])
def platform(request: pytest.FixtureRequest) -> Platform:
    fixture: Platform = request.getfixturevalue(f"{request.param}_platform")
    return fixture


@pytest.fixture(params=["local", "deployer_aws"])
def cycle_platform(request: pytest.FixtureRequest) -> Platform:
    """Both platforms, AWS through the test deployer: a cycle of chained agents cannot be
    declared in a Pulumi program (each Agent takes the Agent objects it chains), yet the
    runtime must refuse one (made by hand, or by two stacks)."""
    fixture: Platform = request.getfixturevalue(f"{request.param}_platform")
    return fixture
