"""The console's pages, `/console/...`: reading is a GET that works without JavaScript;
every change is a confirmed POST carrying the session's CSRF token."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from agentform_runtime.errors import AgentformError, not_found
from agentform_runtime.host.api.console import charts
from agentform_runtime.host.api.console.pages import (
    PREFIX,
    check_csrf,
    console_of,
    html,
    page,
    read_form,
    redirect,
    session_of,
)
from agentform_runtime.host.api.console.queries import (
    STATUSES,
    WINDOWS,
    ExecutionFilter,
    Figures,
    percentile,
    tail,
)
from agentform_runtime.host.api.console.tree import lay_out
from agentform_runtime.host.api.control import deployment_view
from agentform_runtime.host.context import HostContext, host_of
from agentform_runtime.specs import DeploymentKey, PolicySpec, WorkloadKind

router = APIRouter(prefix=PREFIX, include_in_schema=False)
ACTIONS = {
    "deactivate": "Deactivate",
    "activate": "Activate",
    "rollback": "Roll back",
}


def _key(env: str, kind: str, name: str) -> DeploymentKey:
    if kind not in {k.value for k in WorkloadKind}:
        raise not_found(f"workload kind '{kind}'")
    return DeploymentKey(env, kind, name)


def _deployment_url(key: DeploymentKey) -> str:
    return f"{PREFIX}/deployments/{quote(key.environment)}/{key.kind}/{quote(key.name)}"


# --- overview: environments, their policies, deployments ------------------------------------


@router.get("")
@page
async def overview(request: Request) -> Response:
    session_of(request)
    host = host_of(request)
    environments = host.catalog.environments()
    policy_names = sorted({p for spec in environments.values() for p in spec.policies})
    policies: dict[str, PolicySpec | None] = {}
    for name in policy_names:
        try:
            policies[name] = host.catalog.policy(name)
        except AgentformError:
            policies[name] = None  # deleted while still named: shown as missing
    deployments = [deployment_view(host, row) for row in host.store.list_deployments()]
    return html(
        request,
        "overview.html",
        environments=environments,
        policies=policies,
        deployments=deployments,
    )


# --- one deployment -------------------------------------------------------------------------


def _charts(figures: Figures) -> list[tuple[str, object]]:
    buckets = figures.buckets
    series = charts.Series
    return [
        (
            "Requests",
            charts.chart(
                "Requests per bucket",
                [
                    series("ok", [b.requests - b.errors for b in buckets], "series-1"),
                    series("errors", [b.errors for b in buckets], "series-error"),
                ],
                figures.start,
                figures.end,
                bars=True,
            ),
        ),
        (
            "Error rate",
            charts.chart(
                "Error rate",
                [series("error rate", [b.error_rate for b in buckets], "series-error")],
                figures.start,
                figures.end,
                unit="%",
                ceiling=1.0,
            ),
        ),
        (
            "Latency p50 / p90 / p99",
            charts.chart(
                "Latency percentiles in milliseconds",
                [
                    series(name, [percentile(b.latencies, share) for b in buckets], css)
                    for name, share, css in (
                        ("p50", 0.5, "series-1"),
                        ("p90", 0.9, "series-2"),
                        ("p99", 0.99, "series-3"),
                    )
                ],
                figures.start,
                figures.end,
                unit=" ms",
            ),
        ),
        (
            "Tokens (input + output)",
            charts.chart(
                "Tokens per bucket",
                [
                    series("input", [b.input_tokens for b in buckets], "series-1"),
                    series("output", [b.output_tokens for b in buckets], "series-2"),
                ],
                figures.start,
                figures.end,
                bars=True,
            ),
        ),
    ]


def _log_path(host: HostContext, key: DeploymentKey) -> Path:
    """Where the deployment's workers write (running/launch.py names it)."""
    return host.deployments.log_dir / key.environment / key.kind / f"{key.name}.log"


@router.get("/deployments/{env}/{kind}/{name}")
@page
async def deployment(
    request: Request,
    env: str,
    kind: str,
    name: str,
    window: Annotated[str, Query()] = "1h",
    done: str = "",
    problem: str = "",
) -> Response:
    session_of(request)
    host = host_of(request)
    key = _key(env, kind, name)
    view = deployment_view(host, host.deployments.get(key))
    if window not in WINDOWS:
        window = "1h"
    figures = await console_of(request).queries.figures(key, window)
    return html(
        request,
        "deployment.html",
        d=view,
        url=_deployment_url(key),
        windows=list(WINDOWS),
        window=window,
        figures=figures,
        charts=_charts(figures),
        log_lines=tail(_log_path(host, key)),
        done=ACTIONS.get(done, ""),
        problem=problem,
    )


@router.get("/deployments/{env}/{kind}/{name}/log")
@page
async def deployment_log(request: Request, env: str, kind: str, name: str) -> Response:
    """The tail of the worker log, for the page's periodic refresh."""
    session_of(request)
    host = host_of(request)
    key = _key(env, kind, name)
    host.deployments.get(key)
    return html(
        request,
        "log.html",
        url=_deployment_url(key),
        log_lines=tail(_log_path(host, key)),
    )


@router.post("/deployments/{env}/{kind}/{name}/{action}")
@page
async def change_deployment(
    request: Request, env: str, kind: str, name: str, action: str
) -> Response:
    """Deactivate, activate or roll back: asks for confirmation first unless the form says
    `confirmed=yes` (htmx asks in a dialog and sends it; without JavaScript a confirmation
    page does)."""
    session = session_of(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    if action not in ACTIONS:
        raise not_found(f"console action '{action}'")
    host = host_of(request)
    key = _key(env, kind, name)
    row = host.deployments.get(key)
    url = _deployment_url(key)
    version = form.get("version") or None
    if form.get("confirmed") != "yes":
        return html(
            request,
            "confirm.html",
            action=action,
            label=ACTIONS[action],
            key=key,
            url=url,
            version=version,
            current=row.version,
        )
    try:
        if action == "rollback":
            await host.deployments.rollback(key, version)
        else:
            enabled = action == "activate"
            await host.deployments.put(key, row.spec.model_copy(update={"enabled": enabled}))
    except AgentformError as exc:
        return redirect(request, f"{url}?problem={quote(f'{exc.code}: {exc.message}')}")
    return redirect(request, f"{url}?done={action}")


# --- executions and traces -------------------------------------------------------------------


@router.get("/executions")
@page
async def executions(
    request: Request,
    environment: str = "",
    workload: str = "",
    status: str = "",
    identity: str = "",
    before: int | None = None,
) -> Response:
    session_of(request)
    host = host_of(request)
    query = ExecutionFilter(
        environment=environment,
        workload=workload,
        status=status,
        identity=identity,
        before=before,
    )
    queries = console_of(request).queries
    rows = await queries.executions(query)
    workloads = sorted({f"{d.kind}/{d.name}" for d in host.store.list_deployments()})
    older = dict(query.model_dump(exclude={"before"}), before=rows[-1][0]) if rows else None
    return html(
        request,
        "executions.html",
        query=query,
        rows=[row for _, row in rows],
        environments=list(host.catalog.environments()),
        workloads=workloads,
        statuses=STATUSES,
        identities=await queries.identities(),
        older=older,
    )


@router.get("/traces/{trace_id}")
@page
async def trace(request: Request, trace_id: str) -> Response:
    session_of(request)
    records = host_of(request).store.trace(trace_id)
    if not records:
        raise not_found(f"trace '{trace_id}'")
    return html(request, "trace.html", tree=lay_out(trace_id, records))
