"""The host application: control plane, run gateway and their shared state."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route

from agentform_runtime.errors import AgentformError
from agentform_runtime.host.api import console, control, gateway, observe
from agentform_runtime.host.api.body_limit import BodyLimit
from agentform_runtime.host.api.mcp import McpEndpoint
from agentform_runtime.host.api.responses import error_response
from agentform_runtime.host.auth import Authenticator, JwtVerifier
from agentform_runtime.host.budgets import Budgets, clock_from
from agentform_runtime.host.catalog import Catalog
from agentform_runtime.host.context import HostContext
from agentform_runtime.host.deployments import Deployments
from agentform_runtime.host.hops import HopRegistry
from agentform_runtime.host.invoke import Invoker
from agentform_runtime.host.lineage import LineageRecorder
from agentform_runtime.host.running.runtime_api import RuntimeApi
from agentform_runtime.host.running.worker import Isolation
from agentform_runtime.host.state.artifacts import ArtifactStore
from agentform_runtime.host.state.retention import Pruner, Retention, wal_limit
from agentform_runtime.host.state.secrets import SecretBox, read_or_create
from agentform_runtime.host.state.store import Store
from agentform_runtime.host.telemetry.config import OtlpSettings
from agentform_runtime.host.telemetry.otlp import BatchExporter
from agentform_runtime.host.telemetry.spans import SpanRecorder
from agentform_runtime.specs import DeploymentKey, Manifest

log = logging.getLogger("agentform.host")


@dataclass
class HostConfig:
    state_dir: Path
    public_url: str
    jwt_secret: str | None = None
    jwks_file: Path | None = None
    clock_file: Path | None = None  # tests only: the budget clock reads its time here
    max_concurrency: int | None = None  # requests from outside run at once (default 8/core)
    sandbox: bool = True  # each worker in its own namespaces, cgroup and uid (host/sandbox.py)
    otlp: OtlpSettings | None = None  # where spans go; None: no export
    retention: Retention = field(default_factory=Retention)


def private_state_dir(state_dir: Path) -> None:
    """Make `state_dir` the host's alone: mode 0700, and its files 0600 (the ones an earlier
    version may have left readable too). Files the host creates later are 0600 by its umask."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    for path in state_dir.iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(0o600)


def _package_version() -> str:
    try:
        return importlib.metadata.version("agentform")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def admin_token(state_dir: Path) -> str:
    """The admin token, created (mode 0600) on first start."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return read_or_create(state_dir / "admin-token", secrets.token_urlsafe(32).encode()).decode()


def _validation_error(_: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems = []
    fields = []
    for error in errors:
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "path", "query")]
        name = ".".join(location) or "body"
        fields.append(name)
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            return error_response(
                AgentformError(
                    400, "MalformedJson", f"the request body is not valid JSON: {message}"
                )
            )
        problems.append(f"{name}: {message}")
    return error_response(AgentformError(400, "InvalidField", "; ".join(problems), fields=fields))


def _http_error(_: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    codes = {404: "NotFound", 405: "MethodNotAllowed"}
    detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
    return error_response(AgentformError(status, codes.get(status, "HttpError"), str(detail)))


def _agentform_error(_: Request, exc: Exception) -> Response:
    if isinstance(exc, AgentformError):
        return error_response(exc)
    return _unexpected(_, exc)


def _unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(
        AgentformError(
            500,
            "InternalError",
            f"{type(exc).__name__}: the host hit an unexpected error; see its log",
        )
    )


def create_app(config: HostConfig) -> FastAPI:
    """Build the host; state is opened at startup and closed at shutdown."""
    mcp_endpoint = McpEndpoint()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state_dir = config.state_dir
        private_state_dir(state_dir)
        isolation = (
            Isolation.for_state_dir(state_dir, config.retention.log_max_bytes)
            if config.sandbox
            else None
        )
        store = Store(state_dir / "state.db", wal_limit(config.retention.max_bytes))
        failed = store.fail_unfinished_executions("the host stopped while this request ran")
        if failed:
            log.warning("marked %d executions interrupted by the last stop as failed", failed)
        artifacts = ArtifactStore(
            state_dir / "artifacts", group=isolation.gid if isolation is not None else None
        )
        catalog = Catalog(store, SecretBox(state_dir / "secret.key"))
        deployments = Deployments(
            store,
            catalog,
            artifacts,
            RuntimeApi(),
            state_dir / "logs",
            config.public_url,
            isolation,
        )
        auth = Authenticator(
            store, admin_token(state_dir), JwtVerifier(config.jwt_secret, config.jwks_file)
        )
        hops = HopRegistry()
        budgets = Budgets(store, clock_from(config.clock_file))
        exporter, spans = None, None
        if config.otlp is not None:
            exporter = BatchExporter(config.otlp, version=_package_version())
            exporter.start()

            def manifest_of(key: DeploymentKey) -> Manifest | None:
                live = deployments.live.get(key)
                return None if live is None else live.manifest

            spans = SpanRecorder(exporter, manifest_of)
            log.info("exporting spans over OTLP/HTTP (JSON) to %s", config.otlp.traces_url)
        lineage = LineageRecorder(store, spans)
        invoker = Invoker(deployments, hops, budgets, lineage, config.max_concurrency)
        pruner = Pruner(store.path, state_dir / "logs", config.retention)
        app.state.exporter, app.state.pruner = exporter, pruner
        app.state.host = HostContext(
            store, catalog, artifacts, deployments, auth, hops, invoker, config.public_url
        )
        await deployments.boot()
        pruning = asyncio.create_task(pruner.run(), name="pruner")
        try:
            async with mcp_endpoint.manager.run():
                yield
        finally:
            pruner.stop()
            await pruning
            stopped = await deployments.shutdown()
            if exporter is not None:
                await asyncio.to_thread(exporter.shutdown)
            pruner.close()
            lineage.flush()
            store.close()
            log.info("host stopped cleanly (%d workers stopped)", stopped)

    app = FastAPI(
        title="Agentform local host",
        version="0.1.0",
        description="Control plane (/v1) and run gateway (/run) of the local serverless host.",
        lifespan=lifespan,
    )
    # Before the gateway's catch-all sub-path route, which would match it too.
    app.router.routes.append(
        Route("/run/{env}/functions/{name}/mcp", mcp_endpoint, methods=["GET", "POST", "DELETE"])
    )
    # The run gateway first: it is the hot path, and routes are matched in order.
    app.include_router(gateway.router)
    app.include_router(control.router)
    app.include_router(observe.router)
    app.include_router(console.router)

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimit)
    app.add_middleware(gateway.RunGateway)  # outermost of ours: the hot path skips the rest
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(AgentformError, _agentform_error)
    app.add_exception_handler(Exception, _unexpected)
    return app
