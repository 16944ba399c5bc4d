"""Worker processes running one version's handler through `awslambdaric`, and their pool.

A worker serves one invocation at a time and stays warm between them, as a Lambda sandbox
does. A pool holds the workers of one deployed version: it starts them on demand up to
`max_instances`, keeps `min_instances` warm, stops the ones idle past the idle timeout, and
when drained (after a blue-green switch) stops once its last request has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agentform_runtime.host.errors import ApiError
from agentform_runtime.host.runtime_api import Invocation, Outcome, RuntimeApi
from agentform_runtime.specs import ScalingSpec

log = logging.getLogger("agentform.host")

_MEMORY_POLL_S = 0.02
_worker_ids = itertools.count(1)


class InvocationFailed(ApiError):
    """An invocation that did not produce a handler response or a handler error."""


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


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills the worker if the host dies, even by
    SIGKILL, so no worker outlives its host."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), so short spikes are not missed."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Worker:
    """One `python -m awslambdaric <handler>` process and its Runtime API listener."""

    def __init__(self, spec: WorkerSpec, runtime_api: RuntimeApi) -> None:
        self.id = next(_worker_ids)
        self.spec = spec
        self._api = runtime_api
        self._inbox: asyncio.Queue[Invocation | None] = asyncio.Queue()
        self._current: Invocation | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._process: asyncio.subprocess.Process | None = None
        self._port = 0
        self._log: IO[bytes] | None = None
        self.stopped = False
        self.last_used = time.monotonic()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

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

    async def start(self) -> None:
        """Spawn the process and wait until its handler is loaded (raise WorkerInitError)."""
        self._port = await self._api.listen(self)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(self.spec.directory),
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self._port}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.spec.memory_mb),
            "LAMBDA_TASK_ROOT": str(self.spec.directory),
            "_HANDLER": self.spec.handler,
            **self.spec.environment,
        }
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.spec.log_path, "ab")  # noqa: SIM115 - lives as long as the worker
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "awslambdaric",
            self.spec.handler,
            cwd=self.spec.directory,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        exited = asyncio.ensure_future(self._process.wait())
        init_timeout = max(10, self.spec.timeout_s)
        try:
            waiting: set[asyncio.Future[Any]] = {self._ready, exited}
            done, _ = await asyncio.wait(
                waiting, timeout=init_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if self._ready in done:
                self._ready.result()  # raises WorkerInitError
                return
            if exited in done:
                raise WorkerInitError(
                    f"worker exited with code {exited.result()} before its handler loaded; "
                    f"see {self.spec.log_path}"
                )
            raise WorkerInitError(f"handler did not load within {init_timeout}s")
        except BaseException:
            await self.stop()
            raise
        finally:
            exited.cancel()

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one invocation; raise InvocationFailed on timeout, memory or a crash."""
        assert self._process is not None
        self.last_used = time.monotonic()
        self._inbox.put_nowait(invocation)
        exited = asyncio.ensure_future(self._process.wait())
        memory = asyncio.ensure_future(self._watch_memory())
        try:
            waiting: set[asyncio.Future[Any]] = {invocation.outcome, exited, memory}
            done, _ = await asyncio.wait(
                waiting,
                timeout=self.spec.timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if invocation.outcome in done:
                # A handler can allocate and return between two polls: check the peak too.
                if self._over_memory():
                    raise self._out_of_memory()
                return invocation.outcome.result()
            if memory in done:
                raise self._out_of_memory()
            if exited in done:
                raise InvocationFailed(
                    502,
                    "WorkerCrashed",
                    f"the worker exited with code {exited.result()} during the invocation; "
                    "it will be replaced",
                )
            raise InvocationFailed(
                504,
                "Timeout",
                f"the invocation exceeded its timeout of {self.spec.timeout_s}s; "
                "the worker was recycled",
            )
        except BaseException:
            await self.stop()
            raise
        finally:
            exited.cancel()
            memory.cancel()
            self.last_used = time.monotonic()

    def _over_memory(self) -> bool:
        return self.pid is not None and _peak_rss_mb(self.pid) > self.spec.memory_mb

    def _out_of_memory(self) -> InvocationFailed:
        peak = _peak_rss_mb(self.pid) if self.pid else 0.0
        return InvocationFailed(
            502,
            "OutOfMemory",
            f"the worker used {peak:.0f} MB, over its memory limit of {self.spec.memory_mb} MB; "
            "the invocation failed and the worker was recycled",
        )

    async def _watch_memory(self) -> None:
        while not self._over_memory():
            await asyncio.sleep(_MEMORY_POLL_S)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._inbox.put_nowait(None)
        self._api.close(self._port)
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            await self._process.wait()
        if self._current is not None and not self._current.outcome.done():
            self._current.outcome.cancel()
        if self._log is not None:
            self._log.close()


def _init_error_text(body: bytes, error_type: str) -> str:
    import json

    try:
        data = json.loads(body)
        message = data.get("errorMessage", "")
        return f"{data.get('errorType', error_type)}: {message}".strip()
    except (ValueError, AttributeError):
        return f"{error_type}: {body.decode(errors='replace')}"


class Throttled(InvocationFailed):
    def __init__(self, max_instances: int) -> None:
        super().__init__(
            429,
            "Throttled",
            f"all {max_instances} instances are busy and none freed up in time; retry later",
        )


class WorkerPool:
    """The workers of one deployed version."""

    def __init__(self, spec: WorkerSpec, scaling: ScalingSpec, runtime_api: RuntimeApi) -> None:
        self.spec = spec
        self.scaling = scaling
        self._api = runtime_api
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._starting = 0
        self._changed = asyncio.Condition()
        self.in_flight = 0
        self.draining = False
        self._failed_starts = 0
        self._retry_at = 0.0

    @property
    def size(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    def workers(self) -> list[Worker]:
        return [*self._idle, *self._busy]

    async def start_worker(self) -> Worker:
        """Start one more worker (counted against max_instances while it starts)."""
        self._starting += 1
        return await self._spawn()

    async def _spawn(self) -> Worker:
        """Start a worker whose slot the caller reserved in `_starting`."""
        try:
            worker = Worker(self.spec, self._api)
            await worker.start()
            return worker
        except OSError as exc:
            raise WorkerInitError(f"cannot start a worker: {exc}") from exc
        finally:
            async with self._changed:
                self._starting -= 1
                self._changed.notify_all()

    async def warm(self, worker: Worker) -> None:
        """Add a started worker to the idle set (or stop it, if the pool is going away)."""
        if self.draining:
            await worker.stop()
            return
        async with self._changed:
            self._idle.append(worker)
            self._changed.notify_all()

    async def _acquire(self) -> Worker:
        deadline = time.monotonic() + self.spec.timeout_s
        async with self._changed:
            while True:
                while self._idle:
                    worker = self._idle.pop()  # the most recently used one: warmest
                    if not worker.stopped:
                        self._busy.add(worker)
                        return worker
                if self.size < self.scaling.max_instances:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Throttled(self.scaling.max_instances)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
            self._starting += 1
        try:
            worker = await self._spawn()
        except WorkerInitError as exc:
            raise InvocationFailed(
                502, "InitError", f"a new worker could not load the handler: {exc.text}"
            ) from None
        self._busy.add(worker)
        return worker

    async def _release(self, worker: Worker) -> None:
        async with self._changed:
            self._busy.discard(worker)
            if not worker.stopped:
                self._idle.append(worker)
            self._changed.notify_all()

    async def invoke(self, invocation: Invocation) -> Outcome:
        self.in_flight += 1
        try:
            worker = await self._acquire()
            try:
                return await worker.invoke(invocation)
            finally:
                await self._release(worker)
        finally:
            self.in_flight -= 1
            if self.draining and self.in_flight == 0:
                await self.stop()

    async def reap_idle(self, now: float) -> None:
        """Stop workers idle past the idle timeout, keeping min_instances."""
        async with self._changed:
            keep = self.scaling.min_instances
            expired = [w for w in self._idle if now - w.last_used >= self.scaling.idle_timeout_s]
            surplus = max(0, len(self._idle) + len(self._busy) - keep)
            victims = sorted(expired, key=lambda w: w.last_used)[:surplus]
            for worker in victims:
                self._idle.remove(worker)
        for worker in victims:
            log.info("worker %s (pid %s) idle; stopping", worker.id, worker.pid)
            await worker.stop()

    async def ensure_min(self) -> None:
        """Bring the pool up to min_instances; after a failed start, wait before retrying
        (doubling up to a minute) so a broken version does not spin."""
        if time.monotonic() < self._retry_at:
            return
        try:
            while not self.draining and self.size < self.scaling.min_instances:
                await self.warm(await self.start_worker())
        except WorkerInitError as exc:
            self._failed_starts += 1
            delay = min(60.0, 0.5 * 2**self._failed_starts)
            self._retry_at = time.monotonic() + delay
            log.warning("cannot keep min_instances warm (retry in %.0fs): %s", delay, exc.text)
        else:
            self._failed_starts = 0

    async def drain(self) -> None:
        """Take no new requests; stop once the in-flight ones are done."""
        self.draining = True
        if self.in_flight == 0:
            await self.stop()

    async def stop(self) -> None:
        async with self._changed:
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._changed.notify_all()
        await asyncio.gather(*(w.stop() for w in workers))
