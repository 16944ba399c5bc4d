"""The promotion example as a real two-stack project (dev, prod) on one file backend."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.engine import PulumiProject, Run
from tests.support.hosts import RunningHost

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "promotion"


class TwoStacks:
    """`examples/promotion` copied to a temp dir, with stacks `dev` and `prod`."""

    def __init__(self, root: Path, bin_dir: Path, host: RunningHost) -> None:
        self.program = root / "program"
        shutil.copytree(EXAMPLE, self.program, ignore=shutil.ignore_patterns("Pulumi*.yaml"))
        self.workdir = root / "project"
        self.workdir.mkdir()
        for stack in ("dev", "prod"):
            shutil.copy(EXAMPLE / f"Pulumi.{stack}.yaml", self.workdir)
        self.project = PulumiProject(
            self.workdir,
            self.program,
            bin_dir,
            env={"AGENTFORM_STATE_DIR": str(host.state_dir)},
            stack="dev",
            project="agentform-promotion",
        )
        self.project.run("stack", "init", "prod", check=True)
        for stack in ("dev", "prod"):
            self.config(stack, "agentform:endpoint", host.url)

    def pulumi(self, stack: str, *args: str, check: bool = True) -> Run:
        return self.project.run(*args, "--stack", stack, check=check)

    def config(self, stack: str, key: str, value: str, secret: bool = False) -> None:
        self.pulumi(stack, "config", "set", key, value, *(["--secret"] if secret else []))

    def up(self, stack: str) -> Run:
        return self.pulumi(stack, "up", "--yes", "--skip-preview", "--json")

    def preview(self, stack: str, check: bool = True) -> Run:
        return self.pulumi(stack, "preview", "--json", check=check)

    def agentform(self, *args: str) -> Run:
        command = [sys.executable, "-m", "agentform", *args]
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,  # not a terminal: no question can be answered
            cwd=self.workdir,
            env=self.project.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        return Run(command, result.returncode, result.stdout, result.stderr)

    def promote(self, *args: str) -> Run:
        return self.agentform("promote", *args, "--yes", "--cwd", str(self.workdir))

    def stack_file(self, stack: str) -> Path:
        return self.workdir / f"Pulumi.{stack}.yaml"

    def set_tool_answer(self, version: str) -> None:
        """Edit the working tree: the tool answers with another version tag."""
        tool = self.program / "tools" / "orders.py"
        text = tool.read_text()
        start = text.index('"order-status v')
        tool.write_text(text[:start] + f'"order-status {version}"' + text[start + 17 :])


def ask_tool(host: RunningHost, environment: str) -> httpx.Response:
    key = host.admin().post(f"/v1/environments/{environment}/api-keys").json()["key"]
    return host.client(key).post(
        f"/run/{environment}/functions/order-status", json={"order_id": "A-1001"}
    )


@pytest.fixture
def stacks(tmp_path: Path, pulumi_bin: Path, host: RunningHost) -> TwoStacks:
    return TwoStacks(tmp_path, pulumi_bin, host)
