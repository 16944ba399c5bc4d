"""One worker: a process running one version's handler through `awslambdaric`.

A worker serves one invocation at a time and stays warm between them, as a Lambda sandbox
does. Workers are forked by the zygote (see `zygote.py`), which the host starts once. With an
`Isolation`, each worker is sandboxed (`host/sandbox.py`): its own PID namespace, root, cgroup
(memory limit = `memory_mb`, children counted) and uid; its Runtime API accepts connections
from that uid only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentform_runtime.errors import AgentformError
from agentform_runtime.host.running.runtime_api import Invocation, Outcome, RuntimeApi
from agentform_runtime.host.sandbox import TASK_ROOT, Cgroup

log = logging.getLogger("agentform.host")

_worker_ids = itertools.count(1)
# A worker's PATH, as Lambda's (/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin): the
# interpreter's directory first, then the system's; never the host's own PATH.
WORKER_PATH = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"


class _Interrupted(Exception):
    """Set on an invocation's outcome when it ends without an answer: `reason` is
    "timeout", "exited" or "stopped"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _interrupt(outcome: asyncio.Future[Outcome], reason: str) -> None:
    if not outcome.done():
        outcome.set_exception(_Interrupted(reason))


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
    # Variables holding secret values: served once to each worker by its own Runtime API
    # (`SECRETS_PATH`), never sent to the zygote, whose memory every later worker inherits.
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Isolation:
    """How the host sandboxes its workers: the parent of their cgroups (its own per host, so
    two hosts never sweep each other's) and the ids they run as (one uid per live worker)."""

    cgroup_parent: str
    uids: range
    gid: int
    pids_max: int = 1024  # processes and threads per worker, as Lambda allows
    tmp_mb: int = 512  # Lambda's default ephemeral storage; counted in the memory limit
    log_max_bytes: int = 10 * 1024 * 1024  # the host's log rotation size (--log-max-size)

    @property
    def max_file_bytes(self) -> int:
        """RLIMIT_FSIZE of a worker: twice the rotation size bounds its log between two
        rotations; never below /tmp's size, so a function can still fill its /tmp."""
        return max(2 * self.log_max_bytes, self.tmp_mb * 1024 * 1024)

    @classmethod
    def for_state_dir(cls, state_dir: Path, log_max_bytes: int = 10 * 1024 * 1024) -> Isolation:
        """The isolation of the host owning `state_dir`: a cgroup parent and a block of
        100,000 uids derived from the directory, so hosts side by side use distinct ones."""
        tag = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
        base = 1_000_000_000 + (int(tag, 16) % 10_000) * 100_000
        return cls(
            cgroup_parent=f"agentform-{tag}",
            uids=range(base + 1, base + 100_000),
            gid=base,
            log_max_bytes=log_max_bytes,
        )


@dataclass(frozen=True)
class Spawned:
    """A forked worker: its pid (PID 1 of its namespace when sandboxed) and its cgroup."""

    pid: int
    cgroup: Cgroup | None


class Zygote:
    """The host's end of the zygote: asks it for workers and learns when they exit."""

    def __init__(self, isolation: Isolation | None = None) -> None:
        self.isolation = isolation
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._requests: dict[int, asyncio.Future[Spawned]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._oom: set[int] = set()  # exited workers whose cgroup saw an OOM kill
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        # FIFO: a freed uid is handed out again last, so a new worker never runs as the uid a
        # worker had a moment ago (whose Runtime API connections or processes may linger).
        self._free_uids: collections.deque[int] = collections.deque(
            isolation.uids if isolation is not None else ()
        )

    def lease_uid(self) -> int:
        """A uid no live worker of this host runs as."""
        if not self._free_uids:
            raise WorkerInitError("no free worker uid left; too many workers")
        return self._free_uids.popleft()

    def release_uid(self, uid: int) -> None:
        """Free `uid` (only once the zygote reported its worker's exit)."""
        self._free_uids.append(uid)

    def oom_killed(self, pid: int) -> bool:
        """Whether the cgroup of exited worker `pid` saw an OOM kill (as the zygote read it
        before removing the group)."""
        return pid in self._oom

    async def _ensure(self) -> asyncio.subprocess.Process:
        async with self._lock:
            if self._process is not None and self._process.returncode is None:
                return self._process
            sandboxed = ["--cgroup-parent", self.isolation.cgroup_parent] if self.isolation else []
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agentform_runtime.host.running.zygote",
                *sandboxed,
                # Not the host's environment: every worker could read it back from
                # /proc/self/environ, which shows the environment the zygote was started with.
                env={"PATH": WORKER_PATH, "LANG": "C.UTF-8"},
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
                if message.get("oom"):
                    self._oom.add(message["exited"])
                exit_future = self._exits.pop(message["exited"], None)
                if exit_future is not None and not exit_future.done():
                    exit_future.set_result(message["code"])
                continue
            request = self._requests.pop(message["id"], None)
            if request is None or request.done():
                continue
            if "pid" in message:
                self._exits[message["pid"]] = asyncio.get_running_loop().create_future()
                group = message.get("cgroup")
                cgroup = (
                    Cgroup(group["name"], group["version"], tuple(map(Path, group["dirs"])))
                    if group
                    else None
                )
                request.set_result(Spawned(message["pid"], cgroup))
            else:
                request.set_exception(WorkerInitError(message.get("error", "spawn failed")))
        # The zygote is gone, and with it (PR_SET_PDEATHSIG) every worker it forked.
        for future in self._exits.values():
            if not future.done():
                future.set_result(-signal.SIGKILL)
        for pending in self._requests.values():
            if not pending.done():
                pending.set_exception(WorkerInitError("the worker zygote exited"))
        self._exits.clear()
        self._requests.clear()

    async def spawn(
        self, spec: WorkerSpec, environment: dict[str, str], uid: int | None = None
    ) -> Spawned:
        """Fork a worker running `spec`'s handler with `environment` (sandboxed as `uid` when
        the host isolates workers)."""
        process = await self._ensure()
        request_id = next(self._ids)
        future: asyncio.Future[Spawned] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        request: dict[str, Any] = {
            "id": request_id,
            "task_root": str(spec.directory),
            "handler": spec.handler,
            "env": environment,
            "log": str(spec.log_path),
            "fetch_secrets": bool(spec.secrets),
        }
        if self.isolation is not None and uid is not None:
            request["sandbox"] = {
                "cgroup": f"worker-{request_id}",
                "memory_mb": spec.memory_mb,
                "pids_max": self.isolation.pids_max,
                "tmp_mb": self.isolation.tmp_mb,
                "max_file_bytes": self.isolation.max_file_bytes,
                "uid": uid,
                "gid": self.isolation.gid,
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
        """Stop the zygote (stop the workers first: it takes the ones left with it), then
        remove the host's cgroups."""
        if self._process is not None and self._process.returncode is None:
            await self._stop_process(self._process)
        if self.isolation is not None:
            # A clean stop leaves no cgroup behind, not even the host's parent group.
            try:
                await asyncio.to_thread(
                    Cgroup.sweep, self.isolation.cgroup_parent, remove_parent=True
                )
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", self.isolation.cgroup_parent, exc)

    async def _stop_process(self, process: asyncio.subprocess.Process) -> None:
        if process.stdin is not None:
            process.stdin.close()  # EOF: it removes its spare sandbox and exits
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
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


def _namespace_pid(pid: int) -> int | None:
    """The pid that process `pid` has in its own (innermost) PID namespace."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


class Worker:
    """One worker process and its Runtime API listener."""

    def __init__(self, spec: WorkerSpec, runtime_api: RuntimeApi, zygote: Zygote) -> None:
        self.id = next(_worker_ids)
        self.spec = spec
        self._api = runtime_api
        self._zygote = zygote
        self._inbox: asyncio.Queue[Invocation | None] = asyncio.Queue()
        self._current: Invocation | None = None  # taken by the worker, not yet answered
        self._invoking: Invocation | None = None  # handed to the worker, not yet ended
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._exited: asyncio.Future[int] | None = None
        self.pid: int | None = None  # sandboxed: PID 1 of the worker's namespace
        self.uid: int | None = None  # sandboxed: the uid it runs as
        self.cgroup: Cgroup | None = None
        self._keep: set[int] = set()  # sandboxed: its init and the worker, as the host sees them
        self._port = 0
        self.stopped = False
        self.out_of_memory = False  # set by `enforce_memory` before it stops the worker
        self.last_used = time.monotonic()
        self._secrets_taken = False
        self._stopping: asyncio.Future[None] | None = None

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

    def take_secrets(self) -> dict[str, str] | None:
        """The worker's secret variables, once (the worker asks before its handler loads);
        None after that."""
        if self._secrets_taken:
            return None
        self._secrets_taken = True
        return dict(self.spec.secrets)

    def post_init_error(self, body: bytes, error_type: str) -> None:
        if not self._ready.done():
            self._ready.set_exception(WorkerInitError(_init_error_text(body, error_type)))

    # --- lifecycle -------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        """A clean environment: Lambda's variables and the deployment's, nothing of the host's."""
        directory = str(TASK_ROOT if self.uid is not None else self.spec.directory)
        return {
            "PATH": WORKER_PATH,
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONPATH": directory,
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self._port}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.spec.memory_mb),
            "LAMBDA_TASK_ROOT": directory,
            "_HANDLER": self.spec.handler,
            # Which instance this is (`instances[].worker` of the deployment): inside a
            # sandbox every worker is pid 2 of its own namespace.
            "AGENTFORM_WORKER": str(self.id),
            **self.spec.environment,
        }

    async def start(self) -> None:
        """Fork the process and wait until its handler is loaded (raise WorkerInitError)."""
        if self._zygote.isolation is not None:
            self.uid = self._zygote.lease_uid()
        self._port = await self._api.listen(self, self.uid)
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            spawned = await self._zygote.spawn(self.spec, self._environment(), self.uid)
        except BaseException:
            await self.stop()
            raise
        self.pid, self.cgroup = spawned.pid, spawned.cgroup
        self._exited = self._zygote.exited(self.pid)
        self._exited.add_done_callback(self._on_exit)
        init_timeout = max(10, self.spec.timeout_s)
        try:
            waiting: set[asyncio.Future[Any]] = {self._ready, self._exited}
            done, _ = await asyncio.wait(
                waiting, timeout=init_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if self._ready in done:
                self._ready.result()  # raises WorkerInitError
                self._find_own_processes()
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

    def _on_exit(self, _: asyncio.Future[int]) -> None:
        if self._invoking is not None:
            _interrupt(self._invoking.outcome, "exited")
        elif not self.stopped and self._ready.done():
            # Died while idle (killed from outside): stopped now, so that its pool starts a
            # new worker for the next request instead of handing it this one.
            self._stopping = asyncio.ensure_future(self.stop())

    def _find_own_processes(self) -> None:
        """Remember the init and the worker (PID 1 and 2 inside): every other process of the
        cgroup was started by the code and ends with the invocation that started it."""
        if self.cgroup is None or self.pid is None:
            return
        self._keep = {self.pid}
        with contextlib.suppress(OSError):
            self._keep.update(p for p in self.cgroup.pids() if _namespace_pid(p) == 2)

    def _end_spawned_processes(self) -> None:
        """Kill what the invocation left running (children, setsid grandchildren): nothing a
        function starts outlives its invocation."""
        if self.cgroup is None or len(self._keep) < 2:
            return
        try:
            # One hierarchy is enough (on v1 the memory and pids groups hold the same
            # processes); raw reads: this runs after every invocation.
            fd = os.open(self.cgroup.dirs[-1] / "cgroup.procs", os.O_RDONLY)
            try:
                members = os.read(fd, 65536).split()
            finally:
                os.close(fd)
        except OSError:
            return
        extra = [pid for pid in map(int, members) if pid not in self._keep]
        for pid in extra:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one invocation; raise AgentformError on timeout, memory or a crash."""
        if self._exited is None or self.stopped:
            raise AgentformError(502, "WorkerCrashed", "the worker is not running")
        self.last_used = time.monotonic()
        # One future to wait on: the answer, or the exit, timeout or stop that interrupts it.
        self._invoking = invocation
        if self._exited.done():  # it died while idle: fail now, not at the timeout
            _interrupt(invocation.outcome, "exited")
        self._inbox.put_nowait(invocation)
        timer = asyncio.get_running_loop().call_later(
            self.spec.timeout_s, _interrupt, invocation.outcome, "timeout"
        )
        try:
            try:
                outcome: Outcome | None = await invocation.outcome
                interrupted = ""
            except _Interrupted as exc:
                outcome, interrupted = None, exc.reason
            self._end_spawned_processes()
            # The peak (VmHWM) also catches what was allocated and freed within the call; a
            # cgroup's OOM kill catches children too.
            if self.out_of_memory or self._over_memory():
                raise self._out_of_memory()
            if outcome is not None:
                return outcome
            if interrupted == "timeout":
                raise AgentformError(
                    504,
                    "Timeout",
                    f"the invocation exceeded its timeout of {self.spec.timeout_s}s; "
                    "the worker was recycled",
                )
            ended = (
                f"exited with code {self._exited.result()}"
                if self._exited.done()
                else "was stopped"
            )
            raise AgentformError(
                502,
                "WorkerCrashed",
                f"the worker {ended} during the invocation; it will be replaced",
            )
        except BaseException:
            await self.stop()
            raise
        finally:
            timer.cancel()
            self._invoking = None
            self.last_used = time.monotonic()

    def _over_memory(self) -> bool:
        if self.pid is None:
            return False
        if self.cgroup is None:
            return _peak_rss_mb(self.pid) > self.spec.memory_mb
        try:
            return self.cgroup.oom_killed()
        except OSError:  # the group is gone with the worker: the zygote read it last
            return self._zygote.oom_killed(self.pid)

    def _out_of_memory(self) -> AgentformError:
        if self.cgroup is not None:
            used = (
                f"the worker's processes (children counted) reached its memory limit of "
                f"{self.spec.memory_mb} MB and the kernel killed one"
            )
        else:
            peak = _peak_rss_mb(self.pid) if self.pid else 0.0
            used = (
                f"the worker used {peak:.0f} MB, over its memory limit of {self.spec.memory_mb} MB"
            )
        return AgentformError(
            502,
            "OutOfMemory",
            f"{used}; the invocation failed and the worker was recycled",
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
            self._kill(self.pid)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._exited), 10)
        if self.uid is not None:
            uid, self.uid = self.uid, None
            if self._exited is None:  # never forked
                self._zygote.release_uid(uid)
            else:  # free only once the zygote saw it exit, however long that takes
                zygote = self._zygote
                self._exited.add_done_callback(lambda _: zygote.release_uid(uid))
        if self._invoking is not None:
            _interrupt(self._invoking.outcome, "stopped")

    def _kill(self, pid: int) -> None:
        if self.cgroup is not None:
            # PID 1 of its namespace: SIGKILL (PID 1 ignores the rest) ends every process in
            # the namespace; the cgroup catches any left, whatever session they started.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                self.cgroup.kill()
            return
        try:
            os.killpg(pid, signal.SIGKILL)  # the worker and what it spawned
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # forked, not yet its own group


def _init_error_text(body: bytes, error_type: str) -> str:
    try:
        data = json.loads(body)
        message = data.get("errorMessage", "")
        return f"{data.get('errorType', error_type)}: {message}".strip()
    except (ValueError, AttributeError):
        return f"{error_type}: {body.decode(errors='replace')}"
