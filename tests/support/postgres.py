"""A throwaway PostgreSQL server on a loopback port (Debian's packages), for connection tests."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str
    data: Path
    bin: Path

    def stop(self) -> None:
        _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"])
        shutil.rmtree(self.data.parent, ignore_errors=True)


def _as_postgres(command: list[str]) -> None:
    """Run `command` as the `postgres` user (the server refuses to run as root)."""
    account = pwd.getpwnam("postgres")

    def demote() -> None:
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)

    done = subprocess.run(
        command, preexec_fn=demote, capture_output=True, text=True, timeout=120, cwd="/"
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_postgres() -> Postgres:
    """Install (idempotently), initialise and start a server with one password-protected
    user, listening on 127.0.0.1 only. Its files live in a fresh directory under /tmp (the
    `postgres` user cannot reach pytest's 0700 temporary directories)."""
    installed = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup-postgres.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    bin_dir = Path(installed.stdout.strip())
    account = pwd.getpwnam("postgres")
    workdir = Path(tempfile.mkdtemp(prefix="agentform-postgres-"))
    os.chown(workdir, account.pw_uid, account.pw_gid)
    password = secrets.token_urlsafe(16)
    password_file = workdir / "password"
    password_file.write_text(password + "\n")
    os.chown(password_file, account.pw_uid, account.pw_gid)
    data = workdir / "data"
    _as_postgres(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "agentform",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
        ]
    )
    password_file.unlink()
    port = _free_port()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {workdir}"
    _as_postgres(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(workdir / "server.log"),
            "-w",
            "start",
        ]
    )
    return Postgres("127.0.0.1", port, "agentform", password, "postgres", data, bin_dir)
