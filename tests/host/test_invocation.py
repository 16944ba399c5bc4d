"""Invocations through the run gateway, with real awslambdaric workers."""

from __future__ import annotations

from pathlib import Path

from tests.support.hosts import RunningHost
from tests.support.workloads import (
    PID_FUNCTION,
    deploy,
    deployment,
    function_artifact,
    setup_environment,
)

CONTEXT_FUNCTION = """
from agentform_runtime.workload.context import Context

def main(ctx: Context, x: int) -> dict:
    \"\"\"Echo what the function knows about its request.\"\"\"
    return {"identity": ctx.identity, "trace_id": ctx.trace_id, "request_id": ctx.request_id,
            "environment": ctx.environment, "double": 2 * x}
"""

RAISING_FUNCTION = """
def main() -> None:
    raise ValueError("the database is on fire")
"""


def test_cold_then_warm_reuses_the_worker(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    put = deploy(admin, function_artifact(tmp_path, "pid", PID_FUNCTION), "pid")
    assert put.status_code == 201, put.text
    body = put.json()
    assert body["status"] == "live" and body["version"].startswith("v")
    [ready_worker] = body["instances"]  # the readiness check left one warm worker

    run = host.client(key)
    first = run.post("/run/development/functions/pid", json={"tag": "a"})
    second = run.post("/run/development/functions/pid", json={"tag": "b"})
    assert first.status_code == second.status_code == 200
    assert first.json()["worker"] == second.json()["worker"] == ready_worker["worker"]
    assert first.headers["x-agentform-version"] == body["version"]


def test_first_request_after_scale_to_zero_is_a_cold_start(
    host: RunningHost, tmp_path: Path
) -> None:
    from tests.support.polling import wait_until

    admin = host.admin()
    key = setup_environment(admin)
    scaling = {"min_instances": 0, "max_instances": 2, "idle_timeout_s": 0.5}
    deploy(
        admin, function_artifact(tmp_path, "pid", PID_FUNCTION), "pid", scaling=scaling
    ).raise_for_status()
    run = host.client(key)
    before = run.post("/run/development/functions/pid", json={}).json()["worker"]
    wait_until(lambda: deployment(admin, "pid")["instances"] == [], timeout=20)
    after = run.post("/run/development/functions/pid", json={}).json()["worker"]
    assert after != before  # a new worker process: cold start after scaling to zero


SLOW_FUNCTION = """
import os, time

def main(seconds: float = 0.0) -> dict:
    time.sleep(seconds)
    return {"worker": int(os.environ["AGENTFORM_WORKER"])}
"""


def test_idle_workers_are_reaped_down_to_min_instances(host: RunningHost, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.polling import wait_until

    admin = host.admin()
    key = setup_environment(admin)
    scaling = {"min_instances": 2, "max_instances": 3, "idle_timeout_s": 0.5}
    artifact = function_artifact(tmp_path, "slow", SLOW_FUNCTION)
    deploy(admin, artifact, "slow", scaling=scaling).raise_for_status()
    wait_until(lambda: len(deployment(admin, "slow")["instances"]) == 2)
    run = host.client(key)
    with ThreadPoolExecutor(3) as pool:
        pids = set(
            pool.map(
                lambda _: run.post("/run/development/functions/slow", json={"seconds": 1}).json()[
                    "worker"
                ],
                range(3),
            )
        )
    assert len(pids) == 3  # three concurrent requests: scaled out to max_instances
    # The reaper removes every expired surplus worker in one pass: it stops at the minimum.
    instances = wait_until(
        lambda: (i := deployment(admin, "slow")["instances"]) and len(i) < 3 and i, timeout=20
    )
    assert instances and len(instances) == 2


def test_context_identity_and_trace_reach_the_function(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "ctx", CONTEXT_FUNCTION), "ctx").raise_for_status()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = host.client(key).post(
        "/run/development/functions/ctx",
        json={"x": 21},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    key_id = admin.get("/v1/environments/development/api-keys").json()[0]["id"]
    assert body == {
        "identity": f"api-key:{key_id}",
        "trace_id": trace_id,
        "request_id": response.headers["x-agentform-request-id"],
        "environment": "development",
        "double": 42,
    }
    [record] = admin.get(f"/v1/traces/{trace_id}").json()["executions"]
    assert record["request_id"] == body["request_id"]
    assert record["parent_id"] == "00f067aa0ba902b7"
    assert record["identity"] == f"api-key:{key_id}"
    assert record["status"] == "ok" and record["http_status"] == 200
    assert record["version"] == response.headers["x-agentform-version"]
    assert record["duration_ms"] > 0


def test_bad_arguments_are_a_400_naming_the_argument(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "ctx", CONTEXT_FUNCTION), "ctx").raise_for_status()
    response = host.client(key).post("/run/development/functions/ctx", json={"x": "not a number"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BadArguments" and error["message"].startswith("x:")


def test_a_raising_function_gives_a_structured_error(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "boom", RAISING_FUNCTION), "boom").raise_for_status()
    response = host.client(key).post("/run/development/functions/boom", json={})
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "FunctionRaised",
        "message": "the database is on fire",
        "type": "ValueError",
    }
    record = admin.get(f"/v1/executions/{response.headers['x-agentform-request-id']}").json()
    assert record["status"] == "error" and record["error_class"] == "FunctionRaised"
