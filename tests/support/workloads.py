"""Build real artifacts from small source snippets and deploy them on a running host."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx

from agentform.packaging import build_artifact
from agentform_runtime.specs import Manifest, WorkloadKind


def function_artifact(
    workdir: Path, name: str, source: str, entrypoint: str = "tool:main", **manifest: Any
) -> bytes:
    """Zip `source` as tool.py with a function manifest."""
    code = workdir / f"code-{name}-{abs(hash(source))}"
    code.mkdir(parents=True, exist_ok=True)
    (code / "tool.py").write_text(textwrap.dedent(source))
    return build_artifact(
        Manifest(kind=WorkloadKind.FUNCTIONS, name=name, entrypoint=entrypoint, **manifest), code
    )


def setup_environment(admin: httpx.Client, env: str = "development") -> str:
    """Create `env` and return a fresh API key for it."""
    admin.put(f"/v1/environments/{env}", json={}).raise_for_status()
    response = admin.post(f"/v1/environments/{env}/api-keys")
    response.raise_for_status()
    return str(response.json()["key"])


def deploy(
    admin: httpx.Client,
    artifact: bytes,
    name: str,
    env: str = "development",
    kind: str = "functions",
    **settings: Any,
) -> httpx.Response:
    digest = admin.post("/v1/artifacts", content=artifact).json()["digest"]
    return admin.put(
        f"/v1/environments/{env}/deployments/{kind}/{name}", json={"artifact": digest, **settings}
    )


def deployment(
    admin: httpx.Client, name: str, env: str = "development", kind: str = "functions"
) -> Any:
    response = admin.get(f"/v1/environments/{env}/deployments/{kind}/{name}")
    response.raise_for_status()
    return response.json()


PID_FUNCTION = """
import os

def main(tag: str = "") -> dict:
    return {"pid": os.getpid(), "worker": int(os.environ["AGENTFORM_WORKER"]), "tag": tag}
"""


def worker_pid(admin: httpx.Client, name: str, worker: int, env: str = "development") -> int:
    """The host's pid of instance `worker` (what a function reports as AGENTFORM_WORKER):
    inside a sandbox a worker only sees its own PID namespace."""
    for instance in deployment(admin, name, env)["instances"]:
        if instance["worker"] == worker:
            return int(instance["pid"])
    raise AssertionError(f"no instance {worker} in {deployment(admin, name, env)['instances']}")
