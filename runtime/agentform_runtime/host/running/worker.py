"""One worker: a process running one version's handler through `awslambdaric`.

A worker serves one invocation at a time and stays warm between them, as a Lambda sandbox
does. Workers are forked by the zygote (see `zygote.py`), which the host starts once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentform_runtime.errors import AgentformError
from agentform_runtime.host.running.runtime_api import Invocation, Outcome, RuntimeApi

log = logging.getLogger("agentform.host")

_worker_ids = itertools.count(1)


class WorkerInitError(Exception):
    """The handler could not be loaded; `text` is what the runtime reported."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class WorkerSpec:
    """How to start workers of one version."""

    directory: Path
    handler: str
    environment: dict[str, str]
    memory_mb: int
    timeout_s: int
    function_arn: str
    log_path: Path


class Zygote:
    """The host's end of the zygote: asks it for workers and learns when they exit."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._requests: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def _ensure(self) -> asyncio.subprocess.Process:
        async with self._lock:
            if self._process is not None and self._process.returncode is None:
                return self._process
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agentform_runtime.host.running.zygote",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1024 * 1024,
            )
            if process.stdout is None or process.stdin is None:
                raise WorkerInitError("the worker zygote has no pipes")
            ready = await process.stdout.readline()
            if not ready.startswith(b'{"ready"'):
                raise WorkerInitError(f"the worker zygote did not start: {ready!r}")
            self._process = process
            self._reader = asyncio.ensure_future(self._read(process))
            return process

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        stream = process.stdout
        if stream is None:
            return
        while line := await stream.readline():
            message = json.loads(line)
            if "exited" in message:
                exit_future = self._exits.pop(message["exited"], None)
                if exit_future is not None and not exit_future.done():
                    exit_future.set_result(message["code"])
                continue
            request = self._requests.pop(message["id"], None)
            if request is None or request.done():
                continue
            if "pid" in message:
                self._exits[message["pid"]] = asyncio.get_running_loop().create_future()
                request.set_result(message["pid"])
            else:
                request.set_exception(WorkerInitError(message.get("error", "spawn failed")))
        # The zygote is gone, and with it (PR_SET_PDEATHSIG) every worker it forked.
        for future in self._exits.values():
            if not future.done():
                future.set_result(-signal.SIGKILL)
        for future in self._requests.values():
            if not future.done():
                future.set_exception(WorkerInitError("the worker zygote exited"))
        self._exits.clear()
        self._requests.clear()

    async def spawn(self, spec: WorkerSpec, environment: dict[str, str]) -> int:
        """Fork a worker running `spec`'s handler with `environment`; return its pid."""
        process = await self._ensure()
        request_id = next(self._ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        request = {
            "id": request_id,
            "task_root": str(spec.directory),
            "handler": spec.handler,
            "env": environment,
            "log": str(spec.log_path),
        }
        if process.stdin is None:
            raise WorkerInitError("the worker zygote has no pipes")
        process.stdin.write(json.dumps(request).encode() + b"\n")
        await process.stdin.drain()
        return await future

    def exited(self, pid: int) -> asyncio.Future[int]:
        """Resolves with the worker's exit code when it ends."""
        future = self._exits.get(pid)
        if future is None:  # already reaped and reported
            future = asyncio.get_running_loop().create_future()
            future.set_result(-1)
        return future

    async def stop(self) -> None:
        """Stop the zygote (stop the workers first: it takes the ones left with it)."""
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        await self._process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), so short spikes are not missed. Read after
    every invocation: raw reads, no text decoding."""
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
        try:
            status = os.read(fd, 8192)
        finally:
            os.close(fd)
    except OSError:
        return 0.0
    start = status.find(b"VmHWM:")
    if start < 0:
        return 0.0
    return int(status[start + 6 : status.index(b"kB", start)]) / 1024


class Worker:
    """One worker process and its Runtime API listener."""

    def __init__(self, spec: WorkerSpec, runtime_api: RuntimeApi, zygote: Zygote) -> None:
        self.id = next(_worker_ids)
        self.spec = spec
        self._api = runtime_api
        self._zygote = zygote
        self._inbox: asyncio.Queue[Invocation | None] = asyncio.Queue()
        self._current: Invocation | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._exited: asyncio.Future[int] | None = None
        self.pid: int | None = None
        self._port = 0
        self.stopped = False
        self.out_of_memory = False  # set by `enforce_memory` before it stops the worker
        self.last_used = time.monotonic()

    # --- RuntimeClient (called by the Runtime API routes) ----------------------------------

    async def next_invocation(self) -> Invocation | None:
        if not self._ready.done():
            self._ready.set_result(None)  # the handler loaded: awslambdaric asks for work
        if self.stopped:
            return None
        invocation = await self._inbox.get()
        self._current = invocation
        return invocation

    def post_outcome(self, request_id: str, outcome: Outcome) -> bool:
        current = self._current
        if current is None or current.request_id != request_id or current.outcome.done():
            return False
        current.outcome.set_result(outcome)
        self._current = None
        return True

    def post_init_error(self, body: bytes, error_type: str) -> None:
        if not self._ready.done():
            self._ready.set_exception(WorkerInitError(_init_error_text(body, error_type)))

    # --- lifecycle -------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        directory = str(self.spec.directory)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONPATH": directory,
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self._port}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.spec.memory_mb),
            "LAMBDA_TASK_ROOT": directory,
            "_HANDLER": self.spec.handler,
            **self.spec.environment,
        }

    async def start(self) -> None:
        """Fork the process and wait until its handler is loaded (raise WorkerInitError)."""
        self._port = await self._api.listen(self)
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.pid = await self._zygote.spawn(self.spec, self._environment())
        except BaseException:
            await self.stop()
            raise
        self._exited = self._zygote.exited(self.pid)
        init_timeout = max(10, self.spec.timeout_s)
        try:
            waiting: set[asyncio.Future[Any]] = {self._ready, self._exited}
            done, _ = await asyncio.wait(
                waiting, timeout=init_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if self._ready in done:
                self._ready.result()  # raises WorkerInitError
                return
            if self._exited in done:
                raise WorkerInitError(
                    f"worker exited with code {self._exited.result()} before its handler "
                    f"loaded; see {self.spec.log_path}"
                )
            raise WorkerInitError(f"handler did not load within {init_timeout}s")
        except BaseException:
            await self.stop()
            raise

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one invocation; raise AgentformError on timeout, memory or a crash."""
        if self._exited is None or self.stopped:
            raise AgentformError(502, "WorkerCrashed", "the worker is not running")
        self.last_used = time.monotonic()
        self._inbox.put_nowait(invocation)
        try:
            waiting: set[asyncio.Future[Any]] = {invocation.outcome, self._exited}
            done, _ = await asyncio.wait(
                waiting,
                timeout=self.spec.timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            # The peak (VmHWM) also catches what was allocated and freed within the call.
            if self.out_of_memory or self._over_memory():
                raise self._out_of_memory()
            if invocation.outcome in done:
                return invocation.outcome.result()
            if self._exited in done:
                raise AgentformError(
                    502,
                    "WorkerCrashed",
                    f"the worker exited with code {self._exited.result()} during the "
                    "invocation; it will be replaced",
                )
            raise AgentformError(
                504,
                "Timeout",
                f"the invocation exceeded its timeout of {self.spec.timeout_s}s; "
                "the worker was recycled",
            )
        except BaseException:
            await self.stop()
            raise
        finally:
            self.last_used = time.monotonic()

    def _over_memory(self) -> bool:
        return self.pid is not None and _peak_rss_mb(self.pid) > self.spec.memory_mb

    def _out_of_memory(self) -> AgentformError:
        peak = _peak_rss_mb(self.pid) if self.pid else 0.0
        return AgentformError(
            502,
            "OutOfMemory",
            f"the worker used {peak:.0f} MB, over its memory limit of {self.spec.memory_mb} MB; "
            "the invocation failed and the worker was recycled",
        )

    async def enforce_memory(self) -> None:
        """Stop the worker if it went over its memory limit during an invocation (called
        periodically for busy workers; the invocation then fails with OutOfMemory)."""
        if not self.stopped and self._current is not None and self._over_memory():
            self.out_of_memory = True
            await self.stop()

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._inbox.put_nowait(None)
        self._api.close(self._port)
        if self.pid is not None and self._exited is not None and not self._exited.done():
            try:
                os.killpg(self.pid, signal.SIGKILL)  # the worker and what it spawned
            except ProcessLookupError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)  # forked, not yet its own group
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._exited), 10)
        if self._current is not None and not self._current.outcome.done():
            self._current.outcome.cancel()


def _init_error_text(body: bytes, error_type: str) -> str:
    try:
        data = json.loads(body)
        message = data.get("errorMessage", "")
        return f"{data.get('errorType', error_type)}: {message}".strip()
    except (ValueError, AttributeError):
        return f"{error_type}: {body.decode(errors='replace')}"
