"""Model APIs and agents on a running host, talking to a scripted model server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from agentform.packaging import build_artifact
from agentform.scripted_model import ScriptedModelServer
from agentform_runtime.specs import Manifest, WorkloadKind
from tests.support.workloads import deploy, function_artifact


def deploy_model(
    admin: httpx.Client,
    server: ScriptedModelServer,
    name: str = "chat",
    provider: str = "openai-compatible",
    env: str = "development",
    **spec: Any,
) -> httpx.Response:
    """A model API deployment in front of the scripted server, with a connection holding a key."""
    connection_provider = "anthropic" if provider == "anthropic" else "openai-compatible"
    admin.put(
        f"/v1/connections/{name}-key",
        json={"provider": connection_provider, "secrets": {"api_key": "sk-test-123"}},
    ).raise_for_status()
    base_url = server.url if provider == "anthropic" else f"{server.url}/v1"
    manifest = Manifest(
        kind=WorkloadKind.MODELS,
        name=name,
        spec={
            "provider": provider,
            "model": "scripted-1",
            "base_url": base_url,
            "backoff_s": 0.01,
            **spec,
        },
    )
    return deploy(
        admin, build_artifact(manifest), name, env=env, kind="models", connection=f"{name}-key"
    )


def deploy_agent(
    admin: httpx.Client,
    name: str,
    *,
    model: str = "chat",
    functions: tuple[str, ...] = (),
    agents: tuple[str, ...] = (),
    code: Path | None = None,
    entrypoint: str | None = None,
    env: str = "development",
    settings: dict[str, Any] | None = None,
    **spec: Any,
) -> httpx.Response:
    manifest = Manifest(
        kind=WorkloadKind.AGENTS,
        name=name,
        models=[model],
        functions=list(functions),
        agents=list(agents),
        entrypoint=entrypoint,
        spec=spec,
    )
    return deploy(
        admin, build_artifact(manifest, code), name, env=env, kind="agents", **(settings or {})
    )


def deploy_function(
    admin: httpx.Client, workdir: Path, name: str, source: str, env: str = "development"
) -> None:
    deploy(admin, function_artifact(workdir, name, source), name, env=env).raise_for_status()


def ask(client: httpx.Client, agent: str, text: str, env: str = "development") -> httpx.Response:
    return client.post(f"/run/{env}/agents/{agent}", json={"inputs": text})
