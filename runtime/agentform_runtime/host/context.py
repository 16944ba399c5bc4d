"""The pieces of one running host, shared by its routes."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from agentform_runtime.host.artifacts import ArtifactStore
from agentform_runtime.host.auth import Authenticator
from agentform_runtime.host.deployments import Deployments
from agentform_runtime.host.hops import HopRegistry
from agentform_runtime.host.invoke import Invoker
from agentform_runtime.host.runtime_api import RuntimeApi
from agentform_runtime.host.secrets import SecretBox
from agentform_runtime.host.store import Store


@dataclass
class HostContext:
    store: Store
    artifacts: ArtifactStore
    secrets: SecretBox
    runtime_api: RuntimeApi
    deployments: Deployments
    auth: Authenticator
    hops: HopRegistry
    invoker: Invoker
    public_url: str


def host_of(request: Request) -> HostContext:
    host: HostContext = request.app.state.host
    return host
