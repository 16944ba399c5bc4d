"""Workers are sandboxed: the attacks of issue 9 (1-3), replayed against a real host.

Each attack runs as a deployed function on a host started the way users start it (root,
sandbox on), and each test asserts the attack now fails the way it should.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import psutil

from agentform_runtime.host.running.worker import WORKER_PATH
from agentform_runtime.host.running.zygote import WORKER_NICENESS
from tests.support.hosts import RunningHost
from tests.support.polling import wait_until
from tests.support.runtime_clients import IdleWorker
from tests.support.workloads import (
    PID_FUNCTION,
    deploy,
    deployment,
    function_artifact,
    setup_environment,
)

RUNTIME_API_NEXT = "/2018-06-01/runtime/invocation/next"

VICTIM = """
def main(question: str = "") -> dict:
    return {"answer": "from the victim", "question": question}
"""

# Everything a hostile function tries, reported back as data.
PROBE = """
import http.client, os

RUNTIME_API_NEXT = "/2018-06-01/runtime/invocation/next"


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError as exc:
        return type(exc).__name__


def main(state_dir: str = "", runtime_api: str = "", artifact_dir: str = "") -> dict:
    found = {"pid": os.getpid(), "uid": os.getuid(), "processes": {}, "path": os.environ["PATH"]}
    found["own_environ"] = _read("/proc/self/environ")
    found["niceness"] = os.nice(0)
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            found["processes"][pid] = _read(f"/proc/{pid}/environ")
    found["state_dir"] = {
        name: _read(os.path.join(state_dir, name))
        for name in ("admin-token", "secret.key", "state.db")
    }
    found["state_dir_listing"] = _read(state_dir) if state_dir else ""
    found["other_artifact"] = os.path.exists(artifact_dir) if artifact_dir else None
    if runtime_api:
        host, port = runtime_api.split(":")
        try:
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            connection.request("GET", RUNTIME_API_NEXT)
            response = connection.getresponse()
            found["runtime_api"] = f"HTTP {response.status}: {response.read()[:200]!r}"
        except Exception as exc:  # noqa: BLE001 - what failed is the finding
            found["runtime_api"] = type(exc).__name__
    return found
"""


def _instance_pid(admin: httpx.Client, name: str) -> int:
    [instance] = wait_until(lambda: deployment(admin, name)["instances"])
    return int(instance["pid"])


def _runtime_api_of(worker: int, host: RunningHost) -> str:
    """The Runtime API address the sandboxed worker (PID 2 under init `worker`) talks to, as
    the host's network table shows it: the loopback peer that is not the host's own port."""
    for process in psutil.Process(worker).children(recursive=True):
        for connection in process.net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port != host.port:
                return f"{connection.raddr.ip}:{connection.raddr.port}"
    raise AssertionError(f"worker {worker} has no Runtime API connection")


def test_a_worker_cannot_take_or_answer_another_workers_invocations(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "victim", VICTIM), "victim").raise_for_status()
    deploy(admin, function_artifact(tmp_path, "probe", PROBE), "probe").raise_for_status()
    victim_api = wait_until(lambda: _runtime_api_of(_instance_pid(admin, "victim"), host))
    run = host.client(key)

    # Attack 1: long-poll the victim's Runtime API for its next invocation.
    stolen = run.post("/run/development/functions/probe", json={"runtime_api": victim_api})
    assert stolen.status_code == 200, stolen.text
    # The host resets the connection before reading a byte: neither /next nor a posted
    # answer can get through.
    assert stolen.json()["runtime_api"] in ("RemoteDisconnected", "ConnectionResetError")

    answered = run.post("/run/development/functions/victim", json={"question": "q"})
    assert answered.status_code == 200
    assert answered.json() == {"answer": "from the victim", "question": "q"}
    log = (host.state_dir / "host.log").read_text()
    assert "Runtime API on port" in log and "refused a connection" in log


def test_a_worker_sees_no_other_process_no_state_dir_and_no_other_artifact(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    secret = f"s3cret-{uuid.uuid4().hex}"
    admin.put(
        "/v1/connections/db", json={"provider": "generic", "secrets": {"password": secret}}
    ).raise_for_status()
    holder = deploy(
        admin, function_artifact(tmp_path, "holder", VICTIM), "holder", connections=["db"]
    )
    assert holder.status_code == 201, holder.text
    deploy(admin, function_artifact(tmp_path, "probe", PROBE), "probe").raise_for_status()
    holder_dir = Path(deployment(admin, "holder")["settings"]["artifact"].removeprefix("sha256:"))

    # Attack 2: other workers' environments, the host's keys, another artifact.
    found = (
        host.client(key)
        .post(
            "/run/development/functions/probe",
            json={
                "state_dir": str(host.state_dir),
                "artifact_dir": str(host.state_dir / "artifacts" / "unpacked" / holder_dir),
            },
        )
        .json()
    )
    text = json.dumps(found)
    assert secret not in text and host.token not in text
    # PID 1 is the worker's own init, and it is the only other process in its namespace.
    assert found["pid"] == 2 and set(found["processes"]) == {"1"}
    assert found["uid"] != 0
    assert found["state_dir"] == {
        "admin-token": "FileNotFoundError",
        "secret.key": "FileNotFoundError",
        "state.db": "FileNotFoundError",
    }
    assert found["other_artifact"] is False
    # Lambda's kind of PATH, not the host's (which names the host's own tool directories).
    assert found["path"] == WORKER_PATH != os.environ["PATH"]
    assert os.environ["PATH"] not in found["own_environ"]
    # Below the host in the scheduler (the host runs at this process's niceness).
    assert found["niceness"] == min(os.nice(0) + WORKER_NICENESS, 19)


# Reads its own memory (a fork of the zygote, as every worker) for what follows `prefix`.
MEMORY_PROBE = """
import re


def main(prefix: str = "") -> dict:
    found = set()
    pattern = re.compile(re.escape(prefix.encode()) + rb"[0-9a-f]{32}")
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            found.update(m.decode() for m in pattern.findall(data))
    return {"found": sorted(found)}
"""


def test_a_worker_cannot_read_another_workers_secret_from_the_zygotes_memory(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    prefix = "zyg0te-leak-"
    secret = prefix + uuid.uuid4().hex
    admin.put(
        "/v1/connections/db", json={"provider": "generic", "secrets": {"password": secret}}
    ).raise_for_status()
    holder = deploy(
        admin, function_artifact(tmp_path, "holder", VICTIM), "holder", connections=["db"]
    )
    assert holder.status_code == 201, holder.text
    # Forked after the holder's worker: it inherits whatever the zygote kept of that request.
    deploy(admin, function_artifact(tmp_path, "probe", MEMORY_PROBE), "probe").raise_for_status()

    found = host.client(key).post("/run/development/functions/probe", json={"prefix": prefix})
    assert found.status_code == 200, found.text
    assert secret not in found.json()["found"]
    # The holder itself still gets its connection.
    assert host.client(key).post("/run/development/functions/holder", json={}).status_code == 200


CHILD_HOG = """
import subprocess, sys

def main(megabytes: int = 600) -> dict:
    # The child writes every page, so the memory is really used.
    child = subprocess.run(
        [sys.executable, "-c", f"data = b'x' * ({megabytes} * 1024 * 1024)"],
        capture_output=True,
    )
    return {"child_exit": child.returncode}
"""


def test_a_child_over_the_memory_limit_fails_the_invocation(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(
        admin, function_artifact(tmp_path, "hog", CHILD_HOG), "hog", memory_mb=256
    ).raise_for_status()
    run = host.client(key)
    small = run.post("/run/development/functions/hog", json={"megabytes": 16})
    assert small.status_code == 200 and small.json() == {"child_exit": 0}

    # Attack 3a: a child allocates 600 MB under a 256 MB limit.
    response = run.post("/run/development/functions/hog", json={"megabytes": 600})
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "OutOfMemory" and "memory limit of 256 MB" in error["message"]
    assert "children counted" in error["message"]
    request_id = response.headers["x-agentform-request-id"]
    record = admin.get(f"/v1/executions/{request_id}").json()
    assert record["status"] == "error" and record["error_class"] == "OutOfMemory"
    # The worker was recycled; the next call runs on a fresh one.
    assert run.post("/run/development/functions/hog", json={"megabytes": 16}).status_code == 200


SPAWNER = """
import subprocess, sys, time

def main(marker: str, hold_s: float = 0) -> dict:
    sleeper = f"import time; time.sleep(3600)  # {marker}"
    # A plain child, and a grandchild in a session of its own (as a daemon would be).
    subprocess.Popen([sys.executable, "-c", sleeper])
    subprocess.Popen(
        [sys.executable, "-c", f"import os, subprocess, sys; os.setsid(); "
         f"subprocess.Popen([sys.executable, '-c', {sleeper!r}], start_new_session=True)"],
    ).wait()
    time.sleep(hold_s)
    return {"spawned": True}
"""


def _with_marker(marker: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in process.info["cmdline"] or []):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def _spawn(run: httpx.Client, marker: str, hold_s: float = 0) -> threading.Thread:
    """Call the spawner in the background; return once its two sleepers are running."""

    def call() -> None:
        # The call itself may fail (a timeout, a killed host): only its processes matter.
        with contextlib.suppress(httpx.HTTPError):
            run.post(
                "/run/development/functions/spawner", json={"marker": marker, "hold_s": hold_s}
            )

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    wait_until(lambda: len(_with_marker(marker)) == 2, timeout=30)
    return thread


def test_processes_a_function_starts_do_not_outlive_it(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(
        admin, function_artifact(tmp_path, "spawner", SPAWNER), "spawner", timeout_s=3
    ).raise_for_status()
    run = host.client(key, timeout=60)

    # Attack 3b: a plain child and a setsid grandchild outlive the invocation...
    marker = uuid.uuid4().hex
    response = run.post("/run/development/functions/spawner", json={"marker": marker})
    assert response.status_code == 200
    wait_until(lambda: not _with_marker(marker))

    # ... or the worker, recycled after a timeout while they run.
    marker = uuid.uuid4().hex
    _spawn(run, marker, hold_s=30).join(timeout=60)
    wait_until(lambda: not _with_marker(marker))


def test_nothing_a_function_started_outlives_a_kill_9_of_the_host(tmp_path: Path) -> None:
    host = RunningHost(tmp_path / "state").start()
    try:
        admin = host.admin()
        key = setup_environment(admin)
        deploy(
            admin, function_artifact(tmp_path, "spawner", SPAWNER), "spawner", timeout_s=60
        ).raise_for_status()
        worker = _instance_pid(admin, "spawner")
        marker = uuid.uuid4().hex
        _spawn(host.client(key, timeout=60), marker, hold_s=60)
        assert host.process is not None
        os.kill(host.process.pid, signal.SIGKILL)  # the host alone, not its process group
        host.process.wait(timeout=30)
        wait_until(lambda: not _with_marker(marker) and not psutil.pid_exists(worker))
    finally:
        host.stop()


def _modes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode)
        for path in [root, *root.rglob("*")]
        if not path.is_symlink()
    }


def test_the_state_dir_is_private(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    admin.put(
        "/v1/connections/db", json={"provider": "generic", "secrets": {"password": "p"}}
    ).raise_for_status()
    deploy(admin, function_artifact(tmp_path, "pid", PID_FUNCTION), "pid").raise_for_status()
    assert host.client(key).post("/run/development/functions/pid", json={}).status_code == 200

    modes = _modes(host.state_dir)
    assert modes["."] == 0o700
    for name, mode in modes.items():
        path = host.state_dir / name
        # Code, readable by the workers' group only through each one's own mount (a cached
        # .pyc is a hard link of one in an unpacked copy: the same file, in a 0700 directory).
        if name.startswith("artifacts/unpacked/") or (
            name.startswith("artifacts/bytecode/") and path.is_file()
        ):
            assert mode & 0o007 == 0, (name, oct(mode))
        elif path.is_dir():
            assert mode == 0o700, (name, oct(mode))
        else:
            assert mode == 0o600, (name, oct(mode))
    for required in ("state.db", "admin-token", "secret.key", "logs/development/functions/pid.log"):
        assert modes[required] == 0o600, required


def test_no_sandbox_is_announced_on_every_start(tmp_path: Path) -> None:
    host = RunningHost(tmp_path / "state", extra_args=("--no-sandbox",))
    host.start()
    try:
        admin = host.admin()
        key = setup_environment(admin)
        artifact = function_artifact(tmp_path, "pid", PID_FUNCTION)
        deploy(admin, artifact, "pid").raise_for_status()
        served = host.client(key).post("/run/development/functions/pid", json={})
        # Unsandboxed, the worker is a plain process of the host's: its pid is the host's.
        [instance] = deployment(admin, "pid")["instances"]
        assert served.status_code == 200 and served.json()["pid"] == instance["pid"]
    finally:
        host.stop()
    host.start()
    host.stop()
    log = (host.state_dir / "host.log").read_text()
    assert log.count("--no-sandbox: workers run unsandboxed") == 2
    assert log.count("NOT sandboxed (--no-sandbox)") == 2


def test_serve_refuses_to_start_when_the_kernel_refuses_the_sandbox(tmp_path: Path) -> None:
    # In a user namespace we are root only in name: the kernel refuses to switch workers to
    # their own (unmapped) uids, so the sandbox cannot be built.
    serve = [sys.executable, "-m", "agentform", "serve", "--port", "0"]
    state = tmp_path / "state"
    refused = subprocess.run(
        ["unshare", "--user", "--map-root-user", *serve, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "error: cannot sandbox workers:" in refused.stderr
    assert "--no-sandbox" in refused.stderr
    assert not (state / "host.url").exists()


def test_a_clean_stop_leaves_no_cgroup_behind(tmp_path: Path) -> None:
    from agentform_runtime.host.running.worker import Isolation
    from agentform_runtime.host.sandbox import Cgroup

    host = RunningHost(tmp_path / "state").start()
    parent = Isolation.for_state_dir(host.state_dir).cgroup_parent
    try:
        admin = host.admin()
        key = setup_environment(admin)
        deploy(admin, function_artifact(tmp_path, "pid", PID_FUNCTION), "pid").raise_for_status()
        assert host.client(key).post("/run/development/functions/pid", json={}).status_code == 200
        group = Cgroup.at("probe-name", parent=parent)
        assert any(d.parent.is_dir() for d in group.dirs)  # the worker's parent group exists
    finally:
        host.stop()
    assert not any(d.parent.exists() for d in group.dirs)


def test_a_freed_worker_uid_is_handed_out_again_last() -> None:
    from agentform_runtime.host.running.worker import Isolation, Zygote

    zygote = Zygote(Isolation(cgroup_parent="unused", uids=range(100, 103), gid=99))
    first = zygote.lease_uid()
    zygote.release_uid(first)
    # The next workers get the uids nobody had; the freed one comes back after them.
    assert [zygote.lease_uid() for _ in range(3)] == [101, 102, first]


def test_a_runtime_api_connection_does_not_outlive_its_listener() -> None:
    """A connection accepted while a worker lived is cut when its listener closes: it can
    never reach the next listener given the same port (and maybe the same uid)."""
    import asyncio

    from agentform_runtime.host.running.runtime_api import SECRETS_PATH, RuntimeApi

    request = f"GET {SECRETS_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

    async def attack() -> bytes:
        api = RuntimeApi()
        port = await api.listen(IdleWorker({"AGENTFORM_CONNECTIONS": "the-secret"}))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        assert b"the-secret" in await reader.readuntil(b"the-secret")
        api.close(port)
        with contextlib.suppress(ConnectionError):
            writer.write(request)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), 30)
        return b""

    assert asyncio.run(attack()) == b""


FILE_PROBE = """
import os, resource


def main() -> dict:
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    offset = 512 * 1024 * 1024  # the default /tmp size: the limit's floor
    fd = os.open("/tmp/sparse", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"x", offset)
        written = "written"
    except OSError as exc:
        written = os.strerror(exc.errno)
    finally:
        os.close(fd)
        os.unlink("/tmp/sparse")
    return {"limit": limit, "past_the_limit": written}
"""


def test_a_worker_cannot_write_a_file_or_log_past_its_size_limit(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "files", FILE_PROBE), "files").raise_for_status()
    found = host.client(key).post("/run/development/functions/files", json={})
    assert found.status_code == 200, found.text
    # max(2 x the default 10 MB log rotation size, the 512 MB /tmp): the /tmp size.
    assert found.json() == {"limit": 512 * 1024 * 1024, "past_the_limit": "File too large"}


def test_a_clean_stop_removes_the_hosts_cgroups(tmp_path: Path) -> None:
    from agentform_runtime.host import sandbox
    from agentform_runtime.host.running.worker import Isolation

    host = RunningHost(tmp_path / "state").start()
    try:
        admin = host.admin()
        key = setup_environment(admin)
        deploy(admin, function_artifact(tmp_path, "victim", VICTIM), "victim").raise_for_status()
        assert host.client(key).post("/run/development/functions/victim", json={}).is_success
        version = sandbox.cgroup_version()
        assert version is not None
        parent = Isolation.for_state_dir(host.state_dir).cgroup_parent
        dirs = sandbox._parent_dirs(parent, version)
        assert all(d.is_dir() for d in dirs)
    finally:
        host.stop()
    assert not any(d.exists() for d in dirs)
