"""Deployments: which version of which workload serves on which environment.

A deployment update is blue-green: the new version's first worker must load its handler and
answer a health invocation before the route switches; requests already routed to the old
version finish there while it drains. A failed readiness check leaves the old version live.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentform_runtime.host.artifacts import ArtifactStore
from agentform_runtime.host.errors import ApiError, not_found
from agentform_runtime.host.runtime_api import Invocation, RuntimeApi
from agentform_runtime.host.secrets import SecretBox
from agentform_runtime.host.store import DeploymentRow, Store
from agentform_runtime.host.workers import (
    InvocationFailed,
    WorkerInitError,
    WorkerPool,
    WorkerSpec,
)
from agentform_runtime.policies import EffectivePolicies, PolicyConflict, combine
from agentform_runtime.specs import (
    HEALTH_PATH,
    MANIFEST_FILE,
    DeploymentSpec,
    Manifest,
    PolicySpec,
    WorkloadKind,
    version_of,
)

log = logging.getLogger("agentform.host")

Key = tuple[str, str, str]  # environment, kind, name


@dataclass
class Live:
    """The in-memory route of one deployment."""

    spec: DeploymentSpec
    version: str
    manifest: Manifest
    effective: EffectivePolicies
    pool: WorkerPool | None  # None while disabled
    conflict: str | None = None  # set while its policies, combined, allow nothing


def health_event() -> bytes:
    return json.dumps(
        {
            "version": "2.0",
            "rawPath": HEALTH_PATH,
            "rawQueryString": "",
            "headers": {"x-agentform-health": "1"},
            "body": "",
            "isBase64Encoded": False,
            "requestContext": {"http": {"method": "GET", "path": HEALTH_PATH}},
        }
    ).encode()


class Deployments:
    """Owns the live routes and worker pools; every change is stored before it is answered."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        secrets: SecretBox,
        runtime_api: RuntimeApi,
        state_dir: Path,
        gateway_url: str,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.secrets = secrets
        self.runtime_api = runtime_api
        self.state_dir = state_dir
        self.gateway_url = gateway_url
        self.live: dict[Key, Live] = {}
        self._draining: set[WorkerPool] = set()
        self._locks: dict[Key, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- boot and shutdown -----------------------------------------------------------------

    async def boot(self) -> None:
        """Rebuild routes from the store after a (re)start; warm min_instances in background."""
        for row in self.store.list_deployments():
            try:
                spec = DeploymentSpec(**row.spec)
                manifest = self._manifest(spec)
            except (ApiError, ValidationError) as exc:
                log.error("cannot restore %s/%s/%s: %s", row.environment, row.kind, row.name, exc)
                self.store.set_deployment_status(
                    row.environment, row.kind, row.name, "failed", f"cannot restore: {exc}"
                )
                continue
            key = (row.environment, row.kind, row.name)
            pool = self._pool(key, row.version, spec, manifest) if spec.enabled else None
            self.live[key] = Live(spec, row.version, manifest, EffectivePolicies(), pool)
            if pool is not None:
                self._background(pool.ensure_min())
        self.recompute_policies()
        self._background(self._reap_forever())

    async def shutdown(self) -> int:
        """Stop every worker; return how many there were."""
        for task in list(self._tasks):
            task.cancel()
        pools = [live.pool for live in self.live.values() if live.pool] + list(self._draining)
        count = sum(len(pool.workers()) for pool in pools)
        await asyncio.gather(*(pool.stop() for pool in pools), return_exceptions=True)
        return count

    def _background(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reap_forever(self) -> None:
        """Stop idle workers past their timeout, and bring pools that lost workers (a crash,
        a timeout, a memory limit) back up to min_instances."""
        while True:
            now = time.monotonic()
            for live in list(self.live.values()):
                if live.pool is not None:
                    await live.pool.reap_idle(now)
                    if live.pool.size < live.pool.scaling.min_instances:
                        self._background(live.pool.ensure_min())
            await asyncio.sleep(0.25)

    # --- validation --------------------------------------------------------------------------

    def _manifest(self, spec: DeploymentSpec) -> Manifest:
        if not self.artifacts.exists(spec.artifact):
            raise ApiError(
                400,
                "InvalidField",
                f"artifact: {spec.artifact} has not been uploaded; POST it to /v1/artifacts first",
                field="artifact",
            )
        path = self.artifacts.directory(spec.artifact) / MANIFEST_FILE
        try:
            return Manifest.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise ApiError(
                400,
                "InvalidArtifact",
                f"artifact: no {MANIFEST_FILE} at the root of the zip",
                field="artifact",
            ) from None
        except ValidationError as exc:
            raise ApiError(
                400,
                "InvalidArtifact",
                f"artifact: {MANIFEST_FILE} is invalid: {exc}",
                field="artifact",
            ) from None

    def _policies(self, names: list[str], where: str) -> list[PolicySpec]:
        specs = []
        for name in names:
            body = self.store.get_object("policy", name)
            if body is None:
                raise ApiError(
                    400,
                    "InvalidField",
                    f"{where}: policy '{name}' does not exist",
                    field=where,
                )
            specs.append(PolicySpec(**body))
        return specs

    def _effective(
        self, environment: str, kind: WorkloadKind, spec: DeploymentSpec
    ) -> EffectivePolicies:
        env = self.store.get_object("environment", environment)
        if env is None:
            raise not_found(f"environment '{environment}'")
        try:
            return combine(
                self._policies(env.get("policies", []), "environment.policies"),
                self._policies(spec.policies, "policies"),
                kind,
            )
        except PolicyConflict as exc:
            raise ApiError(400, "PolicyConflict", f"policies: {exc}", field="policies") from None

    def _validate(self, key: Key, spec: DeploymentSpec) -> tuple[Manifest, EffectivePolicies]:
        environment, kind, name = key
        effective = self._effective(environment, WorkloadKind(kind), spec)
        manifest = self._manifest(spec)
        if manifest.kind.value != kind or manifest.name != name:
            raise ApiError(
                400,
                "InvalidArtifact",
                f"artifact: its manifest describes {manifest.kind.value}/{manifest.name}, "
                f"not {kind}/{name}",
                field="artifact",
            )
        if (
            spec.connection is not None
            and self.store.get_object("connection", spec.connection) is None
        ):
            raise ApiError(
                400,
                "InvalidField",
                f"connection: '{spec.connection}' does not exist",
                field="connection",
            )
        return manifest, effective

    # --- worker pools --------------------------------------------------------------------------

    def _pool(self, key: Key, version: str, spec: DeploymentSpec, manifest: Manifest) -> WorkerPool:
        environment, kind, name = key
        env = {
            "AWS_LAMBDA_FUNCTION_NAME": f"{environment}-{kind}-{name}",
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AGENTFORM_ENVIRONMENT": environment,
            "AGENTFORM_KIND": kind,
            "AGENTFORM_NAME": name,
            "AGENTFORM_VERSION": version,
            "AGENTFORM_GATEWAY": self.gateway_url,
            "AGENTFORM_CONFIG": json.dumps(spec.config),
        }
        if spec.connection is not None and kind == WorkloadKind.MODELS:
            # Only model gateways ever see credentials.
            body = self.store.get_object("connection", spec.connection) or {}
            secrets = self.secrets.open(body["sealed"]) if body.get("sealed") else {}
            env["AGENTFORM_CONNECTION"] = json.dumps(
                {
                    "provider": body.get("provider"),
                    "config": body.get("config", {}),
                    "secrets": secrets,
                }
            )
        worker_spec = WorkerSpec(
            directory=self.artifacts.directory(spec.artifact),
            handler=manifest.handler,
            environment=env,
            memory_mb=spec.memory_mb,
            timeout_s=spec.timeout_s,
            function_arn=f"arn:aws:lambda:local:000000000000:function:{environment}-{kind}-{name}:{version}",
            log_path=self.state_dir / "logs" / environment / kind / f"{name}.log",
        )
        return WorkerPool(worker_spec, spec.scaling, self.runtime_api)

    async def _ready_pool(
        self, key: Key, version: str, spec: DeploymentSpec, manifest: Manifest
    ) -> WorkerPool:
        """Start the version's first worker and pass a health invocation, or raise 422."""
        pool = self._pool(key, version, spec, manifest)
        try:
            worker = await pool.start_worker()
        except WorkerInitError as exc:
            raise ApiError(
                422,
                "ReadinessFailed",
                f"version {version} failed to start: {exc.text}",
                init_error=exc.text,
            ) from None
        invocation = Invocation(
            request_id=str(uuid.uuid4()),
            event=health_event(),
            deadline_ms=int((time.time() + spec.timeout_s) * 1000),
            trace_header="",
            function_arn=pool.spec.function_arn,
        )
        try:
            outcome = await worker.invoke(invocation)
        except InvocationFailed as exc:
            raise ApiError(
                422,
                "ReadinessFailed",
                f"version {version} failed its health check: {exc.message}",
            ) from None
        if not outcome.ok:
            await worker.stop()
            text = outcome.body.decode(errors="replace")
            raise ApiError(
                422,
                "ReadinessFailed",
                f"version {version} failed its health check: {text}",
                init_error=text,
            )
        await pool.warm(worker)
        return pool

    def _retire(self, pool: WorkerPool | None) -> None:
        if pool is None:
            return
        self._draining.add(pool)

        async def drain() -> None:
            await pool.drain()
            self._draining.discard(pool)

        self._background(drain())

    # --- operations ------------------------------------------------------------------------------

    def recompute_policies(self) -> list[str]:
        """Recompute every deployment's effective policies after an environment or a policy
        changed. A deployment whose policies now allow nothing stops serving (409) until its
        own update fixes them, which is how one `pulumi up` moves an environment and its
        deployments together. Return the deployments in conflict."""
        conflicts = []
        for key, live in self.live.items():
            try:
                live.effective = self._effective(key[0], WorkloadKind(key[1]), live.spec)
                conflict = None
            except ApiError as exc:
                conflict = exc.message
                conflicts.append(f"{key[1]}/{key[2]} on '{key[0]}'")
            if conflict != live.conflict:
                live.conflict = conflict
                status = "conflict" if conflict else ("live" if live.pool else "disabled")
                self.store.set_deployment_status(*key, status, conflict or "")
        return conflicts

    async def connection_changed(self, name: str) -> None:
        """Move deployments using connection `name` onto fresh workers, which read its new
        secrets; the old workers drain. The version is unchanged: it names the connection, not
        its secrets."""
        for key, live in list(self.live.items()):
            if live.spec.connection != name or live.pool is None:
                continue
            async with self.lock(key):
                current = self.live.get(key)
                if current is None or current.pool is None:
                    continue
                old = current.pool
                current.pool = self._pool(key, current.version, current.spec, current.manifest)
                self._retire(old)
                self._background(current.pool.ensure_min())

    def lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def put(self, key: Key, spec: DeploymentSpec) -> DeploymentRow:
        """Create or update; blue-green when the version changes."""
        async with self.lock(key):
            manifest, effective = self._validate(key, spec)
            version = version_of(spec)
            current = self.live.get(key)
            same_version = current is not None and current.version == version
            if not spec.enabled:
                pool = None
            elif same_version and current is not None and current.pool is not None:
                pool = current.pool
                pool.scaling = spec.scaling
            else:
                try:
                    pool = await self._ready_pool(key, version, spec, manifest)
                except ApiError as exc:
                    if current is not None:
                        self.store.set_deployment_status(
                            *key,
                            status="live" if current.pool else "disabled",
                            message=f"last update failed: {exc.message}",
                        )
                    raise
            status = "live" if spec.enabled else "disabled"
            self.store.save_deployment(*key, spec.model_dump(mode="json"), version, status)
            self.live[key] = Live(spec, version, manifest, effective, pool)
            if current is not None and current.pool is not pool:
                self._retire(current.pool)
            if pool is not None:
                self._background(pool.ensure_min())
        row = self.store.get_deployment(*key)
        assert row is not None
        return row

    async def delete(self, key: Key) -> None:
        async with self.lock(key):
            live = self.live.pop(key, None)
            if not self.store.delete_deployment(*key) and live is None:
                raise not_found(f"deployment {key[1]}/{key[2]} on environment '{key[0]}'")
            if live is not None:
                self._retire(live.pool)

    def get(self, key: Key) -> DeploymentRow:
        row = self.store.get_deployment(*key)
        if row is None:
            raise not_found(f"deployment {key[1]}/{key[2]} on environment '{key[0]}'")
        return row

    async def rollback(self, key: Key, version: str | None) -> DeploymentRow:
        row = self.get(key)
        kept = [v for v in self.store.versions(*key) if v.version != row.version]
        if version is None:
            if not kept:
                raise ApiError(
                    409, "NoEarlierVersion", "there is no earlier version to roll back to"
                )
            target = kept[0]
        else:
            matches = [v for v in kept if v.version == version]
            if not matches:
                raise ApiError(
                    404,
                    "NotFound",
                    f"version {version} is not among the kept earlier versions "
                    f"{[v.version for v in kept]}",
                )
            target = matches[0]
        current = DeploymentSpec(**row.spec)
        old = DeploymentSpec(**target.spec)
        # Code and its configuration come from the kept version; deployment settings stay.
        spec = current.model_copy(
            update={
                "artifact": old.artifact,
                "memory_mb": old.memory_mb,
                "timeout_s": old.timeout_s,
                "config": old.config,
                "connection": old.connection,
            }
        )
        return await self.put(key, spec)

    async def release(
        self, key: Key, target_environment: str, copy_policies: bool
    ) -> DeploymentRow:
        environment, kind, name = key
        if target_environment == environment:
            raise ApiError(
                400,
                "InvalidField",
                "target_environment: must differ from the origin",
                field="target_environment",
            )
        origin = DeploymentSpec(**self.get(key).spec)
        target_key = (target_environment, kind, name)
        existing = self.store.get_deployment(*target_key)
        policies = (
            origin.policies
            if copy_policies
            else (DeploymentSpec(**existing.spec).policies if existing else [])
        )
        return await self.put(target_key, origin.model_copy(update={"policies": policies}))

    def route(self, key: Key) -> Live:
        """The live deployment for a run request, or the reason it cannot serve."""
        live = self.live.get(key)
        if live is None:
            if self.store.get_object("environment", key[0]) is None:
                raise not_found(f"environment '{key[0]}'")
            raise not_found(f"{key[1]}/{key[2]} on environment '{key[0]}'")
        if live.conflict is not None:
            raise ApiError(
                409,
                "PolicyConflict",
                f"{key[1]}/{key[2]} on '{key[0]}' cannot serve: {live.conflict}; "
                "update its policies or its environment's",
            )
        if live.pool is None:
            raise ApiError(
                503,
                "DeploymentDisabled",
                f"{key[1]}/{key[2]} on '{key[0]}' is deactivated; set enabled=true to serve again",
            )
        return live

    def instances(self, key: Key) -> list[dict[str, Any]]:
        live = self.live.get(key)
        if live is None or live.pool is None:
            return []
        return [{"worker": w.id, "pid": w.pid} for w in live.pool.workers()]
