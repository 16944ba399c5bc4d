"""How one version's workers are launched: their Lambda environment, and the readiness probe
a new version passes before any request is routed to it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from agentform_runtime.errors import AgentformError
from agentform_runtime.host.running.pool import WorkerPool
from agentform_runtime.host.running.runtime_api import Invocation
from agentform_runtime.host.running.worker import WorkerInitError, WorkerSpec
from agentform_runtime.specs import (
    DeploymentKey,
    DeploymentSpec,
    Manifest,
    health_event,
)


def function_name(key: DeploymentKey) -> str:
    return f"{key.environment}-{key.kind}-{key.name}"


def function_arn(key: DeploymentKey, version: str) -> str:
    return f"arn:aws:lambda:local:000000000000:function:{function_name(key)}:{version}"


def worker_spec(
    key: DeploymentKey,
    version: str,
    spec: DeploymentSpec,
    manifest: Manifest,
    directory: Path,
    log_dir: Path,
    gateway_url: str,
    connection: dict[str, object] | None,
    connections: dict[str, dict[str, object]] | None = None,
) -> WorkerSpec:
    """The workers of `version`: Lambda's variables plus ours; `connection` (provider, config
    and secret values) for a model API, `connections` (by name) for a function: only the
    workloads that may hold credentials get any, and only their own. Those go in `secrets`,
    never in the environment the zygote sees (every worker is a fork of it): each worker
    fetches them from its own Runtime API before the handler loads."""
    environment = {
        "AWS_LAMBDA_FUNCTION_NAME": function_name(key),
        "AWS_LAMBDA_FUNCTION_VERSION": version,
        "AGENTFORM_ENVIRONMENT": key.environment,
        "AGENTFORM_KIND": key.kind,
        "AGENTFORM_NAME": key.name,
        "AGENTFORM_VERSION": version,
        "AGENTFORM_GATEWAY": gateway_url,
        "AGENTFORM_CONFIG": json.dumps(spec.config),
    }
    secrets: dict[str, str] = {}
    if connection is not None:
        secrets["AGENTFORM_CONNECTION"] = json.dumps(connection)
    if connections:
        secrets["AGENTFORM_CONNECTIONS"] = json.dumps(connections)
    return WorkerSpec(
        directory=directory,
        handler=manifest.handler,
        environment=environment,
        secrets=secrets,
        memory_mb=spec.memory_mb,
        timeout_s=spec.timeout_s,
        function_arn=function_arn(key, version),
        log_path=log_dir / key.environment / key.kind / f"{key.name}.log",
    )


async def make_ready(pool: WorkerPool, version: str) -> None:
    """Start the pool's first worker and pass a health invocation, or raise 422."""
    try:
        worker = await pool.start_worker()
    except WorkerInitError as exc:
        raise AgentformError(
            422,
            "ReadinessFailed",
            f"version {version} failed to start: {exc.text}",
            init_error=exc.text,
        ) from None
    invocation = Invocation(
        request_id=str(uuid.uuid4()),
        event=health_event(),
        deadline_ms=int((time.time() + pool.spec.timeout_s) * 1000),
        trace_header="",
        function_arn=pool.spec.function_arn,
    )
    try:
        outcome = await worker.invoke(invocation)
    except AgentformError as exc:
        raise AgentformError(
            422, "ReadinessFailed", f"version {version} failed its health check: {exc.message}"
        ) from None
    if not outcome.ok:
        await worker.stop()
        text = outcome.body.decode(errors="replace")
        raise AgentformError(
            422,
            "ReadinessFailed",
            f"version {version} failed its health check: {text}",
            init_error=text,
        )
    await pool.warm(worker)
