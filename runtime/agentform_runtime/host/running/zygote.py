"""The zygote: one pre-initialised process that forks every worker.

Starting a worker by exec costs an interpreter start plus the imports of `awslambdaric` and
the workload runtime's dependencies (pydantic, httpx, jsonschema), most of a cold start. The
zygote pays for them once; each worker is a fork that then loads only its own artifact. A
worker is still one process per Lambda sandbox: it gets its own environment, working
directory and log, runs AWS's runtime client against its own Runtime API, and the handler
module (user code) is imported in the worker, never in the zygote, so init runs per worker
as on Lambda.

Sandboxed (`--cgroup-parent PARENT`, see `host/sandbox.py`), each request also carries
`sandbox: {"cgroup", "memory_mb", "pids_max", "uid", "gid", "tmp_mb"}`: the zygote creates the
worker's cgroup under PARENT (sweeping leftovers of an earlier run at start) and forks the
worker as PID 1 of a new PID namespace; that child enters its sandbox (a private root with the
artifact read-only at /var/task, its cgroup, its own uid), forks the worker proper and stays
its init: it reaps orphans and exits with the worker, and the kernel then kills everything
left in the namespace. So killing the reported pid ends every process of the worker. The
zygote removes the cgroup once that pid is reaped.

The zygote is single-threaded (forking a threaded process is unsafe) and speaks JSON lines:
on stdin `{"id", "task_root", "handler", "env", "log", "fetch_secrets"[, "sandbox"]}` (no
secret value: a worker with secrets fetches them from its own Runtime API after the fork);
on stdout `{"id", "pid"}` (plus `"cgroup"`: the group's directories, when sandboxed) or
`{"id", "error"}` for each request, and `{"exited": pid, "code": n[, "oom": bool]}` when a
worker ends (`oom`: whether its cgroup saw an OOM kill, read before the group is removed). Of
the host it imports only `sandbox` and `workload_imports` (what a worker may import, as on
Lambda), which every worker drops again with the rest of `agentform_runtime.host`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import itertools
import json
import os
import selectors
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentform_runtime.host import sandbox
from agentform_runtime.host.running.workload_imports import WorkloadPackages

_PR_SET_PDEATHSIG = 1
# Workers run this much nicer than the host: the host's one event loop serves every request
# and every worker's Runtime API, so when busy workers outnumber the cores it keeps its share
# of the CPU instead of queueing behind them (throughput then holds as concurrency grows).
WORKER_NICENESS = 5
# What every workload imports anyway: paid once here instead of in every cold start. Not
# awslambdaric's C client (`runtime_client`, imported by `awslambdaric.bootstrap`): it reads
# AWS_LAMBDA_RUNTIME_API once, when its library loads, so each worker loads it itself.
_PRELOAD = (
    "json",
    "http.client",
    "pydantic",
    "httpx",
    "jsonschema",
    "awslambdaric.lambda_context",
    "awslambdaric.lambda_runtime_exception",
    "awslambdaric.lambda_runtime_log_utils",
    "awslambdaric.lambda_runtime_marshaller",
)


# The workload runtime, which every artifact ships a copy of. A worker whose copy is the
# same as the zygote's keeps these; any other copy is imported afresh from the artifact.
_RUNTIME_PRELOAD = (
    "agentform_runtime.specs",
    "agentform_runtime.errors",
    "agentform_runtime.workload.context",
    "agentform_runtime.workload.responses",
    "agentform_runtime.workload.host_client",
    "agentform_runtime.workload.functions",
    "agentform_runtime.workload.anthropic",
    "agentform_runtime.workload.models",
    "agentform_runtime.workload.agent_loop",
    "agentform_runtime.workload.sdk",
)


def runtime_digest(package: str) -> str:
    """A digest of the workload runtime's files under `package` (the host part excluded, as
    packaging excludes it)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in ("host", "__pycache__"))
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, package).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


# What workers may import beyond their artifact and the standard library (set by _preload).
_workload_packages: WorkloadPackages | None = None


def _preload() -> str:
    """Import what workers share; return the digest of the runtime copy imported."""
    global _workload_packages
    for module in _PRELOAD + _RUNTIME_PRELOAD:
        __import__(module)
    _workload_packages = WorkloadPackages()
    import agentform_runtime

    return runtime_digest(os.path.dirname(agentform_runtime.__file__))


def _adopt_runtime(task_root: str, preloaded: str) -> None:
    """Run the artifact's own copy of the runtime: keep the preloaded modules when that copy
    is identical, else drop them so the artifact's are imported."""
    copy = os.path.join(task_root, "agentform_runtime")
    for name in [m for m in sys.modules if m.startswith("agentform_runtime.host")]:
        del sys.modules[name]  # the host's own modules: never part of a workload
    modules = [m for m in sys.modules if m.split(".")[0] == "agentform_runtime"]
    if os.path.isdir(copy) and runtime_digest(copy) == preloaded:
        # Same code: point the packages at the artifact so later imports come from there.
        for name in modules:
            module = sys.modules[name]
            if hasattr(module, "__path__"):
                relative = name.split(".")[1:]
                module.__path__ = [os.path.join(copy, *relative)]
        return
    for name in modules:
        del sys.modules[name]


def _die_with(parent: int) -> None:
    """The kernel kills this process when its parent dies, even by SIGKILL."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _redirect_output(log_path: str) -> None:
    """stdin from /dev/null, stdout and stderr to the worker's log. Opened here, before any
    sandbox: the worker keeps writing to a file it could not open itself."""
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)


def _default_signals() -> None:
    for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


# runtime_api.SECRETS_PATH (the zygote imports nothing of the host but `sandbox`).
_SECRETS_PATH = "/2018-06-01/runtime/agentform/secrets"


def _fetch_secrets(runtime_api: str) -> None:
    """Add the worker's secret variables (connections) to its environment, fetched from its
    own Runtime API: they never pass through the zygote, whose memory every worker inherits."""
    import http.client

    host, _, port = runtime_api.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", _SECRETS_PATH)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"cannot fetch the worker's secrets: HTTP {response.status} {body!r}")
    os.environ.update(json.loads(body))


def _bootstrap(request: dict[str, Any], task_root: str, preloaded: str) -> Callable[[], None]:
    """What the worker runs: its secrets, the artifact's runtime, then awslambdaric's loop."""

    def run() -> None:
        os.nice(WORKER_NICENESS)
        if request.get("fetch_secrets"):
            _fetch_secrets(request["env"]["AWS_LAMBDA_RUNTIME_API"])
        os.chdir(task_root)
        sys.path.insert(0, task_root)
        _adopt_runtime(task_root, preloaded)
        if _workload_packages is not None:
            _workload_packages.confine(task_root)
        from awslambdaric import bootstrap, lambda_runtime_client

        client = lambda_runtime_client.LambdaRuntimeClient(request["env"]["AWS_LAMBDA_RUNTIME_API"])
        bootstrap.run(request["handler"], client)

    return run


def _exit_code(run: Callable[[], None]) -> int:
    """Run `run` and turn how it ended into an exit code (a traceback goes to the log)."""
    try:
        run()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1


def _run_worker(request: dict[str, Any], zygote: int, preloaded: str) -> None:
    """In the forked child, without a sandbox: become the worker and never return."""
    code = 1
    try:
        os.setsid()  # its own process group: stopping the worker stops what it spawned
        _die_with(zygote)
        _default_signals()
        _redirect_output(request["log"])
        os.environ.clear()
        os.environ.update(request["env"])
        code = _exit_code(_bootstrap(request, request["task_root"], preloaded))
    finally:
        os._exit(code)


def _cgroup_of(box: dict[str, Any]) -> sandbox.Cgroup:
    group = box["cgroup"]
    return sandbox.Cgroup(group["name"], group["version"], tuple(map(Path, group["dirs"])))


def _sandbox_spec(request: dict[str, Any], read_only: tuple[Path, ...]) -> sandbox.SandboxSpec:
    box = request["sandbox"]
    return sandbox.SandboxSpec(
        task_root=Path(request["task_root"]),
        uid=box["uid"],
        gid=box["gid"],
        read_only=read_only,
        tmp_mb=box["tmp_mb"],
        cgroup=_cgroup_of(box),
        max_file_bytes=box.get("max_file_bytes"),
    )


def _run_sandboxed(
    request: dict[str, Any], zygote: int, preloaded: str, read_only: tuple[Path, ...]
) -> None:
    """In the child forked into a new PID namespace: enter the sandbox, fork the worker and
    stay its init until it exits; never return."""
    code = 1
    try:
        _default_signals()
        _redirect_output(request["log"])
        sandbox.enter(_sandbox_spec(request, read_only), parent_pid=zygote)
        code = _start_as_init(request, preloaded)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _run_spare(
    requests: int, zygote: int, preloaded: str, read_only: tuple[Path, ...], box: dict[str, Any]
) -> None:
    """In a spare child (forked ahead of any request, into a new PID namespace and cgroup):
    prepare the sandbox, wait for the request on `requests`, finish it and become that
    worker's init; never return. EOF without a request: exit quietly."""
    code = 1
    try:
        _default_signals()
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        os.dup2(null, 0)  # not the host's pipes: fd 0 and 1 are the zygote's protocol
        os.dup2(null, 1)
        os.close(null)
        prepared = sandbox.prepare(
            read_only=read_only,
            tmp_mb=box["tmp_mb"],
            cgroup=_cgroup_of(box),
            parent_pid=zygote,
            keep_fds=[requests],
        )
        data = b""
        while chunk := os.read(requests, 65536):
            data += chunk
        os.close(requests)
        if not data:
            os._exit(0)
        request = json.loads(data)
        # Paths the zygote resolved; the host's root is still reachable until finish().
        _redirect_output(sandbox.host_path(request["log"]))
        prepared.finish(_sandbox_spec(request, read_only))
        code = _start_as_init(request, preloaded)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _start_as_init(request: dict[str, Any], preloaded: str) -> int:
    """In an entered sandbox: fork the worker (PID 2) and reap until it exits."""
    os.environ.clear()
    os.environ.update(request["env"])
    worker = os.fork()
    if worker == 0:
        os._exit(_exit_code(_bootstrap(request, str(sandbox.TASK_ROOT), preloaded)))
    return _init(worker)


def _init(worker: int) -> int:
    """PID 1 of the worker's namespace: reap every child (orphans are re-parented here) and
    return the worker's exit code once it ends. (PID 1 gets no signal it has no handler for,
    so the host stops it with SIGKILL.)"""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        if pid == worker:
            return os.waitstatus_to_exitcode(status)


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


@dataclass
class _Spare:
    """A child forked ahead of requests, its sandbox prepared, waiting on `requests`."""

    pid: int
    group: sandbox.Cgroup
    requests: int  # the write end of its request pipe
    tmp_mb: int


# A new spare is prepared once no request or exit came for this long: preparing it right
# after a cold start would compete for the CPU with the worker that is starting.
_SPARE_AFTER_IDLE_S = 0.2

# Limits of a spare until a request sets the real ones: the largest a deployment may ask.
_SPARE_MEMORY_MB = 10240
_SPARE_PIDS = 1024


def _describe(group: sandbox.Cgroup) -> dict[str, Any]:
    return {"name": group.name, "version": group.version, "dirs": [str(d) for d in group.dirs]}


class _Forker:
    """Forks workers; with a cgroup parent, each into its own cgroup and PID namespace.

    Sandboxed, it keeps one spare child whose sandbox is prepared ahead (namespaces, cgroup,
    root skeleton: most of the kernel work), so a cold start only finishes it."""

    def __init__(self, cgroup_parent: str | None, preloaded: str) -> None:
        self.parent = cgroup_parent
        self.preloaded = preloaded
        self.zygote = os.getpid()
        self.groups: dict[int, sandbox.Cgroup] = {}
        self.read_only = sandbox.default_read_only() if cgroup_parent else ()
        self.spare: _Spare | None = None
        self._spares = itertools.count(1)
        if cgroup_parent is not None:
            sandbox.Cgroup.sweep(cgroup_parent)  # leftovers of a host that was killed
            sandbox.syscall_filter()  # built once here, inherited by every worker

    def fork(self, request: dict[str, Any], in_child: Callable[[], None]) -> dict[str, Any]:
        """Fork the worker of `request`; return the reply. The child runs `in_child` first."""
        box = request.get("sandbox")
        if self.parent is None or box is None:
            pid = os.fork()
            if pid == 0:
                in_child()
                _run_worker(request, self.zygote, self.preloaded)
            return {"pid": pid}
        # The sandboxed child reaches these paths before or after the host's root is gone.
        request["task_root"] = os.path.realpath(request["task_root"])
        request["log"] = os.path.realpath(request["log"])
        spare = self._take_spare(box)
        if spare is not None and self._hand_over(spare, request, box):
            return {"pid": spare.pid, "cgroup": box["cgroup"]}
        group = sandbox.Cgroup.create(
            box["cgroup"], box["memory_mb"], box["pids_max"], parent=self.parent
        )
        box["cgroup"] = _describe(group)
        try:
            sandbox.prepare_pid_namespace()
            pid = os.fork()
            if pid == 0:
                in_child()
                _run_sandboxed(request, self.zygote, self.preloaded, self.read_only)
            # Our next forks (but the next worker's) stay in our own PID namespace.
            sandbox.restore_pid_namespace()
        except BaseException:
            group.remove()
            raise
        self.groups[pid] = group
        return {"pid": pid, "cgroup": box["cgroup"]}

    def _take_spare(self, box: dict[str, Any]) -> _Spare | None:
        spare, self.spare = self.spare, None
        if spare is not None and spare.tmp_mb != box["tmp_mb"]:
            self._discard(spare)
            return None
        return spare

    def _hand_over(self, spare: _Spare, request: dict[str, Any], box: dict[str, Any]) -> bool:
        """Give `request` to the spare; False (the spare discarded) if it cannot take it."""
        try:
            spare.group.limit(box["memory_mb"], box["pids_max"])
            box["cgroup"] = _describe(spare.group)
            data = json.dumps(request).encode()
            while data:
                data = data[os.write(spare.requests, data) :]
            os.close(spare.requests)
            return True
        except OSError:
            self._discard(spare)
            return False

    def _discard(self, spare: _Spare) -> None:
        with contextlib.suppress(OSError):
            os.close(spare.requests)  # EOF: it exits (reaped, its group removed, as any)
        with contextlib.suppress(ProcessLookupError):
            os.kill(spare.pid, signal.SIGKILL)

    def replenish(self, tmp_mb: int, in_child: Callable[[], None]) -> None:
        """Fork a new spare if there is none (after a sandboxed request was answered)."""
        if self.parent is None or self.spare is not None:
            return
        box: dict[str, Any] = {"tmp_mb": tmp_mb}
        try:
            group = sandbox.Cgroup.create(
                f"spare-{next(self._spares)}", _SPARE_MEMORY_MB, _SPARE_PIDS, parent=self.parent
            )
        except OSError as exc:
            print(f"agentform zygote: no spare sandbox: {exc}", file=sys.stderr)
            return
        box["cgroup"] = _describe(group)
        read_end, write_end = os.pipe()
        try:
            sandbox.prepare_pid_namespace()
            pid = os.fork()
            if pid == 0:
                in_child()
                os.close(write_end)
                _run_spare(read_end, self.zygote, self.preloaded, self.read_only, box)
            sandbox.restore_pid_namespace()
        except BaseException:
            os.close(write_end)
            group.remove()
            raise
        finally:
            os.close(read_end)
        self.groups[pid] = group
        self.spare = _Spare(pid, group, write_end, tmp_mb)

    def close(self) -> None:
        """On a clean stop (the host stopped its workers first): stop the spare, then remove
        every group under the parent and the parent itself, so nothing is left behind."""
        spare, self.spare = self.spare, None
        if spare is not None:
            self._discard(spare)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(spare.pid, 0)
        if self.parent is not None:
            try:
                sandbox.Cgroup.sweep(self.parent, remove_parent=True)
            except OSError as exc:
                print(f"agentform zygote: cgroups under {self.parent}: {exc}", file=sys.stderr)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and self.spare.pid == pid:
                with contextlib.suppress(OSError):
                    os.close(self.spare.requests)
                self.spare = None
            message: dict[str, Any] = {"exited": pid, "code": os.waitstatus_to_exitcode(status)}
            group = self.groups.pop(pid, None)
            if group is not None:
                try:
                    # Read before the group goes: the host reports an OOM-killed worker.
                    message["oom"] = group.oom_killed()
                    group.remove()  # its PID 1 is gone: the kernel killed the rest already
                except OSError as exc:
                    print(f"agentform zygote: cgroup {group.name}: {exc}", file=sys.stderr)
            _send(message)


def main() -> None:
    parser = argparse.ArgumentParser(description="the worker zygote (started by the host)")
    parser.add_argument("--cgroup-parent", help="sandbox workers, with cgroups under this one")
    args = parser.parse_args()
    host = os.getppid()
    _die_with(host)
    # The host stops the zygote (and its workers first): a Ctrl-C or a SIGTERM sent to the
    # host's process group must not take it away while the host shuts down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    forker = _Forker(args.cgroup_parent, _preload())
    # SIGCHLD wakes the selector through this pipe, so exits are reported at once.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "signal")

    def in_child() -> None:
        selector.close()
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)

    _send({"ready": forker.zygote})
    pending = b""
    spare_tmp_mb: int | None = None  # a spare is due, once the zygote has been quiet a while
    while True:
        events = selector.select(_SPARE_AFTER_IDLE_S if spare_tmp_mb is not None else None)
        if not events and spare_tmp_mb is not None:
            forker.replenish(spare_tmp_mb, in_child)
            spare_tmp_mb = None
        for key, _ in events:
            if key.data == "signal":
                os.read(wake_r, 512)
                forker.reap()
                continue
            chunk = os.read(0, 65536)
            if not chunk:  # the host closed the pipe: it is gone or stopping
                forker.close()
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                try:
                    reply = forker.fork(request, in_child)
                except (OSError, ValueError) as exc:
                    _send({"id": request["id"], "error": f"cannot start the worker: {exc}"})
                    continue
                _send({"id": request["id"], **reply})
                if "sandbox" in request:
                    spare_tmp_mb = request["sandbox"]["tmp_mb"]


if __name__ == "__main__":
    main()
