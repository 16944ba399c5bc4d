"""The two platforms the acceptance cases run on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws_runtime.platforms import JWT_SECRET, AwsPlatform, LocalPlatform, Platform
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
def aws_platform(tmp_path: Path, rie: Path) -> Iterator[AwsPlatform]:
    (tmp_path / "aws").mkdir()
    router = LambdaRouter(tmp_path / "aws", rie).start()
    try:
        yield AwsPlatform(router, tmp_path / "aws")
    finally:
        router.stop()


@pytest.fixture(params=["local", "aws"])
def platform(request: pytest.FixtureRequest) -> Platform:
    fixture: Platform = request.getfixturevalue(f"{request.param}_platform")
    return fixture
