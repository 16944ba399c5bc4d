"""`agentform serve`: run the host on loopback until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

import uvicorn

from agentform_runtime.host import sandbox
from agentform_runtime.host.api.http_protocol import HostHttpProtocol
from agentform_runtime.host.app import HostConfig, admin_token, create_app, private_state_dir
from agentform_runtime.host.running.worker import Isolation
from agentform_runtime.host.state.retention import Retention
from agentform_runtime.host.telemetry.config import OtlpSettings

DEFAULT_PORT = 4860
KEEP_ALIVE_S = 75
DEFAULT_STATE_DIR = Path.home() / ".agentform"


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


class SandboxUnavailable(RuntimeError):
    """The kernel (or our privileges) do not allow sandboxed workers; the message says why."""


def check_sandbox(state_dir: Path) -> None:
    """Raise SandboxUnavailable unless a throwaway worker can be sandboxed here."""
    reason = sandbox.probe(parent=Isolation.for_state_dir(state_dir).cgroup_parent)
    if reason is not None:
        raise SandboxUnavailable(reason)


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    state_dir: Path = DEFAULT_STATE_DIR,
    jwt_secret: str | None = None,
    jwks_file: Path | None = None,
    clock_file: Path | None = None,
    max_concurrency: int | None = None,
    no_sandbox: bool = False,
    otlp: OtlpSettings | None = None,
    retention: Retention | None = None,
) -> None:
    """Serve until stopped; uvicorn turns SIGTERM/SIGINT into a clean shutdown that stops
    every worker. The listening socket is bound first so port 0 works and the URL is known.
    Raises SandboxUnavailable (before binding) when workers cannot be sandboxed, unless
    `no_sandbox`."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host_log = logging.getLogger("agentform.host")
    # Everything the host creates in its state dir (database, keys, logs, artifacts) is 0600.
    os.umask(0o077)
    private_state_dir(state_dir)
    if no_sandbox:
        host_log.warning(
            "--no-sandbox: workers run unsandboxed as this host's user; any workload can read "
            "the state dir (admin token, keys), other workers' secrets and Runtime APIs"
        )
    else:
        check_sandbox(state_dir)
    sock = bind(host, port)
    actual_port = sock.getsockname()[1]
    url = f"http://{host}:{actual_port}"
    admin_token(state_dir)
    (state_dir / "host.url").write_text(url + "\n")
    config = uvicorn.Config(
        create_app(
            HostConfig(
                state_dir=state_dir,
                public_url=url,
                jwt_secret=jwt_secret,
                jwks_file=jwks_file,
                clock_file=clock_file,
                max_concurrency=max_concurrency,
                sandbox=not no_sandbox,
                otlp=otlp,
                retention=retention or Retention(),
            )
        ),
        http=HostHttpProtocol,
        # Every client is on loopback, workloads' hops included: none may set the address
        # the next workload sees (`sourceIp`) with X-Forwarded-For.
        proxy_headers=False,
        # Longer than clients keep idle connections (httpx: 5 s, uvicorn's default here too):
        # a server closing an idle connection as a client reuses it loses that request.
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    host_log.info(
        "Agentform host on %s (state in %s; workers %s)",
        url,
        state_dir,
        "NOT sandboxed (--no-sandbox)" if no_sandbox else "sandboxed",
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
