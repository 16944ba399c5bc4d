"""A bounded schemathesis run against the host's own OpenAPI document: no input it
generates may make the host answer with a server error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.hosts import RunningHost


def test_no_generated_request_causes_a_server_error(host: RunningHost, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{host.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {host.token}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.split("SUMMARY")[-1]
