"""Deployments: which version of which workload serves on which environment.

A deployment update is blue-green: the new version's first worker must load its handler and
answer a health invocation before the route switches; requests already routed to the old
version finish there while it drains. A failed readiness check leaves the old version live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentform_runtime.errors import AgentformError, not_found
from agentform_runtime.host.catalog import Catalog
from agentform_runtime.host.running.launch import make_ready, worker_spec
from agentform_runtime.host.running.pool import WorkerPool
from agentform_runtime.host.running.runtime_api import RuntimeApi
from agentform_runtime.host.running.worker import Isolation, Zygote
from agentform_runtime.host.state.artifacts import ArtifactStore, ArtifactTooLarge, InvalidArtifact
from agentform_runtime.host.state.store import DeploymentRow, Store
from agentform_runtime.policies import EffectivePolicies
from agentform_runtime.specs import (
    MANIFEST_FILE,
    DeploymentKey,
    DeploymentSpec,
    Manifest,
    WorkloadKind,
    version_of,
)

log = logging.getLogger("agentform.host")

# How often idle workers are stopped, pools refilled and running workers' memory checked
# (each invocation's peak is also checked when it ends).
_REAP_INTERVAL_S = 0.1
MAX_MANIFEST_BYTES = 1024 * 1024  # agentform.json: read whole, on the event loop


@dataclass
class Live:
    """The in-memory route of one deployment."""

    spec: DeploymentSpec
    version: str
    manifest: Manifest
    effective: EffectivePolicies
    pool: WorkerPool | None  # None while disabled
    conflict: str | None = None  # set while its policies, combined, allow nothing


class Deployments:
    """Owns the live routes and worker pools; every change is stored before it is answered."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        artifacts: ArtifactStore,
        runtime_api: RuntimeApi,
        log_dir: Path,
        gateway_url: str,
        isolation: Isolation | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.artifacts = artifacts
        self.runtime_api = runtime_api
        self.zygote = Zygote(isolation)
        self.log_dir = log_dir
        self.gateway_url = gateway_url
        self.live: dict[DeploymentKey, Live] = {}
        self._draining: set[WorkerPool] = set()
        self._locks: dict[DeploymentKey, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._deploying: Counter[str] = Counter()  # artifacts of puts under way
        catalog.listener = self

    # --- boot and shutdown -----------------------------------------------------------------

    async def boot(self) -> None:
        """Rebuild routes from the store after a (re)start; warm min_instances in background."""
        for row in self.store.list_deployments():
            key, spec = row.key, row.spec
            try:
                await self._unpack(spec.artifact)
                manifest = self._manifest(spec)
                pool = self._pool(key, row.version, spec, manifest) if spec.enabled else None
            except (AgentformError, ValidationError) as exc:
                log.error("cannot restore %s: %s", key, exc)
                self.store.set_deployment_status(key, "failed", f"cannot restore: {exc}")
                continue
            self.live[key] = Live(spec, row.version, manifest, EffectivePolicies(), pool)
            if pool is not None:
                self._background(pool.ensure_min())
        self.policies_changed()
        self._background(self._reap_forever())
        self._background(self.collect_unpacked())

    async def shutdown(self) -> int:
        """Stop every worker; return how many there were."""
        for task in list(self._tasks):
            task.cancel()
        pools = [live.pool for live in self.live.values() if live.pool] + list(self._draining)
        count = sum(len(pool.workers()) for pool in pools)
        await asyncio.gather(*(pool.stop() for pool in pools), return_exceptions=True)
        await self.zygote.stop()
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
                    await live.pool.enforce_memory()
                    await live.pool.reap_idle(now)
                    if live.pool.size < live.pool.scaling.min_instances:
                        self._background(live.pool.ensure_min())
            await asyncio.sleep(_REAP_INTERVAL_S)

    # --- artifacts ---------------------------------------------------------------------------

    async def _unpack(self, artifact: str) -> None:
        """Unpack off the event loop, so that `_manifest` and `_pool` find it ready."""
        if not self.artifacts.exists(artifact):
            return  # `_manifest` names the problem
        try:
            await self.artifacts.unpack(artifact)
        except ArtifactTooLarge as exc:
            raise AgentformError(413, "TooLarge", f"artifact: {exc}", field="artifact") from None
        except InvalidArtifact as exc:
            raise AgentformError(
                400, "InvalidArtifact", f"artifact: {exc}", field="artifact"
            ) from None

    async def collect_unpacked(self) -> None:
        """Delete the unpacked copies no deployment, kept version, running pool or update
        under way uses any more: they go with the last version that used them."""
        keep = self.store.artifacts_in_use() | set(self._deploying)
        keep |= {live.spec.artifact for live in self.live.values()}
        keep |= {"sha256:" + pool.spec.directory.name for pool in self._draining}
        retired = self.artifacts.retire_unpacked(keep)
        if retired:
            await asyncio.to_thread(self.artifacts.delete, retired)
            log.info("deleted %d unpacked artifact(s) no version uses", len(retired))

    # --- validation --------------------------------------------------------------------------

    def _manifest(self, spec: DeploymentSpec) -> Manifest:
        if not self.artifacts.exists(spec.artifact):
            raise AgentformError(
                400,
                "InvalidField",
                f"artifact: {spec.artifact} has not been uploaded; POST it to /v1/artifacts first",
                field="artifact",
            )
        path = self.artifacts.directory(spec.artifact) / MANIFEST_FILE
        try:
            # Read on the event loop: bounded before a byte is read.
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                raise AgentformError(
                    400,
                    "InvalidArtifact",
                    f"artifact: {MANIFEST_FILE} is larger than the limit of "
                    f"{MAX_MANIFEST_BYTES} bytes",
                    field="artifact",
                )
            return Manifest.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise AgentformError(
                400,
                "InvalidArtifact",
                f"artifact: no {MANIFEST_FILE} at the root of the zip",
                field="artifact",
            ) from None
        except ValidationError as exc:
            raise AgentformError(
                400,
                "InvalidArtifact",
                f"artifact: {MANIFEST_FILE} is invalid: {exc}",
                field="artifact",
            ) from None

    def _validate(
        self, key: DeploymentKey, spec: DeploymentSpec
    ) -> tuple[Manifest, EffectivePolicies]:
        environment, kind, name = key
        effective = self.catalog.effective(environment, WorkloadKind(kind), spec)
        manifest = self._manifest(spec)
        if manifest.kind.value != kind or manifest.name != name:
            raise AgentformError(
                400,
                "InvalidArtifact",
                f"artifact: its manifest describes {manifest.kind.value}/{manifest.name}, "
                f"not {kind}/{name}",
                field="artifact",
            )
        self.catalog.check_connection(spec.connection)
        if spec.connections and kind != WorkloadKind.FUNCTIONS:
            raise AgentformError(
                400,
                "InvalidField",
                f"connections: only functions read connections; a {kind} deployment "
                "cannot declare them (a model API names its one `connection`)",
                field="connections",
            )
        for name in spec.connections:
            self.catalog.check_connection(name, field="connections")
        return manifest, effective

    # --- worker pools --------------------------------------------------------------------------

    def _pool(
        self, key: DeploymentKey, version: str, spec: DeploymentSpec, manifest: Manifest
    ) -> WorkerPool:
        # A model gateway sees its connection's credentials; a function the ones it declares;
        # nothing else sees any.
        connection = (
            self.catalog.open_connection(spec.connection)
            if spec.connection is not None and key.kind == WorkloadKind.MODELS
            else None
        )
        connections = (
            {name: self.catalog.open_connection(name) for name in spec.connections}
            if key.kind == WorkloadKind.FUNCTIONS
            else {}
        )
        launch = worker_spec(
            key,
            version,
            spec,
            manifest,
            self.artifacts.directory(spec.artifact),
            self.log_dir,
            self.gateway_url,
            connection,
            connections,
        )
        return WorkerPool(launch, spec.scaling, self.runtime_api, self.zygote)

    def _retire(self, pool: WorkerPool | None) -> None:
        if pool is None:
            return
        self._draining.add(pool)

        async def drain() -> None:
            await pool.drain()
            self._draining.discard(pool)
            await self.collect_unpacked()

        self._background(drain())

    # --- operations ------------------------------------------------------------------------------

    def policies_changed(self) -> list[str]:
        """Recompute every deployment's effective policies after an environment or a policy
        changed. A deployment whose policies now allow nothing stops serving (409) until its
        own update fixes them, which is how one `pulumi up` moves an environment and its
        deployments together. Return the deployments in conflict."""
        conflicts = []
        for key, live in self.live.items():
            try:
                live.effective = self.catalog.effective(
                    key.environment, WorkloadKind(key.kind), live.spec
                )
                conflict = None
            except AgentformError as exc:
                conflict = exc.message
                conflicts.append(f"{key[1]}/{key[2]} on '{key[0]}'")
            if conflict != live.conflict:
                live.conflict = conflict
                status = "conflict" if conflict else ("live" if live.pool else "disabled")
                self.store.set_deployment_status(key, status, conflict or "")
        return conflicts

    async def connection_changed(self, name: str) -> None:
        """Move deployments using connection `name` onto fresh workers, which read its new
        secrets; the old workers drain. The version is unchanged: it names the connection, not
        its secrets."""
        for key, live in list(self.live.items()):
            uses = live.spec.connection == name or name in live.spec.connections
            if not uses or live.pool is None:
                continue
            async with self.lock(key):
                current = self.live.get(key)
                if current is None or current.pool is None:
                    continue
                old = current.pool
                current.pool = self._pool(key, current.version, current.spec, current.manifest)
                self._retire(old)
                self._background(current.pool.ensure_min())

    def lock(self, key: DeploymentKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def put(self, key: DeploymentKey, spec: DeploymentSpec) -> DeploymentRow:
        """Create or update; blue-green when the version changes."""
        self._deploying[spec.artifact] += 1
        try:
            return await self._put(key, spec)
        finally:
            self._deploying[spec.artifact] -= 1
            if not self._deploying[spec.artifact]:
                del self._deploying[spec.artifact]
            self._background(self.collect_unpacked())  # a version may have been dropped

    async def _put(self, key: DeploymentKey, spec: DeploymentSpec) -> DeploymentRow:
        async with self.lock(key):
            await self._unpack(spec.artifact)
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
                    pool = self._pool(key, version, spec, manifest)
                    await make_ready(pool, version)
                except AgentformError as exc:
                    if current is not None:
                        self.store.set_deployment_status(
                            key,
                            status="live" if current.pool else "disabled",
                            message=f"last update failed: {exc.message}",
                        )
                    raise
            status = "live" if spec.enabled else "disabled"
            self.store.save_deployment(key, spec, version, status)
            self.live[key] = Live(spec, version, manifest, effective, pool)
            if current is not None and current.pool is not pool:
                self._retire(current.pool)
            if pool is not None:
                self._background(pool.ensure_min())
        return self.get(key)

    async def delete(self, key: DeploymentKey) -> None:
        async with self.lock(key):
            live = self.live.pop(key, None)
            if not self.store.delete_deployment(key) and live is None:
                raise not_found(f"deployment {key}")
            if live is not None:
                self._retire(live.pool)
        self._background(self.collect_unpacked())

    def get(self, key: DeploymentKey) -> DeploymentRow:
        row = self.store.get_deployment(key)
        if row is None:
            raise not_found(f"deployment {key}")
        return row

    async def rollback(self, key: DeploymentKey, version: str | None) -> DeploymentRow:
        row = self.get(key)
        kept = [v for v in self.store.versions(key) if v.version != row.version]
        if version is None:
            if not kept:
                raise AgentformError(
                    409, "NoEarlierVersion", "there is no earlier version to roll back to"
                )
            target = kept[0]
        else:
            matches = [v for v in kept if v.version == version]
            if not matches:
                raise AgentformError(
                    404,
                    "NotFound",
                    f"version {version} is not among the kept earlier versions "
                    f"{[v.version for v in kept]}",
                )
            target = matches[0]
        old = target.spec
        # Code and its configuration come from the kept version; deployment settings stay.
        spec = row.spec.model_copy(
            update={
                "artifact": old.artifact,
                "memory_mb": old.memory_mb,
                "timeout_s": old.timeout_s,
                "config": old.config,
                "connection": old.connection,
                "connections": old.connections,
            }
        )
        return await self.put(key, spec)

    async def release(
        self, key: DeploymentKey, target_environment: str, copy_policies: bool
    ) -> DeploymentRow:
        environment, kind, name = key
        if target_environment == environment:
            raise AgentformError(
                400,
                "InvalidField",
                "target_environment: must differ from the origin",
                field="target_environment",
            )
        origin = self.get(key).spec
        target_key = DeploymentKey(target_environment, kind, name)
        existing = self.store.get_deployment(target_key)
        policies = (
            origin.policies if copy_policies else (existing.spec.policies if existing else [])
        )
        return await self.put(target_key, origin.model_copy(update={"policies": policies}))

    def route(self, key: DeploymentKey) -> Live:
        """The live deployment for a run request, or the reason it cannot serve."""
        live = self.live.get(key)
        if live is None:
            self.catalog.environment(key.environment)
            raise not_found(f"{key.kind}/{key.name} on environment '{key.environment}'")
        if live.conflict is not None:
            raise AgentformError(
                409,
                "PolicyConflict",
                f"{key[1]}/{key[2]} on '{key[0]}' cannot serve: {live.conflict}; "
                "update its policies or its environment's",
            )
        if live.pool is None:
            raise AgentformError(
                503,
                "DeploymentDisabled",
                f"{key[1]}/{key[2]} on '{key[0]}' is deactivated; set enabled=true to serve again",
            )
        return live

    def instances(self, key: DeploymentKey) -> list[dict[str, Any]]:
        live = self.live.get(key)
        if live is None or live.pool is None:
            return []
        return [{"worker": w.id, "pid": w.pid} for w in live.pool.workers() if not w.stopped]
