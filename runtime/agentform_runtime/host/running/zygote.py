"""The zygote: one pre-initialised process that forks every worker.

Starting a worker by exec costs an interpreter start plus the imports of `awslambdaric` and
the workload runtime's dependencies (pydantic, httpx, jsonschema), most of a cold start. The
zygote pays for them once; each worker is a fork that then loads only its own artifact. A
worker is still one process per Lambda sandbox: it gets its own environment, working
directory and log, runs AWS's runtime client against its own Runtime API, and the handler
module (user code) is imported in the worker, never in the zygote, so init runs per worker
as on Lambda.

The zygote is single-threaded (forking a threaded process is unsafe) and speaks JSON lines:
on stdin `{"id", "task_root", "handler", "env", "log"}`; on stdout `{"id", "pid"}` or
`{"id", "error"}` for each request, and `{"exited": pid, "code": n}` when a worker ends.
It imports nothing of the host.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import selectors
import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1
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


def _preload() -> str:
    """Import what workers share; return the digest of the runtime copy imported."""
    for module in _PRELOAD + _RUNTIME_PRELOAD:
        __import__(module)
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


def _run_worker(request: dict[str, Any], zygote: int, preloaded: str) -> None:
    """In the forked child: become the worker and never return."""
    code = 1
    try:
        os.setsid()  # its own process group: stopping the worker stops what it spawned
        _die_with(zygote)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        task_root = request["task_root"]
        os.chdir(task_root)
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path.insert(0, task_root)
        _adopt_runtime(task_root, preloaded)
        from awslambdaric import bootstrap, lambda_runtime_client

        client = lambda_runtime_client.LambdaRuntimeClient(request["env"]["AWS_LAMBDA_RUNTIME_API"])
        bootstrap.run(request["handler"], client)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def main() -> None:
    host = os.getppid()
    _die_with(host)
    # The host stops the zygote (and its workers first): a Ctrl-C or a SIGTERM sent to the
    # host's process group must not take it away while the host shuts down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    preloaded = _preload()
    zygote = os.getpid()
    # SIGCHLD wakes the selector through this pipe, so exits are reported at once.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "signal")
    _send({"ready": zygote})
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.data == "signal":
                os.read(wake_r, 512)
                _reap()
                continue
            chunk = os.read(0, 65536)
            if not chunk:  # the host closed the pipe: it is gone or stopping
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                try:
                    pid = os.fork()
                except OSError as exc:
                    _send({"id": request["id"], "error": f"fork failed: {exc}"})
                    continue
                if pid == 0:
                    selector.close()
                    signal.set_wakeup_fd(-1)
                    os.close(wake_r)
                    os.close(wake_w)
                    _run_worker(request, zygote, preloaded)
                _send({"id": request["id"], "pid": pid})


if __name__ == "__main__":
    main()
