"""The `agentform` command line. Errors are one line and a hint, never a traceback.

Heavy modules (httpx, the host server, rich tables and trees) are imported inside the commands
that use them, so that `--help` and usage errors answer at once."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from agentform.settings import (
    DEFAULT_ENDPOINT,
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    resolve_token,
    state_dir,
)

if TYPE_CHECKING:
    import httpx

    from agentform.platform import LocalPlatform

T = TypeVar("T")
# Plain help and one-line usage errors: rich help costs typer pydantic and markdown imports,
# which made every `--help` take longer than the command it describes.
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:  # piped or logged: whole lines, not wrapped or cropped at 80
        console.width = 10_000
    return console


console = _console()
errors = _console(stderr=True)

EndpointOption = Annotated[str, typer.Option(envvar="AGENTFORM_ENDPOINT", help="The host's URL.")]
TokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="AGENTFORM_TOKEN", help="Admin token (default: the local host's admin-token file)."
    ),
]


PlatformOption = Annotated[
    str,
    typer.Option(
        "--platform",
        help="`local` (the host at --endpoint) or `aws` (the stack's AWS account and region).",
    ),
]
RegionOption = Annotated[
    str | None,
    typer.Option("--region", help="aws: the stack's agentform:region (default: the AWS SDK's)."),
]
AwsEndpointOption = Annotated[
    str | None,
    typer.Option(
        "--aws-endpoint-url",
        help="aws: the stack's agentform:awsEndpointUrl (moto, LocalStack; default: AWS).",
    ),
]


def _check_platform(platform: str) -> None:
    if platform not in ("local", "aws"):
        fail(f"--platform is '{platform}'", "use `local` or `aws`")


@app.callback()
def _root() -> None:
    """Agentform: AI agents, their tools and model APIs as Pulumi resources."""


def fail(message: str, hint: str = "") -> NoReturn:
    errors.print(f"[red]error:[/red] {escape(message)}")
    if hint:
        errors.print(f"[dim]hint: {escape(hint)}[/dim]")
    raise typer.Exit(1)


def _admin(endpoint: str, token: str | None) -> LocalPlatform:
    from agentform.platform import Endpoint, LocalPlatform

    token = resolve_token(token)
    if not token:
        fail(
            f"no admin token in {state_dir() / 'admin-token'}",
            "start a host with `agentform serve`, or pass --token",
        )
    return LocalPlatform(Endpoint(endpoint.rstrip("/"), token), timeout=60)


def _call(action: Any) -> Any:
    from agentform_runtime.errors import AgentformError

    try:
        return action()
    except AgentformError as exc:
        fail(exc.message, "is the host running? `agentform serve`" if exc.status == 0 else "")


def _on_aws(action: Callable[[Any], T]) -> T:
    """`action(agentform.aws_cli)` (imported only now: boto3 is slow to load); an
    AgentformError is one line on stderr and exit 1."""
    from agentform import aws_cli
    from agentform_runtime.errors import AgentformError

    try:
        return action(aws_cli)
    except AgentformError as exc:
        fail(exc.message)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on; 0 picks a free one.")
    ] = DEFAULT_PORT,
    state_dir: Annotated[
        Path,
        typer.Option(envvar="AGENTFORM_STATE_DIR", help="Where state, artifacts and logs live."),
    ] = DEFAULT_STATE_DIR,
    jwt_secret: Annotated[
        str | None,
        typer.Option(envvar="AGENTFORM_JWT_SECRET", help="HS256 secret for end-user JWTs."),
    ] = None,
    jwks_file: Annotated[
        Path | None, typer.Option(help="JWKS file with the public keys for end-user JWTs.")
    ] = None,
    clock_file: Annotated[
        Path | None, typer.Option(hidden=True, help="Tests: read budget time from this file.")
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Requests from outside that run at once; more wait their turn "
            "(default: 8 per core). Hops between workloads are not counted.",
        ),
    ] = None,
    no_sandbox: Annotated[
        bool,
        typer.Option(
            "--no-sandbox",
            help="Run workers as plain processes of this user (when the kernel refuses "
            "namespaces or cgroups). Any workload can then read the state dir and other workers.",
        ),
    ] = False,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            help="Export every hop as an OpenTelemetry span over OTLP/HTTP (JSON) to this "
            "collector URL (default: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT; none: no export)."
        ),
    ] = None,
    retention: Annotated[
        str, typer.Option(help="Delete execution records and worker logs older than this.")
    ] = "30d",
    max_store_size: Annotated[
        str, typer.Option(help="Keep the state database under this size (oldest records go).")
    ] = "512MiB",
    log_max_size: Annotated[
        str, typer.Option(help="Rotate a deployment's worker log past this size.")
    ] = "10MiB",
    log_keep: Annotated[int, typer.Option(min=0, help="Rotated worker logs kept.")] = 5,
    prune_interval: Annotated[
        str, typer.Option(help="How often records are pruned and logs rotated.")
    ] = "10s",
) -> None:
    """Run the local serverless host until SIGTERM/SIGINT."""
    from agentform_runtime.errors import AgentformError
    from agentform_runtime.host import server
    from agentform_runtime.host.state.retention import Retention, parse_duration, parse_size
    from agentform_runtime.host.telemetry.config import otlp_settings

    try:
        flags = {"--retention": retention, "--max-store-size": max_store_size}
        flags.update({"--log-max-size": log_max_size, "--prune-interval": prune_interval})
        flag = ""
        for flag, text in flags.items():  # each parsed once first, to name a bad one
            (parse_size if "size" in flag else parse_duration)(text)
        flag = ""
        kept = Retention(
            max_age_s=parse_duration(retention),
            max_bytes=parse_size(max_store_size),
            log_max_bytes=parse_size(log_max_size),
            log_keep=log_keep,
            interval_s=parse_duration(prune_interval),
        )
        otlp = otlp_settings(otlp_endpoint)
    except ValueError as exc:
        fail(f"{flag}: {exc}" if flag else str(exc), "see `agentform serve --help`")
    except AgentformError as exc:
        fail(exc.message, "see the OpenTelemetry section of the README")
    try:
        server.serve(
            host,
            port,
            state_dir,
            jwt_secret,
            jwks_file,
            clock_file,
            max_concurrency,
            otlp=otlp,
            retention=kept,
            no_sandbox=no_sandbox,
        )
    except server.SandboxUnavailable as exc:
        fail(
            f"cannot sandbox workers: {exc}",
            "run as root on Linux with PID/mount namespaces and memory+pids cgroups, "
            "or start with --no-sandbox (workers then are not isolated)",
        )
    except OSError as exc:
        fail(
            f"cannot listen on {host}:{port}: {exc.strerror}", "is another host running? try --port"
        )


def _api_key(platform: LocalPlatform, environment: str, renew: bool = False) -> str:
    """A run key for this CLI: created once per host and environment, kept 0600 in the state
    dir, and replaced when the host no longer accepts it (`renew`)."""
    host = platform.endpoint.url.split("://", 1)[-1].replace(":", "_").replace("/", "_")
    path = state_dir() / "cli-keys" / host / environment
    if path.exists() and not renew:
        return path.read_text().strip()
    key = str(_call(lambda: platform.post(f"/v1/environments/{environment}/api-keys"))["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _post(url: str, payload: Any, key: str) -> httpx.Response:
    import httpx

    try:
        return httpx.post(
            url, json=payload, headers={"authorization": f"Bearer {key}"}, timeout=900
        )
    except httpx.TransportError:
        fail(f"no Agentform host at {url.split('/run/')[0]}", "start one with `agentform serve`")


@app.command(short_help="Invoke a deployment and print its answer.")
def invoke(
    target: Annotated[
        str, typer.Argument(help="ENV/KIND/NAME, e.g. development/agents/assistant.")
    ],
    text: Annotated[
        str | None, typer.Option("--input", "-i", help="Text input for an agent.")
    ] = None,
    body: Annotated[str | None, typer.Option("--json", help="A JSON body to send as is.")] = None,
    key: Annotated[
        str | None, typer.Option(envvar="AGENTFORM_API_KEY", help="Environment API key or JWT.")
    ] = None,
    endpoint: EndpointOption = DEFAULT_ENDPOINT,
    token: TokenOption = None,
    lineage: Annotated[
        bool, typer.Option("--lineage", help="Also print the request's lineage tree.")
    ] = False,
) -> None:
    """Invoke a deployment and print its answer (and where to find its lineage)."""
    parts = target.strip("/").split("/")
    if len(parts) != 3:
        fail(f"'{target}' is not ENV/KIND/NAME", "for example: development/agents/assistant")
    environment, kind, name = parts
    if body is not None:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            fail(f"--json is not valid JSON: {exc}")
    else:
        payload = {"inputs": text if text is not None else sys.stdin.read()}
    url = f"{endpoint.rstrip('/')}/run/{environment}/{kind}/{name}"
    if key is not None:
        response = _post(url, payload, key)
    else:
        with _admin(endpoint, token) as platform:
            response = _post(url, payload, _api_key(platform, environment))
            if response.status_code == 401:  # the kept key was revoked or the host reset
                response = _post(url, payload, _api_key(platform, environment, renew=True))
    if response.status_code >= 400:
        from agentform_runtime.errors import AgentformError

        error = AgentformError.from_response(response.status_code, response.content)
        fail(f"{error.status} {error.code}: {error.message}")
    result = response.json() if response.content else {}
    if isinstance(result, dict) and isinstance(result.get("output"), str):
        # An answer is text, not rich markup: "[b]" or ":smile:" must print as they are.
        console.print(result["output"], markup=False, emoji=False, highlight=False)
    elif isinstance(result, dict) and "output" in result:
        console.print_json(data=result["output"])
    else:
        console.print_json(data=result)
    request_id = response.headers.get("x-agentform-request-id", "")
    trace_id = response.headers.get("x-agentform-trace-id", "")
    if lineage:
        from agentform.lineage import lineage_tree

        with _admin(endpoint, token) as platform:
            trace = _call(lambda: platform.get(f"/v1/traces/{trace_id}"))
        console.print(lineage_tree(trace_id, trace["executions"] if trace else []))
    else:
        errors.print(
            f"[dim]request {request_id}  trace {trace_id}  (agentform traces {request_id})[/dim]"
        )


@app.command(short_help="Print the lineage tree of one request.")
def traces(
    request_or_trace_id: Annotated[str, typer.Argument(help="A request id or a trace id.")],
    endpoint: EndpointOption = DEFAULT_ENDPOINT,
    token: TokenOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
    platform_name: PlatformOption = "local",
    environment: Annotated[
        str | None,
        typer.Option("--environment", help="aws: the environment whose table holds the trace."),
    ] = None,
    region: RegionOption = None,
    aws_endpoint_url: AwsEndpointOption = None,
) -> None:
    """Print the lineage tree of one request: every hop with kind, name, version, identity,
    duration, status and tokens."""
    _check_platform(platform_name)
    if platform_name == "aws":
        _aws_traces(request_or_trace_id, environment, region, aws_endpoint_url, as_json)
        return
    with _admin(endpoint, token) as platform:
        execution = _call(lambda: platform.get(f"/v1/executions/{request_or_trace_id}"))
        trace_id = execution["trace_id"] if execution else request_or_trace_id
        trace = _call(lambda: platform.get(f"/v1/traces/{trace_id}"))
    if trace is None:
        fail(
            f"no request or trace '{request_or_trace_id}'", "ids are printed by `agentform invoke`"
        )
    if as_json:
        console.print_json(data=trace)
    else:
        from agentform.lineage import lineage_tree

        console.print(lineage_tree(trace_id, trace["executions"]))


def _aws_traces(
    request_or_trace_id: str,
    environment: str | None,
    region: str | None,
    endpoint_url: str | None,
    as_json: bool,
) -> None:
    if not environment:
        fail("--platform aws needs --environment", "the environment the request ran in")
    records = _on_aws(lambda aws: aws.trace(environment, request_or_trace_id, region, endpoint_url))
    if not records:
        fail(
            f"no request or trace '{request_or_trace_id}' in environment '{environment}' on AWS",
            "ids are in each answer's x-agentform-request-id and x-agentform-trace-id headers",
        )
    trace_id = str(records[0]["trace_id"])
    if as_json:
        console.print_json(data={"trace_id": trace_id, "executions": records})
        return
    from agentform.lineage import lineage_tree

    console.print(lineage_tree(trace_id, records))


_STATUS_FIELDS = ("environment", "kind", "name", "status", "version", "instances", "url")


@app.command(short_help="Show the host and every deployment.")
def status(
    endpoint: EndpointOption = DEFAULT_ENDPOINT,
    token: TokenOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help=f"Print the deployments as JSON: {', '.join(_STATUS_FIELDS)}."),
    ] = False,
    platform_name: PlatformOption = "local",
    region: RegionOption = None,
    aws_endpoint_url: AwsEndpointOption = None,
) -> None:
    """Show the host and every deployment (a table on a terminal, tab-separated otherwise)."""
    _check_platform(platform_name)
    if platform_name == "aws":
        where, environments, rows = _on_aws(lambda aws: aws.status(region, aws_endpoint_url))
        heading = f"aws {where}: {len(rows)} deployment(s) in {len(environments)} environment(s)"
        _print_status(heading, rows, as_json)
        return
    with _admin(endpoint, token) as platform:
        environments = _call(lambda: platform.request("GET", "/v1/environments"))
        deployments = [
            item
            for environment in environments
            for item in _call(
                lambda env=environment: platform.request(
                    "GET", f"/v1/environments/{env['name']}/deployments"
                )
            )
        ]
    rows = [
        {**{field: item[field] for field in _STATUS_FIELDS}, "instances": len(item["instances"])}
        for item in deployments
    ]
    _print_status(f"host {endpoint}: up, {len(environments)} environment(s)", rows, as_json)


def _print_status(heading: str, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    console.print(heading, markup=False)
    columns = ("environment", "deployment", "status", "version", "instances", "url")
    cells = [
        (
            row["environment"],
            f"{row['kind']}/{row['name']}",
            row["status"],
            row["version"],
            "-" if row["instances"] is None else str(row["instances"]),
            row["url"],
        )
        for row in rows
    ]
    _print_table(columns, cells)


def _print_table(columns: tuple[str, ...], cells: Sequence[tuple[str, ...]]) -> None:
    """A table on a terminal; otherwise whole values, tab-separated, one line each (for grep,
    cut and logs), the column names first."""
    if not console.is_terminal:
        for line in (columns, *cells):
            print("\t".join(line))
        return
    from rich.table import Table

    table = Table(*columns)
    for line in cells:
        table.add_row(*line)
    console.print(table)


@app.command("scripted-model", short_help="Serve a scripted TEST model for offline runs.")
def scripted_model(
    script: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="The script (JSON).")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 4870,
) -> None:
    """Serve a scripted TEST model (OpenAI- and Anthropic-compatible) for offline runs."""
    from agentform import scripted_model as scripted

    scripted.serve(script, port=port)


@app.command(short_help="Report what a preview changes in what each agent can do.")
def review(
    stack: Annotated[
        str | None, typer.Option(help="The stack to preview (default: the selected one).")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="markdown or json.", case_sensitive=False)
    ] = "markdown",
    cwd: Annotated[
        Path, typer.Option(help="The Pulumi project's directory.", file_okay=False)
    ] = Path("."),
) -> None:
    """Preview the stack (Pulumi Automation API) and report, per agent, its model,
    instructions, tools, handoffs and the reach through handoff chains, and per deployment its
    policies, budgets, scaling and activation. Exit code: 0 no change, 1 changes, 2 error."""
    from agentform import review as reviewing

    if output_format.lower() not in ("markdown", "json"):
        errors.print(
            f"[red]error:[/red] --format is {escape(output_format)!r}; use markdown or json"
        )
        raise typer.Exit(reviewing.EXIT_ERROR)
    if sys.stderr.isatty():
        errors.print(f"[dim]previewing {escape(stack or 'the selected stack')}...[/dim]")
    try:
        name, steps = reviewing.preview_steps(stack, cwd.resolve())
    except reviewing.ReviewError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(reviewing.EXIT_ERROR) from None
    except Exception as exc:  # CI gates on the exit code: anything unexpected is an error, 2
        errors.print(f"[red]error:[/red] review failed: {escape(f'{type(exc).__name__}: {exc}')}")
        raise typer.Exit(reviewing.EXIT_ERROR) from None
    report = reviewing.build_report(name, steps)
    if output_format.lower() == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(reviewing.render_markdown(report))
    raise typer.Exit(reviewing.exit_code(report))


policy_pack_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Agentform's CrossGuard policy pack."
)
app.add_typer(policy_pack_app, name="policy-pack")


@policy_pack_app.command("path")
def policy_pack_path() -> None:
    """Print the directory of the policy pack shipped with Agentform, for
    `pulumi preview --policy-pack "$(agentform policy-pack path)"`."""
    from agentform.policypack import PACK_DIR

    sys.stdout.write(f"{PACK_DIR}\n")


api_key_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="End users' environment API keys."
)
app.add_typer(api_key_app, name="api-key")


@api_key_app.command("create")
def api_key_create(
    environment: Annotated[
        str, typer.Option("--environment", help="The environment the key gives access to.")
    ],
    endpoint: EndpointOption = DEFAULT_ENDPOINT,
    token: TokenOption = None,
    platform_name: PlatformOption = "local",
    region: RegionOption = None,
    aws_endpoint_url: AwsEndpointOption = None,
) -> None:
    """Create an API key of an environment and print it once (stdout; its id on stderr):
    only its SHA-256 is stored."""
    _check_platform(platform_name)
    if platform_name == "aws":
        key_id, key = _on_aws(lambda aws: aws.create_api_key(environment, region, aws_endpoint_url))
    else:
        with _admin(endpoint, token) as platform:
            created = _call(lambda: platform.post(f"/v1/environments/{environment}/api-keys"))
        key_id, key = str(created["id"]), str(created["key"])
    errors.print(f"API key {key_id} of environment '{environment}' (shown once, stored hashed):")
    sys.stdout.write(f"{key}\n")


@api_key_app.command("list")
def api_key_list(
    environment: Annotated[str, typer.Option("--environment", help="The environment.")],
    endpoint: EndpointOption = DEFAULT_ENDPOINT,
    token: TokenOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the keys as JSON: id, created, revoked.")
    ] = False,
    platform_name: PlatformOption = "local",
    region: RegionOption = None,
    aws_endpoint_url: AwsEndpointOption = None,
) -> None:
    """List an environment's API keys, oldest first: id, created, revoked (UTC; `-` while the
    key works). Keys themselves are never shown again."""
    _check_platform(platform_name)
    if platform_name == "aws":
        keys = _on_aws(lambda aws: aws.list_api_keys(environment, region, aws_endpoint_url))
    else:
        with _admin(endpoint, token) as platform:
            keys = _call(
                lambda: platform.request("GET", f"/v1/environments/{environment}/api-keys")
            )
    if as_json:
        print(json.dumps(keys, indent=2))
        return
    cells = [(k["id"], _utc(k["created"]), _utc(k["revoked"])) for k in keys]
    _print_table(("id", "created", "revoked"), cells)


def _utc(when: float | None) -> str:
    import datetime

    if when is None:
        return "-"
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@api_key_app.command("revoke")
def api_key_revoke(
    key_id: Annotated[
        str, typer.Argument(metavar="KEY_ID", help="The key's id (key_...), as `list` shows it.")
    ],
    environment: Annotated[str, typer.Option("--environment", help="The key's environment.")],
    endpoint: EndpointOption = DEFAULT_ENDPOINT,
    token: TokenOption = None,
    platform_name: PlatformOption = "local",
    region: RegionOption = None,
    aws_endpoint_url: AwsEndpointOption = None,
) -> None:
    """Revoke an API key: from now on a request with it gets 401."""
    _check_platform(platform_name)
    if platform_name == "aws":
        _on_aws(lambda aws: aws.revoke_api_key(environment, key_id, region, aws_endpoint_url))
    else:
        with _admin(endpoint, token) as platform:
            path = f"/v1/environments/{environment}/api-keys/{key_id}"
            _call(lambda: platform.request("DELETE", path))
    errors.print(f"API key {key_id} of environment '{environment}' revoked")


# `promote` and `release ...` live in their own module; it registers them on `app`.
from agentform import promote_cli  # noqa: E402, F401


def main() -> None:
    app()
