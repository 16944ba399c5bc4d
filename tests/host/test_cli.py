"""The `agentform` CLI against a real host: invoke, status, and one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.hosts import RunningHost
from tests.support.workloads import PID_FUNCTION, deploy, function_artifact, setup_environment


def agentform(
    host: RunningHost | None, *args: str, endpoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if host is not None:
        env.update(AGENTFORM_STATE_DIR=str(host.state_dir), AGENTFORM_ENDPOINT=host.url)
    if endpoint is not None:
        env["AGENTFORM_ENDPOINT"] = endpoint
    return subprocess.run(
        [sys.executable, "-m", "agentform", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_invoke_and_status(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "pid", PID_FUNCTION), "pid").raise_for_status()

    first = agentform(host, "invoke", "development/functions/pid", "--json", '{"tag": "cli"}')
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["tag"] == "cli"
    assert "agentform traces" in first.stderr
    host_dir = host.url.split("://")[1].replace(":", "_")
    key_file = host.state_dir / "cli-keys" / host_dir / "development"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    second = agentform(host, "invoke", "development/functions/pid", "--json", "{}", "--lineage")
    assert second.returncode == 0, second.stderr
    assert "functions/pid" in second.stdout and "trace " in second.stdout
    assert (
        len(admin.get("/v1/environments/development/api-keys").json()) == 2
    )  # the CLI's key was reused

    for listed in admin.get("/v1/environments/development/api-keys").json():  # revoke the CLI's key
        admin.delete(f"/v1/environments/development/api-keys/{listed['id']}")
    renewed = agentform(host, "invoke", "development/functions/pid", "--json", "{}")
    assert renewed.returncode == 0, renewed.stderr
    assert key_file.read_text().startswith("afk_")

    status = agentform(host, "status")
    assert status.returncode == 0, status.stderr
    assert "functions/pid" in status.stdout and "live" in status.stdout


def test_errors_are_one_line_with_a_hint(host: RunningHost) -> None:
    setup_environment(host.admin())
    missing = agentform(host, "invoke", "development/functions/nobody", "--json", "{}")
    assert missing.returncode == 1
    assert missing.stderr.startswith(
        "error: 404 NotFound: functions/nobody on environment 'development'"
    )
    assert "Traceback" not in missing.stderr

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = agentform(host, "status", endpoint=dead)
    assert unreachable.returncode == 1
    assert (
        unreachable.stderr.splitlines()[0]
        == f"error: no Agentform host at {dead}; start one with `agentform serve`"
    )
    assert "Traceback" not in unreachable.stderr
    bad_target = agentform(host, "invoke", "nonsense")
    assert bad_target.returncode == 1 and "is not ENV/KIND/NAME" in bad_target.stderr


def test_serve_on_a_busy_port_is_one_line(host: RunningHost, tmp_path: Path) -> None:
    busy = agentform(
        None, "serve", "--port", str(host.port), "--state-dir", str(tmp_path / "other")
    )
    assert busy.returncode == 1
    assert busy.stderr.startswith(
        f"error: cannot listen on 127.0.0.1:{host.port}: Address already in use"
    )
    assert "Traceback" not in busy.stderr
