"""The control plane, `/v1/...`: everything `pulumi up` and the CLI change, admin only."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from agentform_runtime.errors import AgentformError, not_found
from agentform_runtime.host.auth import hash_key, new_api_key
from agentform_runtime.host.context import HostContext, host_of
from agentform_runtime.host.state.artifacts import (
    MAX_UPLOAD_BYTES,
    ArtifactTooLarge,
    InvalidArtifact,
)
from agentform_runtime.host.state.store import DeploymentRow, ExecutionRow, StoredConnection
from agentform_runtime.policies import EffectivePolicies
from agentform_runtime.specs import (
    NAME_PATTERN,
    ConnectionSpec,
    DeploymentKey,
    DeploymentSpec,
    EnvironmentSpec,
    PolicySpec,
    ReleaseRequest,
    RollbackRequest,
    WorkloadKind,
)

log = logging.getLogger("agentform.host")


def _admin(request: Request) -> None:
    host_of(request).auth.admin(request.headers)


router = APIRouter(prefix="/v1", dependencies=[Depends(_admin)])
PathName = Annotated[str, Path(pattern=NAME_PATTERN)]
Host = Annotated[HostContext, Depends(host_of)]


# --- response shapes -------------------------------------------------------------------------


class Digest(BaseModel):
    digest: str


class Named(BaseModel):
    name: str


class EnvironmentView(Named, EnvironmentSpec):
    pass


class PolicyView(Named, PolicySpec):
    pass


class ConnectionView(BaseModel):
    name: str
    provider: str
    config: dict[str, str]
    secret_keys: list[str]


class ApiKeyCreated(BaseModel):
    id: str
    key: str


class ApiKeyView(BaseModel):
    id: str
    created: float
    revoked: float | None


class VersionView(BaseModel):
    version: str
    artifact: str
    deployed: float


class DeploymentView(BaseModel):
    environment: str
    kind: WorkloadKind
    name: str
    status: str
    message: str
    version: str
    previous_version: str | None
    versions: list[VersionView]
    settings: DeploymentSpec
    effective_policies: EffectivePolicies | None
    url: str
    instances: list[dict[str, Any]]


class TraceView(BaseModel):
    trace_id: str
    executions: list[ExecutionRow]


# --- artifacts ----------------------------------------------------------------------------------


@router.post("/artifacts", status_code=201, response_model=Digest)
async def upload_artifact(request: Request, host: Host) -> Digest:
    """Upload a zip; the answer is its content digest (idempotent). It is streamed to disk,
    then checked off the event loop: at most 250 MB zipped and 250 MB unpacked (413), and
    a bounded number of entries (400)."""
    upload = host.artifacts.upload()
    try:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            raise ArtifactTooLarge(f"artifacts are limited to {MAX_UPLOAD_BYTES} bytes (zipped)")
        async for chunk in request.stream():
            upload.write(chunk)
    except ArtifactTooLarge as exc:
        upload.discard()
        raise AgentformError(413, "TooLarge", str(exc), field="artifact") from None
    except BaseException:
        upload.discard()
        raise
    size = upload.size
    try:
        digest = await asyncio.to_thread(host.artifacts.put_file, upload)
    except ArtifactTooLarge as exc:
        raise AgentformError(413, "TooLarge", str(exc), field="artifact") from None
    except InvalidArtifact as exc:
        raise AgentformError(400, "InvalidArtifact", str(exc), field="artifact") from None
    host.store.add_artifact(digest, size)
    return Digest(digest=digest)


@router.get("/artifacts/{digest}", response_model=Digest)
async def get_artifact(digest: str, host: Host) -> Digest:
    if not host.store.has_artifact(digest):
        raise not_found(f"artifact '{digest}'")
    return Digest(digest=digest)


@router.get(
    "/artifacts/{digest}/content",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
async def download_artifact(digest: str, host: Host) -> Response:
    """The zip, so that `agentform promote` can copy it to another host (and verify it)."""
    if not host.store.has_artifact(digest) or not host.artifacts.exists(digest):
        raise not_found(f"artifact '{digest}'")
    # Streamed from disk: a 250 MB zip is never held in the host's memory.
    return FileResponse(host.artifacts.zip_path(digest), media_type="application/zip")


# --- environments, policies, connections -----------------------------------------------------


def _created(response: Response, created: bool) -> None:
    response.status_code = 201 if created else 200


@router.get("/environments", response_model=list[EnvironmentView])
async def list_environments(host: Host) -> list[EnvironmentView]:
    return [
        EnvironmentView(name=name, **spec.model_dump())
        for name, spec in host.catalog.environments().items()
    ]


@router.put("/environments/{env}", response_model=EnvironmentView)
async def put_environment(
    env: PathName, spec: EnvironmentSpec, response: Response, host: Host
) -> EnvironmentView:
    _created(response, host.catalog.put_environment(env, spec))
    return EnvironmentView(name=env, **spec.model_dump())


@router.get("/environments/{env}", response_model=EnvironmentView)
async def get_environment(env: PathName, host: Host) -> EnvironmentView:
    return EnvironmentView(name=env, **host.catalog.environment(env).model_dump())


@router.delete("/environments/{env}", status_code=204)
async def delete_environment(env: PathName, host: Host) -> None:
    host.catalog.delete_environment(env)


@router.put("/policies/{name}", response_model=PolicyView)
async def put_policy(
    name: PathName, spec: PolicySpec, response: Response, host: Host
) -> PolicyView:
    _created(response, host.catalog.put_policy(name, spec))
    return PolicyView(name=name, **spec.model_dump())


@router.get("/policies/{name}", response_model=PolicyView)
async def get_policy(name: PathName, host: Host) -> PolicyView:
    return PolicyView(name=name, **host.catalog.policy(name).model_dump())


@router.delete("/policies/{name}", status_code=204)
async def delete_policy(name: PathName, host: Host) -> None:
    host.catalog.delete_policy(name)


def _connection_view(name: str, stored: StoredConnection) -> ConnectionView:
    return ConnectionView(
        name=name, provider=stored.provider, config=stored.config, secret_keys=stored.secret_keys
    )


@router.put("/connections/{name}", response_model=ConnectionView)
async def put_connection(
    name: PathName, spec: ConnectionSpec, response: Response, host: Host
) -> ConnectionView:
    """Secret values are encrypted at rest and never returned. Deployments using the
    connection move to fresh workers at once, so a rotated key takes effect immediately."""
    created, stored = await host.catalog.put_connection(name, spec)
    _created(response, created)
    return _connection_view(name, stored)


@router.get("/connections/{name}", response_model=ConnectionView)
async def get_connection(name: PathName, host: Host) -> ConnectionView:
    return _connection_view(name, host.catalog.connection(name))


@router.delete("/connections/{name}", status_code=204)
async def delete_connection(name: PathName, host: Host) -> None:
    host.catalog.delete_connection(name)


# --- API keys ------------------------------------------------------------------------------------


@router.post("/environments/{env}/api-keys", status_code=201, response_model=ApiKeyCreated)
async def create_api_key(env: PathName, host: Host) -> ApiKeyCreated:
    """The key is shown once; only its hash is stored."""
    host.catalog.environment(env)
    key_id, key = new_api_key()
    host.store.add_api_key(key_id, env, hash_key(key))
    return ApiKeyCreated(id=key_id, key=key)


@router.get("/environments/{env}/api-keys", response_model=list[ApiKeyView])
async def list_api_keys(env: PathName, host: Host) -> list[ApiKeyView]:
    host.catalog.environment(env)
    return [ApiKeyView(**row) for row in host.store.list_api_keys(env)]


@router.delete("/environments/{env}/api-keys/{key_id}", status_code=204)
async def revoke_api_key(env: PathName, key_id: str, host: Host) -> None:
    if not host.store.revoke_api_key(env, key_id):
        raise not_found(f"active API key '{key_id}' on environment '{env}'")


# --- deployments ---------------------------------------------------------------------------------


def deployment_view(host: HostContext, row: DeploymentRow) -> DeploymentView:
    key = row.key
    versions = host.store.versions(key)
    live = host.deployments.live.get(key)
    older = [v.version for v in versions if v.version != row.version]
    return DeploymentView(
        environment=row.environment,
        kind=WorkloadKind(row.kind),
        name=row.name,
        status=row.status,
        message=row.message,
        version=row.version,
        previous_version=older[0] if older else None,
        versions=[
            VersionView(version=v.version, artifact=v.spec.artifact, deployed=v.deployed)
            for v in versions
        ],
        settings=row.spec,
        effective_policies=live.effective if live else None,
        url=f"{host.public_url}/run/{row.environment}/{row.kind}/{row.name}",
        instances=host.deployments.instances(key),
    )


@router.get("/environments/{env}/deployments", response_model=list[DeploymentView])
async def list_deployments(env: PathName, host: Host) -> list[DeploymentView]:
    host.catalog.environment(env)
    return [deployment_view(host, row) for row in host.store.list_deployments(env)]


@router.put("/environments/{env}/deployments/{kind}/{name}", response_model=DeploymentView)
async def put_deployment(
    env: PathName,
    kind: WorkloadKind,
    name: PathName,
    spec: DeploymentSpec,
    response: Response,
    host: Host,
) -> DeploymentView:
    """Create or update. Returns once the version is live, or 422 if it failed readiness
    (the previous version then keeps serving)."""
    key = DeploymentKey(env, kind.value, name)
    existed = host.store.get_deployment(key) is not None
    row = await host.deployments.put(key, spec)
    _created(response, not existed)
    return deployment_view(host, row)


@router.get("/environments/{env}/deployments/{kind}/{name}", response_model=DeploymentView)
async def get_deployment(
    env: PathName, kind: WorkloadKind, name: PathName, host: Host
) -> DeploymentView:
    return deployment_view(host, host.deployments.get(DeploymentKey(env, kind.value, name)))


@router.delete("/environments/{env}/deployments/{kind}/{name}", status_code=204)
async def delete_deployment(env: PathName, kind: WorkloadKind, name: PathName, host: Host) -> None:
    await host.deployments.delete(DeploymentKey(env, kind.value, name))


@router.post(
    "/environments/{env}/deployments/{kind}/{name}/rollback", response_model=DeploymentView
)
async def rollback_deployment(
    env: PathName,
    kind: WorkloadKind,
    name: PathName,
    body: RollbackRequest,
    host: Host,
) -> DeploymentView:
    return deployment_view(
        host, await host.deployments.rollback(DeploymentKey(env, kind.value, name), body.version)
    )


@router.post("/environments/{env}/deployments/{kind}/{name}/release", response_model=DeploymentView)
async def release_deployment(
    env: PathName,
    kind: WorkloadKind,
    name: PathName,
    body: ReleaseRequest,
    host: Host,
) -> DeploymentView:
    """Overwrite the same workload on the target environment with this one's version."""
    row = await host.deployments.release(
        DeploymentKey(env, kind.value, name), body.target_environment, body.copy_policies
    )
    return deployment_view(host, row)


# --- lineage ------------------------------------------------------------------------------------


@router.get("/traces/{trace_id}", response_model=TraceView)
async def get_trace(trace_id: str, host: Host) -> TraceView:
    records = host.store.trace(trace_id)
    if not records:
        raise not_found(f"trace '{trace_id}'")
    return TraceView(trace_id=trace_id, executions=records)


@router.get("/executions/{request_id}", response_model=ExecutionRow)
async def get_execution(request_id: str, host: Host) -> ExecutionRow:
    record = host.store.execution(request_id)
    if record is None:
        raise not_found(f"execution '{request_id}'")
    return record
