from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.engine import PulumiProject
from tests.support.hosts import RunningHost

SUPPORT = Path(__file__).parent / "programs" / "support"


@pytest.fixture
def support(tmp_path: Path, pulumi_bin: Path, host: RunningHost) -> PulumiProject:
    """The support-desk example as a stack, pointed at the test's host."""
    project = PulumiProject(
        tmp_path / "support",
        SUPPORT,
        pulumi_bin,
        env={"AGENTFORM_STATE_DIR": str(host.state_dir)},
    )
    project.config("agentform:endpoint", host.url)
    return project
