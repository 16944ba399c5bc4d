from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentform.platforms import PlatformSettings, open_platform
from agentform.platforms.aws import AwsPlatform
from tests.aws.moto_server import CREDENTIALS, REGION, Moto
from tests.support.engine import PulumiProject

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    server = Moto.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: Moto) -> Moto:
    """moto with empty state for this test."""
    moto_server.reset()
    moto_server.configure()
    return moto_server


@pytest.fixture
def aws_project(tmp_path: Path, pulumi_bin: Path, moto: Moto):  # type: ignore[no-untyped-def]
    """A PulumiProject for one of programs/, with `agentform:platform aws` on moto."""

    def make(program: str, program_dir: Path | None = None) -> PulumiProject:
        project = PulumiProject(
            tmp_path / f"project-{program}",
            program_dir or PROGRAMS / program,
            pulumi_bin,
            env={**CREDENTIALS, "AGENTFORM_STATE_DIR": str(tmp_path / "no-host")},
        )
        project.config("agentform:platform", "aws")
        project.config("agentform:region", REGION)
        project.config("agentform:awsEndpointUrl", moto.url)
        # moto runs no code, so no readiness invocation can succeed there.
        project.config("agentform:awsReadiness", "state")
        return project

    return make


@pytest.fixture
def aws(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., AwsPlatform]]:
    """Open AwsPlatforms on moto: `aws(readiness="state", **stack_config)` (moto runs no code,
    so a readiness invocation cannot succeed there); each is closed at the end."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    opened: list[AwsPlatform] = []

    def make(readiness: str = "state", **config: str) -> AwsPlatform:
        settings = PlatformSettings.from_config(
            {
                "agentform:platform": "aws",
                "agentform:region": REGION,
                "agentform:awsEndpointUrl": moto.url,
                "agentform:awsReadiness": readiness,
                **config,
            }
        )
        platform = open_platform(settings, "")
        assert isinstance(platform, AwsPlatform)
        opened.append(platform)
        return platform

    yield make
    for platform in opened:
        platform.close()
