"""Run the real Pulumi engine on a program: its own PULUMI_HOME, a file backend, a
passphrase, offline settings, and helpers that read `--json` results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def engine_bin() -> Path:
    """The engine's directory (built or found by scripts/setup-engine.sh, cached)."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup-engine.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"setting up the Pulumi engine failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class Run:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def errors(self) -> str:
        """The error diagnostics of a `--json` run, one a line (first: they are the why)."""
        lines = []
        for line in self.stdout.splitlines():
            try:
                event = json.loads(line).get("diagnosticEvent") or {}
            except (ValueError, AttributeError):
                continue
            if event.get("severity") == "error":
                lines.append(f"{event.get('urn', '')}: {event.get('message', '').strip()}\n")
        return "".join(lines)

    def events(self) -> list[dict[str, Any]]:
        """The engine events of `up/refresh --json` (one JSON object a line)."""
        return [
            json.loads(line) for line in self.stdout.splitlines() if line.strip().startswith("{")
        ]


class PulumiProject:
    """One project + stack in a temp dir, driven through the `pulumi` CLI."""

    def __init__(
        self,
        workdir: Path,
        program: Path,
        bin_dir: Path,
        env: dict[str, str] | None = None,
        stack: str = "test",
        project: str = "agentform-test",
    ) -> None:
        self.workdir = workdir
        self.bin_dir = bin_dir
        self.stack = stack
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "state").mkdir(exist_ok=True)
        (workdir / "Pulumi.yaml").write_text(
            f"name: {project}\n"
            "runtime:\n  name: python\n  options:\n    toolchain: pip\n"
            f"    virtualenv: {sys.prefix}\n"
            f"main: {program}\n"
        )
        self.env = {
            **os.environ,
            "PATH": os.pathsep.join(
                [str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
            ),
            "PULUMI_HOME": str(workdir / "pulumi-home"),
            "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": "agentform-tests",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_DISABLE_REGISTRY_RESOLVE": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            **(env or {}),
        }
        self.run("stack", "init", stack, check=True)

    def run(self, *args: str, check: bool = False, timeout: float = 600) -> Run:
        command = ["pulumi", *args, "--non-interactive"]
        result = subprocess.run(
            command,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        run = Run(command, result.returncode, result.stdout, result.stderr)
        if check and run.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({run.returncode}):\n{run.errors()}"
                f"{run.output[-6000:]}"
            )
        return run

    def config(self, key: str, value: str, secret: bool = False) -> None:
        self.run("config", "set", key, value, *(["--secret"] if secret else []), check=True)

    def preview(self, check: bool = True) -> Run:
        return self.run("preview", "--json", "--diff", check=check)

    def up(self, check: bool = True) -> Run:
        return self.run("up", "--yes", "--json", "--skip-preview", check=check)

    def refresh(self) -> Run:
        return self.run("refresh", "--yes", "--json", "--skip-preview", check=True)

    def destroy(self) -> Run:
        return self.run("destroy", "--yes", "--skip-preview", check=True)

    def outputs(self) -> dict[str, Any]:
        return dict(self.run("stack", "output", "--json", "--show-secrets", check=True).json())

    def export(self) -> dict[str, Any]:
        return dict(self.run("stack", "export", check=True).json())

    def resources(self) -> list[dict[str, Any]]:
        return list(self.export()["deployment"].get("resources", []))


def change_summary(run: Run) -> Counter[str]:
    """Counts of creates/updates/deletes/sames... from a `--json` preview or update."""
    try:
        summary = run.json().get("changeSummary", {})  # preview: one document
    except json.JSONDecodeError:  # up/refresh: a stream of events ending with a summary
        summaries = [e["summaryEvent"] for e in run.events() if "summaryEvent" in e]
        summary = summaries[-1].get("resourceChanges", {}) if summaries else {}
    return Counter({k: int(v) for k, v in summary.items()})
