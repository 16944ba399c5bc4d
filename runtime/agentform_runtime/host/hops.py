"""Hops: calls a workload makes, through the host, to the models, functions and agents its
version declares.

Every invocation gets a hop token, valid while it runs. A workload presents it to the run
gateway; the host then knows the caller (so it can enforce the caller's allow-list), and the
hop inherits the caller's end user, trace and place in the lineage tree."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import DeploymentKey, Manifest, WorkloadKind

HOP_TOKEN_PREFIX = "afh_"


@dataclass(frozen=True)
class Hop:
    """The invocation a hop comes from."""

    caller: DeploymentKey
    request_id: str
    trace_id: str
    identity: str
    manifest: Manifest
    chain: tuple[DeploymentKey, ...] = field(
        default=()
    )  # the caller and every ancestor, nearest first

    def check_allowed(self, target: DeploymentKey) -> None:
        """Raise 403 unless the caller's version declares `target`."""
        environment, kind, name = target
        declared = {
            WorkloadKind.MODELS.value: self.manifest.models,
            WorkloadKind.FUNCTIONS.value: self.manifest.functions,
            WorkloadKind.AGENTS.value: self.manifest.agents,
        }[kind]
        caller = f"{self.caller[1]}/{self.caller[2]}"
        if environment != self.caller[0]:
            raise AgentformError(
                403,
                "NotDeclared",
                f"{caller} on '{self.caller[0]}' may not call into environment '{environment}'",
            )
        if name not in declared:
            raise AgentformError(
                403,
                "NotDeclared",
                f"{caller} does not declare {kind}/{name}; it may call {kind} {sorted(declared)}",
            )


class HopRegistry:
    """Hop tokens of the invocations in flight."""

    def __init__(self) -> None:
        self._hops: dict[str, Hop] = {}

    def issue(self, hop: Hop) -> str:
        token = HOP_TOKEN_PREFIX + secrets.token_urlsafe(24)
        self._hops[token] = hop
        return token

    def revoke(self, token: str) -> None:
        self._hops.pop(token, None)

    def resolve(self, token: str) -> Hop:
        hop = self._hops.get(token)
        if hop is None:
            raise AgentformError(
                401, "Unauthorized", "the hop token is unknown or its invocation has ended"
            )
        return hop
