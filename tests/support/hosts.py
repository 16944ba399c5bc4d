"""A real local host in a subprocess, on a free loopback port, with its own state dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


class RunningHost:
    def __init__(
        self,
        state_dir: Path,
        extra_args: tuple[str, ...] = (),
        module: str = "agentform",
    ) -> None:
        self.state_dir = state_dir
        self.extra_args = extra_args
        self.module = module  # the module run as `python -m MODULE serve ...`
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, port: int = 0, timeout: float = 30.0) -> RunningHost:
        url_file = self.state_dir / "host.url"
        url_file.unlink(missing_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # 0600, as the host keeps every file of its state dir.
        fd = os.open(self.state_dir / "host.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        log = os.fdopen(fd, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                "serve",
                "--port",
                str(port),
                "--state-dir",
                str(self.state_dir),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"host exited early; see {self.state_dir / 'host.log'}:\n"
                    + (self.state_dir / "host.log").read_text()[-3000:]
                )
            if url_file.exists():
                self.url = url_file.read_text().strip()
                try:
                    if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
            time.sleep(0.05)  # polling a subprocess's start-up, bounded by the deadline
        raise TimeoutError(f"host did not start within {timeout}s")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def token(self) -> str:
        return (self.state_dir / "admin-token").read_text().strip()

    def admin(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {self.token}"}, timeout=timeout
        )

    def client(self, key: str, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {key}"}, timeout=timeout
        )

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.process is not None
        os.killpg(self.process.pid, sig)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
