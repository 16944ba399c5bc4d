"""The `agentform` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentform_runtime.host import server

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Agentform: agents as Pulumi resources."
)


@app.callback()
def _root() -> None:
    """Agentform: AI agents, their tools and model APIs as Pulumi resources."""


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on; 0 picks a free one.")
    ] = server.DEFAULT_PORT,
    state_dir: Annotated[
        Path, typer.Option(help="Where state, artifacts and logs live.")
    ] = server.DEFAULT_STATE_DIR,
    jwt_secret: Annotated[
        str | None,
        typer.Option(envvar="AGENTFORM_JWT_SECRET", help="HS256 secret for end-user JWTs."),
    ] = None,
    jwks_file: Annotated[
        Path | None, typer.Option(help="JWKS file with the public keys for end-user JWTs.")
    ] = None,
) -> None:
    """Run the local serverless host until SIGTERM/SIGINT."""
    server.serve(host, port, state_dir, jwt_secret, jwks_file)


def main() -> None:
    app()
