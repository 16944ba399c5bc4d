"""State survives the host: kill -9 mid-traffic, restart, SIGTERM."""

from __future__ import annotations

import signal
import stat
import threading
from pathlib import Path

import httpx
import psutil

from tests.support.hosts import RunningHost
from tests.support.polling import wait_until
from tests.support.workloads import (
    deploy,
    deployment,
    function_artifact,
    setup_environment,
    worker_pid,
)

SLOW = """
import os, time

def main(seconds: float = 0) -> dict:
    time.sleep(seconds)
    return {"worker": int(os.environ["AGENTFORM_WORKER"])}
"""

TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_kill_9_mid_traffic_loses_nothing(tmp_path: Path) -> None:
    host = RunningHost(tmp_path / "state").start()
    try:
        admin = host.admin()
        key = setup_environment(admin)
        admin.put(
            "/v1/policies/eu", json={"type": "location", "values": ["europe"]}
        ).raise_for_status()
        admin.put(
            "/v1/connections/openai", json={"provider": "openai", "secrets": {"api_key": "sk-1"}}
        ).raise_for_status()
        artifact = function_artifact(tmp_path, "slow", SLOW)
        first = deploy(admin, artifact, "slow", policies=["eu"]).json()["version"]
        second = deploy(admin, artifact, "slow", policies=["eu"], timeout_s=30).json()["version"]
        done = host.client(key).post("/run/development/functions/slow", json={})
        assert done.status_code == 200
        worker = worker_pid(admin, "slow", done.json()["worker"])

        outcome: list[object] = []

        def in_flight() -> None:
            try:
                outcome.append(
                    host.client(key).post(
                        "/run/development/functions/slow",
                        json={"seconds": 30},
                        headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"},
                    )
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=in_flight)
        caller.start()
        wait_until(lambda: admin.get(f"/v1/traces/{TRACE}").status_code == 200)
        host.kill(signal.SIGKILL)
        caller.join(timeout=30)
        assert len(outcome) == 1 and isinstance(
            outcome[0], httpx.TransportError
        )  # failed, not hung
        wait_until(lambda: not psutil.pid_exists(worker))  # no worker outlives its host

        host.start()  # same state dir, new process
        admin = host.admin()
        assert admin.get("/v1/environments/development").status_code == 200
        assert admin.get("/v1/policies/eu").json()["values"] == ["europe"]
        assert admin.get("/v1/connections/openai").json()["secret_keys"] == ["api_key"]
        view = deployment(admin, "slow")
        assert view["version"] == second and [v["version"] for v in view["versions"]] == [
            second,
            first,
        ]
        [interrupted] = admin.get(f"/v1/traces/{TRACE}").json()["executions"]
        assert interrupted["status"] == "failed" and interrupted["error_class"] == "HostRestarted"
        assert done.headers["x-agentform-request-id"] in {
            r["request_id"]
            for r in admin.get(f"/v1/traces/{done.headers['x-agentform-trace-id']}").json()[
                "executions"
            ]
        }
        again = host.client(key).post(
            "/run/development/functions/slow", json={}
        )  # the key survived
        assert again.status_code == 200
    finally:
        host.stop()


def test_sigterm_stops_the_host_and_its_workers(tmp_path: Path) -> None:
    host = RunningHost(tmp_path / "state").start()
    admin = host.admin()
    key = setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "slow", SLOW), "slow").raise_for_status()
    done = host.client(key).post("/run/development/functions/slow", json={})
    pid = worker_pid(admin, "slow", done.json()["worker"])
    # uvicorn re-raises SIGTERM after its graceful shutdown, as a service manager expects.
    assert host.kill(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "host stopped cleanly (1 workers stopped)" in (host.state_dir / "host.log").read_text()
    assert not psutil.pid_exists(pid)


def test_admin_token_is_private_and_required(host: RunningHost) -> None:
    token_file = host.state_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(host.token) >= 32
    anonymous = httpx.get(f"{host.url}/v1/environments")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "Unauthorized"
    wrong = httpx.get(f"{host.url}/v1/environments", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
