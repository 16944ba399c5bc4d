"""scripts/setup.sh sourced into a shell changes only PATH and the variables it documents, and
scripts/setup-engine.sh says how long a long step has been running. Both run for real, against
a stand-in repository (no pip, no engine build) and a stand-in `go`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
DOCUMENTED = {
    "PATH",
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_SKIP_UPDATE_CHECK",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION",
    "PULUMI_DISABLE_REGISTRY_RESOLVE",
}

# What a shell looks like: its options, traps and functions; its variables' names; its environment.
SNAPSHOT = """
SHELL_OWN='_|BASH_.*|FUNCNAME|PIPESTATUS|LINENO|SECONDS|RANDOM|SRANDOM|EPOCH.*|COLUMNS|LINES'
snapshot() {
  { echo "$-"; set -o; shopt -p; trap -p; declare -F; } > "$1.shell"
  compgen -v | grep -vxE "$SHELL_OWN" > "$1.names"
  env | sort > "$1.env"
}
"""


def stand_in_repo(tmp_path: Path, with_venv: bool = True) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    (repo / "scripts" / "setup-engine.sh").write_text("echo /stand-in/engine/bin\n")
    (repo / "scripts" / "setup-postgres.sh").write_text("echo /stand-in/postgres/bin\n")
    (repo / "scripts" / "setup-rie.sh").write_text("echo /stand-in/aws-lambda-rie\n")
    (repo / "pyproject.toml").write_text("[project]\n")
    (repo / "constraints.txt").write_text("")
    if with_venv:
        (repo / ".venv" / "bin").mkdir(parents=True)
        (repo / ".venv" / "bin" / "python").write_text("#!/bin/sh\n")
        (repo / ".venv" / "bin" / "python").chmod(0o755)
        digest = hashlib.sha256(b"[project]\n").hexdigest()
        (repo / ".venv" / ".agentform-deps").write_text(digest + "\n")
    return repo


def bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No Pulumi or Agentform variables from the environment running the tests."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PULUMI_", "AGENTFORM_")) and k != "BASH_ENV"
    }
    return {**env, "HOME": str(tmp_path / "home"), **extra}


def test_sourcing_changes_only_path_and_the_documented_variables(tmp_path: Path) -> None:
    repo = stand_in_repo(tmp_path)
    shown = bash(
        SNAPSHOT
        + f"""
        snapshot {tmp_path}/before
        source {repo}/scripts/setup.sh; echo "sourced $?"
        snapshot {tmp_path}/after
        """,
        clean_env(tmp_path),
    )
    assert shown.returncode == 0, shown.stderr
    assert "sourced 0" in shown.stdout

    def read(name: str) -> list[str]:
        return (tmp_path / name).read_text().splitlines()

    assert read("after.shell") == read("before.shell")  # no errexit, nounset, pipefail, trap
    names_before, names_after = set(read("before.names")), set(read("after.names"))
    assert names_after - names_before <= DOCUMENTED and names_before <= names_after
    env_before = dict(line.split("=", 1) for line in read("before.env") if "=" in line)
    env_after = dict(line.split("=", 1) for line in read("after.env") if "=" in line)
    changed = {
        k for k in env_before.keys() | env_after.keys() if env_before.get(k) != env_after.get(k)
    }
    assert changed - {"_"} == DOCUMENTED
    assert env_after["PATH"] == f"{repo}/.venv/bin:/stand-in/engine/bin:{env_before['PATH']}"
    state = tmp_path / "home" / ".agentform" / "pulumi-state"
    assert env_after["PULUMI_BACKEND_URL"] == f"file://{state}"
    assert state.is_dir()
    # Only the host's: the state dir it creates and its Pulumi state (secrets, encrypted).
    assert (state.stat().st_mode & 0o777, state.parent.stat().st_mode & 0o777) == (0o700, 0o700)
    assert env_after["PULUMI_CONFIG_PASSPHRASE"] == "agentform-quickstart"


def test_sourcing_keeps_values_already_set(tmp_path: Path) -> None:
    repo = stand_in_repo(tmp_path)
    script = f"source {repo}/scripts/setup.sh; env | grep ^PULUMI_ | sort"
    own = bash(
        script, clean_env(tmp_path, PULUMI_BACKEND_URL="s3://mine", PULUMI_CONFIG_PASSPHRASE="")
    )
    assert own.returncode == 0, own.stderr
    assert "PULUMI_BACKEND_URL=s3://mine" in own.stdout.splitlines()
    assert "PULUMI_CONFIG_PASSPHRASE=" in own.stdout.splitlines()

    in_state_dir = bash(
        script,
        clean_env(
            tmp_path,
            AGENTFORM_STATE_DIR=str(tmp_path / "state"),
            PULUMI_CONFIG_PASSPHRASE_FILE="/run/secret",
        ),
    )
    assert f"PULUMI_BACKEND_URL=file://{tmp_path}/state/pulumi-state" in in_state_dir.stdout
    assert "PULUMI_CONFIG_PASSPHRASE=" not in in_state_dir.stdout


def test_a_failure_returns_to_the_shell_instead_of_closing_it(tmp_path: Path) -> None:
    repo = stand_in_repo(tmp_path, with_venv=False)
    tools = tmp_path / "tools"  # everything setup.sh uses, and no python3.11
    tools.mkdir()
    for tool in ("bash", "dirname", "cat", "sha256sum", "cut", "env"):
        (tools / tool).symlink_to(shutil.which(tool) or tool)
    env = clean_env(tmp_path, PATH=str(tools))

    interactive = bash(
        f'source {repo}/scripts/setup.sh; echo "still here $? flags $-"; echo "$PATH"', env
    )
    assert "Python 3.11 is required" in interactive.stderr
    lines = interactive.stdout.splitlines()
    assert lines[0].startswith("still here 1 flags ") and not {"e", "u"} & set(lines[0][19:])
    assert lines[1] == str(tools)

    strict = bash(f"set -euo pipefail; source {repo}/scripts/setup.sh; echo unreachable", env)
    assert strict.returncode == 1 and "unreachable" not in strict.stdout  # as scripts/test.sh


def test_running_it_sets_up_and_says_how_to_use_it(tmp_path: Path) -> None:
    repo = stand_in_repo(tmp_path)
    ran = bash(f"bash {repo}/scripts/setup.sh", clean_env(tmp_path))
    assert ran.returncode == 0, ran.stderr
    assert "source scripts/setup.sh" in ran.stderr


STAND_IN_GO = """#!/bin/sh
case "$1" in
  mod) sleep 2.5 ;;
  env) echo https://proxy.golang.org ;;
  build) sleep 2.5; echo "stand-in compile error" >&2; exit 2 ;;
esac
"""


def test_a_long_engine_step_says_how_long_it_has_run_and_a_failure_names_it(
    tmp_path: Path,
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "go").write_text(STAND_IN_GO)
    (tools / "go").chmod(0o755)
    marker = uuid.uuid4().hex
    env = {
        **clean_env(tmp_path),
        "PATH": f"{tools}:/usr/bin:/bin",  # no pulumi on it, so the engine is "built"
        "AGENTFORM_CACHE": str(tmp_path / "cache"),
        "AGENTFORM_ENGINE_TICK_SECONDS": "1",
        "STAND_IN_MARKER": marker,
    }
    ran = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup-engine.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 1
    assert ran.stdout == ""
    lines = ran.stderr.splitlines()
    assert any(
        line.startswith("[engine] step 1/4: still downloading modules (0m0") for line in lines
    )
    assert any(line.startswith("[engine] step 2/4: still building pulumi (0m0") for line in lines)
    assert "stand-in compile error" in lines
    assert lines[-1].startswith('[engine] FAILED at step "step 2/4 (pulumi)"')
    assert not any(line.startswith("[engine] step 3/4") for line in lines)
    assert list((tmp_path / "cache").iterdir()) == []  # the staging directory is gone

    def ours(process: psutil.Process) -> bool:
        try:
            return process.environ().get("STAND_IN_MARKER") == marker
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            return False

    assert [p.cmdline() for p in psutil.process_iter() if ours(p)] == []  # no ticker left
