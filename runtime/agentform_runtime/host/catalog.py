"""Environments, policies and connections: what deployments refer to by name.

The catalog owns their existence (404 for an unknown name, 409 for one still in use), seals
connection secrets, and combines a deployment's policies with its environment's. When a
rule or a connection changes, it tells the deployments (`CatalogListener`) so live routes
follow at once.
"""

from __future__ import annotations

import logging
from typing import Protocol

from agentform_runtime.errors import AgentformError, not_found
from agentform_runtime.host.state.secrets import SecretBox
from agentform_runtime.host.state.store import ObjectType, Store, StoredConnection
from agentform_runtime.policies import EffectivePolicies, PolicyConflict, combine
from agentform_runtime.specs import (
    ConnectionSpec,
    DeploymentSpec,
    EnvironmentSpec,
    PolicySpec,
    WorkloadKind,
)

log = logging.getLogger("agentform.host")


class CatalogListener(Protocol):
    def policies_changed(self) -> list[str]:
        """Recompute effective policies; return the deployments left with nothing allowed."""
        ...

    async def connection_changed(self, name: str) -> None: ...


class Catalog:
    def __init__(self, store: Store, secrets: SecretBox) -> None:
        self.store = store
        self.secrets = secrets
        self.listener: CatalogListener | None = None

    # --- environments --------------------------------------------------------------------

    def environment(self, name: str) -> EnvironmentSpec:
        spec = self.store.get_object("environment", name, EnvironmentSpec)
        if spec is None:
            raise not_found(f"environment '{name}'")
        return spec

    def environments(self) -> dict[str, EnvironmentSpec]:
        return self.store.list_objects("environment", EnvironmentSpec)

    def put_environment(self, name: str, spec: EnvironmentSpec) -> bool:
        """Create or replace; True when created."""
        self.policies(spec.policies, "policies")
        return self._put_rules("environment", name, spec)

    def delete_environment(self, name: str) -> None:
        self.environment(name)
        remaining = self.store.list_deployments(name)
        if remaining:
            names = [f"{d.kind}/{d.name}" for d in remaining]
            raise AgentformError(
                409,
                "NotEmpty",
                f"environment '{name}' still has deployments {names}; delete them first",
            )
        self.store.delete_object("environment", name)

    # --- policies ------------------------------------------------------------------------

    def policy(self, name: str) -> PolicySpec:
        spec = self.store.get_object("policy", name, PolicySpec)
        if spec is None:
            raise not_found(f"policy '{name}'")
        return spec

    def policies(self, names: list[str], field: str) -> list[PolicySpec]:
        """The named policies; 400 naming `field` when one does not exist."""
        specs = []
        for name in names:
            spec = self.store.get_object("policy", name, PolicySpec)
            if spec is None:
                raise AgentformError(
                    400, "InvalidField", f"{field}: policy '{name}' does not exist", field=field
                )
            specs.append(spec)
        return specs

    def put_policy(self, name: str, spec: PolicySpec) -> bool:
        return self._put_rules("policy", name, spec)

    def delete_policy(self, name: str) -> None:
        users = [e for e, spec in self.environments().items() if name in spec.policies]
        users += [
            f"{d.environment}/{d.kind}/{d.name}"
            for d in self.store.list_deployments()
            if name in d.spec.policies
        ]
        if users:
            raise AgentformError(409, "InUse", f"policy '{name}' is used by {users}")
        if not self.store.delete_object("policy", name):
            raise not_found(f"policy '{name}'")

    def _put_rules(self, type_: ObjectType, name: str, spec: EnvironmentSpec | PolicySpec) -> bool:
        """Store an environment or a policy; every deployment's effective policies follow at
        once (one left with nothing allowed stops serving until its own update fixes it)."""
        created = self.store.put_object(type_, name, spec)
        conflicts = self.listener.policies_changed() if self.listener else []
        if conflicts:
            log.warning("%s '%s' leaves nothing allowed for %s", type_, name, "; ".join(conflicts))
        return created

    def effective(
        self, environment: str, kind: WorkloadKind, spec: DeploymentSpec
    ) -> EffectivePolicies:
        """The deployment's policies combined with its environment's (400 if nothing is left)."""
        try:
            return combine(
                self.policies(self.environment(environment).policies, "environment.policies"),
                self.policies(spec.policies, "policies"),
                kind,
            )
        except PolicyConflict as exc:
            raise AgentformError(
                400, "PolicyConflict", f"policies: {exc}", field="policies"
            ) from None

    # --- connections ---------------------------------------------------------------------

    def connection(self, name: str) -> StoredConnection:
        stored = self.store.get_object("connection", name, StoredConnection)
        if stored is None:
            raise not_found(f"connection '{name}'")
        return stored

    def check_connection(self, name: str | None, field: str = "connection") -> None:
        """400 naming the field when a deployment refers to a connection that does not exist."""
        if name is not None and self.store.get_object("connection", name, StoredConnection) is None:
            raise AgentformError(
                400, "InvalidField", f"{field}: '{name}' does not exist", field=field
            )

    async def put_connection(
        self, name: str, spec: ConnectionSpec
    ) -> tuple[bool, StoredConnection]:
        """Secret values are sealed at rest and never returned. Deployments using the
        connection move to fresh workers at once, so a rotated key takes effect immediately."""
        stored = StoredConnection(
            provider=spec.provider,
            config=spec.config,
            secret_keys=sorted(spec.secrets),
            sealed=self.secrets.seal(spec.secrets),
        )
        created = self.store.put_object("connection", name, stored)
        if self.listener is not None:
            await self.listener.connection_changed(name)
        return created, stored

    def delete_connection(self, name: str) -> None:
        users = [
            f"{d.environment}/{d.kind}/{d.name}"
            for d in self.store.list_deployments()
            if d.spec.connection == name or name in d.spec.connections
        ]
        if users:
            raise AgentformError(409, "InUse", f"connection '{name}' is used by {users}")
        if not self.store.delete_object("connection", name):
            raise not_found(f"connection '{name}'")

    def open_connection(self, name: str) -> dict[str, object]:
        """What a workload receives: provider, config and the unsealed secret values."""
        stored = self.connection(name)
        return {
            "provider": stored.provider,
            "config": stored.config,
            "secrets": self.secrets.open(stored.sealed) if stored.sealed else {},
        }
