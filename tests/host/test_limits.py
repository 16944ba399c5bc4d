"""Limits and failures: memory, timeout, crashes, max_instances, deactivation."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.support.agents import deploy_function
from tests.support.hosts import RunningHost
from tests.support.polling import wait_until
from tests.support.workloads import (
    PID_FUNCTION,
    deploy,
    deployment,
    function_artifact,
    setup_environment,
    worker_pid,
)

MISBEHAVING_FUNCTION = """
import os, signal, time

HOLD = []

def main(action: str = "ok", megabytes: int = 0, seconds: float = 0) -> dict:
    if action == "allocate":
        HOLD.append(b"x" * (megabytes * 1024 * 1024))  # written, so it is resident
    elif action == "sleep":
        time.sleep(seconds)
    elif action == "exit":
        os._exit(3)
    elif action == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    return {"worker": int(os.environ["AGENTFORM_WORKER"])}
"""


def _misbehaving(
    host: RunningHost, tmp_path: Path, **settings: Any
) -> tuple[httpx.Client, Callable[..., httpx.Response]]:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(
        admin, function_artifact(tmp_path, "bad", MISBEHAVING_FUNCTION), "bad", **settings
    ).raise_for_status()
    run = host.client(key)
    return admin, lambda **body: run.post("/run/development/functions/bad", json=body)


def test_exceeding_memory_fails_the_invocation_and_recycles_the_worker(
    host: RunningHost, tmp_path: Path
) -> None:
    admin, call = _misbehaving(host, tmp_path, memory_mb=128)
    before = call().json()["worker"]
    response = call(action="allocate", megabytes=300)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "OutOfMemory" and "memory limit of 128 MB" in error["message"]
    after = call()
    assert after.status_code == 200 and after.json()["worker"] != before  # a fresh worker
    record = admin.get(f"/v1/executions/{response.headers['x-agentform-request-id']}").json()
    assert record["error_class"] == "OutOfMemory"


def test_exceeding_the_timeout_is_a_504_and_recycles_the_worker(
    host: RunningHost, tmp_path: Path
) -> None:
    _, call = _misbehaving(host, tmp_path, timeout_s=1)
    before = call().json()["worker"]
    response = call(action="sleep", seconds=30)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "Timeout"
    after = call()
    assert after.status_code == 200 and after.json()["worker"] != before


def test_a_crashing_worker_is_a_502_and_the_host_keeps_serving(
    host: RunningHost, tmp_path: Path
) -> None:
    _, call = _misbehaving(host, tmp_path)
    for action in ("exit", "segfault"):
        response = call(action=action)
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "WorkerCrashed"
        assert call().status_code == 200
    assert host.process is not None and host.process.poll() is None


def test_requests_beyond_max_instances_queue_for_a_worker(
    host: RunningHost, tmp_path: Path
) -> None:
    admin, call = _misbehaving(host, tmp_path, scaling={"max_instances": 1})
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: call(action="sleep", seconds=0.3), range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert len({r.json()["worker"] for r in responses}) == 1
    assert len(deployment(admin, "bad")["instances"]) == 1


def test_a_request_that_waits_longer_than_the_timeout_for_a_worker_is_throttled(
    host: RunningHost, tmp_path: Path
) -> None:
    # One instance, a 2 s timeout, three 1.2 s calls at once: the first runs at once, the
    # second after it (from 1.2 s), and the third's wait for a free instance ends at 2 s.
    admin, call = _misbehaving(host, tmp_path, timeout_s=2, scaling={"max_instances": 1})
    assert call(action="ok").status_code == 200  # warm: no cold start in the timing
    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: call(action="sleep", seconds=1.2), range(3)))
    assert sorted(r.status_code for r in responses) == [200, 200, 429]
    [throttled] = [r.json()["error"] for r in responses if r.status_code == 429]
    assert throttled["code"] == "Throttled" and "all 1 instances are busy" in throttled["message"]
    assert len(deployment(admin, "bad")["instances"]) == 1


def test_deactivated_deployments_refuse_clearly_and_come_back(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    artifact = function_artifact(tmp_path, "pid", PID_FUNCTION)
    deploy(admin, artifact, "pid").raise_for_status()
    run = host.client(key)
    pid = worker_pid(
        admin, "pid", run.post("/run/development/functions/pid", json={}).json()["worker"]
    )

    disabled = deploy(admin, artifact, "pid", enabled=False)
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    assert disabled.json()["instances"] == []
    wait_until(lambda: not psutil.pid_exists(pid))  # its worker stopped: it consumes nothing
    refused = run.post("/run/development/functions/pid", json={})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "DeploymentDisabled"

    enabled = deploy(admin, artifact, "pid", enabled=True)
    assert enabled.json()["status"] == "live"
    assert enabled.json()["version"] == disabled.json()["version"]
    assert run.post("/run/development/functions/pid", json={}).status_code == 200


FLAGGED = """
import socket

# The flag is a listening port on loopback: the sandbox shares the network, not the files.
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
except OSError:
    raise RuntimeError("the flag file is gone") from None


def main() -> dict:
    return {{}}
"""


def test_a_cold_start_that_cannot_load_is_a_clean_502(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    flag = socket.create_server(("127.0.0.1", 0))
    scaling = {"idle_timeout_s": 0.3}
    artifact = function_artifact(tmp_path, "flaky", FLAGGED.format(port=flag.getsockname()[1]))
    deploy(admin, artifact, "flaky", scaling=scaling).raise_for_status()
    wait_until(lambda: deployment(admin, "flaky")["instances"] == [])  # scaled to zero
    flag.close()
    response = host.client(key).post("/run/development/functions/flaky", json={})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "InitError" and "the flag file is gone" in error["message"]
    record = admin.get(f"/v1/executions/{response.headers['x-agentform-request-id']}").json()
    assert record["status"] == "error" and record["error_class"] == "InitError"


def _workers_in(directory: Path) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if (
                "awslambdaric" in (process.info["cmdline"] or [])
                and Path(process.cwd()) == directory
            ):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def test_deleting_while_instances_warm_up_leaves_no_worker(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    setup_environment(admin)
    created = deploy(
        admin, function_artifact(tmp_path, "pid", PID_FUNCTION), "pid", scaling={"min_instances": 4}
    )
    digest = created.json()["settings"]["artifact"].removeprefix("sha256:")
    assert admin.delete("/v1/environments/development/deployments/functions/pid").status_code == 204
    directory = host.state_dir / "artifacts" / "unpacked" / digest
    wait_until(lambda: not _workers_in(directory), timeout=20)


def test_min_instances_come_back_after_a_crash(host: RunningHost, tmp_path: Path) -> None:
    admin, call = _misbehaving(host, tmp_path, scaling={"min_instances": 1})
    [before] = wait_until(lambda: deployment(admin, "bad")["instances"])
    assert call(action="exit").status_code == 502
    [after] = wait_until(lambda: deployment(admin, "bad")["instances"])
    assert after["pid"] != before["pid"]


def test_a_worker_killed_while_idle_is_replaced_for_the_next_request(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_function(admin, tmp_path, "pid", PID_FUNCTION)
    run = host.client(key)
    first = run.post("/run/development/functions/pid", json={}).json()["worker"]
    os.kill(worker_pid(admin, "pid", first), signal.SIGKILL)  # from outside, while idle
    wait_until(lambda: deployment(admin, "pid")["instances"] == [])
    again = run.post("/run/development/functions/pid", json={})
    assert again.status_code == 200, again.text
    assert again.json()["worker"] != first
