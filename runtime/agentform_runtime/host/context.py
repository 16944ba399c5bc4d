"""The pieces of one running host, shared by its routes."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from agentform_runtime.host.auth import Authenticator
from agentform_runtime.host.catalog import Catalog
from agentform_runtime.host.deployments import Deployments
from agentform_runtime.host.hops import HopRegistry
from agentform_runtime.host.invoke import Invoker
from agentform_runtime.host.state.artifacts import ArtifactStore
from agentform_runtime.host.state.store import Store


@dataclass
class HostContext:
    store: Store
    catalog: Catalog
    artifacts: ArtifactStore
    deployments: Deployments
    auth: Authenticator
    hops: HopRegistry
    invoker: Invoker
    public_url: str


def host_of(request: Request) -> HostContext:
    host: HostContext = request.app.state.host
    return host
