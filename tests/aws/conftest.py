from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
