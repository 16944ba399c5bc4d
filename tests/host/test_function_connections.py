"""Functions read the connections they declare, and only those: against a real PostgreSQL.

The server is Debian's PostgreSQL, started by the tests on a loopback port with a password;
the function ships the pure-Python client `pg8000` (and what it imports) in its artifact.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentform.packaging import build_artifact
from agentform_runtime.specs import Manifest, WorkloadKind
from tests.support.hosts import RunningHost
from tests.support.polling import wait_until
from tests.support.postgres import Postgres, start_postgres
from tests.support.workloads import deploy, deployment, setup_environment

# pg8000 and the distributions it needs beyond what a workload has anyway (python-dateutil is
# Lambda's, via boto3), copied from the test environment into the artifact with their
# metadata, as `pip install --target` would (scramp reads its own version at import).
CLIENT_DISTRIBUTIONS = ("pg8000", "scramp", "asn1crypto")

QUERY = """
import pg8000.native

from agentform_runtime.workload.context import Context


def main(ctx: Context, sql: str = "select current_user") -> dict:
    db = ctx.connections["db"]
    connection = pg8000.native.Connection(
        user=db.config["user"],
        password=db.secrets["password"],
        host=db.config["host"],
        port=int(db.config["port"]),
        database=db.config["database"],
    )
    try:
        return {"rows": connection.run(sql), "declared": sorted(ctx.connections)}
    finally:
        connection.close()
"""

# A function without the connection, trying every route to the password the probe used.
THIEF = """
import http.client, json, os

from agentform_runtime.workload.context import Context


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError as exc:
        return type(exc).__name__


def main(ctx: Context, state_dir: str, runtime_api: str) -> dict:
    loot = {"declared": sorted(ctx.connections), "own_environment": dict(os.environ)}
    loot["environs"] = {
        pid: _read(f"/proc/{pid}/environ") for pid in os.listdir("/proc") if pid.isdigit()
    }
    loot["state_dir"] = {
        name: _read(os.path.join(state_dir, name))
        for name in ("state.db", "state.db-wal", "secret.key", "admin-token")
    }
    host, port = runtime_api.split(":")
    try:
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("GET", "/2018-06-01/runtime/invocation/next")
        loot["runtime_api"] = connection.getresponse().read().decode(errors="replace")
    except Exception as exc:  # noqa: BLE001 - what failed is the finding
        loot["runtime_api"] = type(exc).__name__
    return loot
"""


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


def _artifact(workdir: Path, name: str, source: str) -> bytes:
    code = workdir / f"code-{name}"
    code.mkdir(parents=True, exist_ok=True)
    (code / "tool.py").write_text(textwrap.dedent(source))
    for client in CLIENT_DISTRIBUTIONS:
        distribution = importlib.metadata.distribution(client)
        for file in distribution.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue
            (code / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(str(distribution.locate_file(file))), code / file)
    manifest = Manifest(kind=WorkloadKind.FUNCTIONS, name=name, entrypoint="tool:main")
    return build_artifact(manifest, code)


def _connection(postgres: Postgres, password: str) -> dict[str, Any]:
    return {
        "provider": "generic",
        "config": {
            "host": postgres.host,
            "port": str(postgres.port),
            "user": postgres.user,
            "database": postgres.database,
        },
        "secrets": {"password": password},
    }


def _runtime_api_of(admin: httpx.Client, name: str, host: RunningHost) -> str:
    import psutil

    [instance] = wait_until(lambda: deployment(admin, name)["instances"])
    for process in psutil.Process(instance["pid"]).children(recursive=True):
        for connection in process.net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port != host.port:
                return f"{connection.raddr.ip}:{connection.raddr.port}"
    raise AssertionError(f"{name} has no Runtime API connection")


def test_a_function_queries_its_database_and_follows_a_rotated_password(
    host: RunningHost, tmp_path: Path, postgres: Postgres
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    admin.put("/v1/connections/db", json=_connection(postgres, postgres.password))
    deployed = deploy(admin, _artifact(tmp_path, "query", QUERY), "query", connections=["db"])
    assert deployed.status_code == 201, deployed.text
    version = deployed.json()["version"]
    run = host.client(key)

    first = run.post("/run/development/functions/query", json={})
    assert first.status_code == 200, first.text
    assert first.json() == {"rows": [["agentform"]], "declared": ["db"]}

    # Rotate the password in the database, then in the connection: no redeploy.
    rotated = "rotated-" + postgres.password
    escaped = rotated.replace("'", "''")
    changed = run.post(
        "/run/development/functions/query",
        json={"sql": f"alter user agentform with password '{escaped}'"},
    )
    assert changed.status_code == 200, changed.text
    postgres.password = rotated
    admin.put("/v1/connections/db", json=_connection(postgres, rotated)).raise_for_status()
    after = run.post("/run/development/functions/query", json={"sql": "select 41 + 1"})
    assert after.status_code == 200, after.text
    assert after.json()["rows"] == [[42]]
    assert deployment(admin, "query")["version"] == version


def test_a_function_without_the_connection_cannot_get_its_password(
    host: RunningHost, tmp_path: Path, postgres: Postgres
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    admin.put("/v1/connections/db", json=_connection(postgres, postgres.password))
    artifact = _artifact(tmp_path, "query", QUERY)
    deploy(admin, artifact, "query", connections=["db"]).raise_for_status()
    deploy(admin, _artifact(tmp_path, "thief", THIEF), "thief").raise_for_status()
    run = host.client(key)
    assert run.post("/run/development/functions/query", json={}).status_code == 200

    stolen = run.post(
        "/run/development/functions/thief",
        json={
            "state_dir": str(host.state_dir),
            "runtime_api": _runtime_api_of(admin, "query", host),
        },
    )
    assert stolen.status_code == 200, stolen.text
    loot = stolen.json()
    assert postgres.password not in json.dumps(loot)
    assert loot["declared"] == []
    assert "AGENTFORM_CONNECTIONS" not in loot["own_environment"]
    assert set(loot["environs"]) == {"1", "2"}  # its own init and itself, nothing else
    assert set(loot["state_dir"].values()) == {"FileNotFoundError"}
    assert loot["runtime_api"] in ("RemoteDisconnected", "ConnectionResetError")


def test_connections_are_for_functions_and_must_exist(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    setup_environment(admin)
    artifact = _artifact(tmp_path, "query", QUERY)
    missing = deploy(admin, artifact, "query", connections=["nope"])
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "connections: 'nope' does not exist"
    twice = deploy(admin, artifact, "query", connections=["db", "db"])
    assert twice.status_code == 400 and "connections" in twice.json()["error"]["message"]
    admin.put(
        "/v1/connections/db", json={"provider": "generic", "secrets": {"password": "p"}}
    ).raise_for_status()
    deploy(admin, artifact, "query", connections=["db"]).raise_for_status()
    in_use = admin.delete("/v1/connections/db")
    assert in_use.status_code == 409 and "functions/query" in in_use.json()["error"]["message"]
