"""The `agentform` CLI against a real host: invoke, status, and one-line errors; and that
commands which do no work load nothing heavy."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.hosts import RunningHost
from tests.support.workloads import (
    PID_FUNCTION,
    deploy,
    deployment,
    function_artifact,
    setup_environment,
)


def agentform(
    host: RunningHost | None, *args: str, endpoint: str | None = None, columns: str = "200"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": columns}
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


def test_api_key_create_prints_a_key_once(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "pid", PID_FUNCTION), "pid").raise_for_status()

    created = agentform(host, "api-key", "create", "--environment", "development")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("afk_")
    key_id = created.stderr.split()[2]
    listed = admin.get("/v1/environments/development/api-keys").json()
    assert key_id in [item["id"] for item in listed] and key not in json.dumps(listed)
    answer = httpx.post(
        f"{host.url}/run/development/functions/pid",
        json={"tag": "key"},
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    missing = agentform(host, "api-key", "create", "--environment", "staging")
    assert missing.returncode == 1 and "staging" in missing.stderr


def test_api_key_list_and_revoke(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "pid", PID_FUNCTION), "pid").raise_for_status()
    made = [agentform(host, "api-key", "create", "--environment", "development") for _ in "ab"]
    (first, first_id), (second, second_id) = ((m.stdout.strip(), m.stderr.split()[2]) for m in made)

    def run(key: str) -> int:
        return httpx.post(
            f"{host.url}/run/development/functions/pid",
            json={},
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
        ).status_code

    listed = agentform(host, "api-key", "list", "--environment", "development", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = json.loads(listed.stdout)
    # setup_environment made the oldest key
    assert [(k["id"], k["revoked"]) for k in keys][1:] == [(first_id, None), (second_id, None)]
    assert first not in listed.stdout and second not in listed.stdout

    revoked = agentform(host, "api-key", "revoke", first_id, "--environment", "development")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stderr.strip() == f"API key {first_id} of environment 'development' revoked"
    assert (run(first), run(second)) == (401, 200)

    table = agentform(host, "api-key", "list", "--environment", "development")  # piped: TSV
    lines = [line.split("\t") for line in table.stdout.splitlines()]
    assert lines[0] == ["id", "created", "revoked"]
    assert [(line[0], line[2] != "-") for line in lines[2:]] == [
        (first_id, True),
        (second_id, False),
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[2][2]), lines[2]

    again = agentform(host, "api-key", "revoke", first_id, "--environment", "development")
    assert again.returncode == 1
    assert f"active API key '{first_id}' on environment 'development' does not exist" in (
        again.stderr
    )


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


LONG_NAME = "a-function-whose-name-does-not-fit-in-eighty-columns"


def test_status_piped_keeps_whole_values_and_has_json(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    setup_environment(admin)
    deploy(
        admin, function_artifact(tmp_path, LONG_NAME, PID_FUNCTION), LONG_NAME
    ).raise_for_status()
    expected = deployment(admin, LONG_NAME)

    piped = agentform(host, "status", columns="80")  # captured: not a terminal
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0] == f"host {host.url}: up, 1 environment(s)"
    assert lines[1].split("\t") == [
        "environment",
        "deployment",
        "status",
        "version",
        "instances",
        "url",
    ]
    assert lines[2].split("\t") == [
        "development",
        f"functions/{LONG_NAME}",
        "live",
        expected["version"],
        str(len(expected["instances"])),
        expected["url"],
    ]

    invoked = agentform(
        host,
        "invoke",
        f"development/functions/{LONG_NAME}",
        "--json",
        "{}",
        "--lineage",
        columns="80",
    )
    assert invoked.returncode == 0, invoked.stderr
    hop = next(line for line in invoked.stdout.splitlines() if f"functions/{LONG_NAME}" in line)
    assert len(hop) > 80 and re.search(r"ok 200  [\d.]+ ms  user api-key:key_\w+$", hop), hop

    as_json = agentform(host, "status", "--json", columns="80")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {
            "environment": "development",
            "kind": "functions",
            "name": LONG_NAME,
            "status": "live",
            "version": expected["version"],
            "instances": len(expected["instances"]),
            "url": expected["url"],
        }
    ]


HEAVY_MODULES = (
    "pulumi",
    "mcp",
    "fastapi",
    "uvicorn",
    "httpx",
    "agentform.resources",
    "agentform_runtime.host.app",
    "agentform_runtime.host.server",
)

NO_WORK = """
import json, sys
from typer.testing import CliRunner
from agentform.cli import app

runner = CliRunner()
exits = [
    runner.invoke(app, args).exit_code
    for args in (
        ["--help"], ["serve", "--help"], ["status", "--help"], ["invoke", "--help"],
        ["traces", "--help"], ["scripted-model", "--help"], ["invoke"], ["no-such-command"],
    )
]
loaded = [name for name in sys.argv[1:] if name in sys.modules]
from agentform import Agent, Deployment  # still importable, on first use
print(json.dumps({"exits": exits, "loaded": loaded, "agent": Agent.__module__}))
"""


def test_commands_that_do_no_work_load_nothing_heavy() -> None:
    """`--help` and usage errors must answer at once: no Pulumi, MCP, FastAPI or host app."""
    ran = subprocess.run(
        [sys.executable, "-c", NO_WORK, *HEAVY_MODULES],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(ran.stdout)
    assert result["exits"] == [0, 0, 0, 0, 0, 0, 2, 2]
    assert result["loaded"] == []
    assert result["agent"] == "agentform.resources.workloads"
