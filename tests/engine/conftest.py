from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.engine import PulumiProject
from tests.support.hosts import RunningHost

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture
def project_for(tmp_path: Path, pulumi_bin: Path, host: RunningHost):  # type: ignore[no-untyped-def]
    """Build a PulumiProject for one of programs/, pointed at the test's host."""

    def make(program: str, program_dir: Path | None = None, **env: str) -> PulumiProject:
        project = PulumiProject(
            tmp_path / f"project-{program}",
            program_dir or PROGRAMS / program,
            pulumi_bin,
            env={"AGENTFORM_STATE_DIR": str(host.state_dir), **env},
        )
        project.config("agentform:endpoint", host.url)
        return project

    return make
