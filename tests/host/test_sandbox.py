"""The worker sandbox: PID/mount namespaces, private root, unprivileged uid, cgroups.

Real forks, real namespaces and cgroups (the tests run as root). A sandboxed child reports
what it sees as one JSON line over a pipe and leaves with os._exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyseccomp
import pytest

from agentform_runtime.host import sandbox
from agentform_runtime.host.sandbox import Cgroup, SandboxSpec
from tests.support.polling import wait_until

# Unprivileged ids with no passwd entry, as the host hands them out.
UID = 64_201
GID = 64_201
TIMEOUT_S = 60.0

Body = Callable[[], dict[str, Any]]


@dataclasses.dataclass
class Child:
    """A forked child: its pid, a pidfd to wait on, and the read end of its result pipe."""

    pid: int
    results: int
    pidfd: int
    status: int | None = None

    def result(self) -> dict[str, Any] | None:
        """The child's JSON line, or None if it closed the pipe (died) without one."""
        data = b""
        deadline = time.monotonic() + TIMEOUT_S
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0 and select.select([self.results], [], [], left)[0], "no result"
            chunk = os.read(self.results, 65536)
            if not chunk:
                return None
            data += chunk
        report: dict[str, Any] = json.loads(data)
        assert "error" not in report, report["error"]
        return report

    def wait(self) -> int:
        """Wait (bounded) for the child to exit; its wait status."""
        if self.status is None:
            ready = select.select([self.pidfd], [], [], TIMEOUT_S)[0]
            assert ready, f"child {self.pid} did not exit within {TIMEOUT_S}s"
            self.status = os.waitpid(self.pid, 0)[1]
        return self.status

    def kill(self) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        self.kill()
        self.wait()
        os.close(self.results)
        os.close(self.pidfd)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    """Fork children that run a body (sandboxed unless spec is None); kills them at the end."""
    children: list[Child] = []

    def _spawn(
        spec: SandboxSpec | None, body: Body, *, linger: bool = False, new_pid_ns: bool = True
    ) -> Child:
        read_end, write_end = os.pipe()
        if new_pid_ns:
            sandbox.prepare_pid_namespace()
        try:
            pid = os.fork()
        except BaseException:
            sandbox.restore_pid_namespace()
            raise
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(read_end)
                if spec is not None:
                    sandbox.enter(spec, keep_fds=[write_end])
                report = body()
                os.write(write_end, (json.dumps(report) + "\n").encode())
                code = 0
                while linger:
                    signal.pause()
            except BaseException:
                error = {"error": traceback.format_exc()}
                os.write(write_end, (json.dumps(error) + "\n").encode())
            finally:
                os._exit(code)
        if new_pid_ns:
            # Later forks of the test process (subprocess, other tests) stay ordinary.
            sandbox.restore_pid_namespace()
        os.close(write_end)
        child = Child(pid, read_end, os.pidfd_open(pid))
        children.append(child)
        return child

    yield _spawn
    for child in children:
        child.close()


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    root.mkdir()
    (root / "handler.py").write_text("def handle(event, context):\n    return event\n")
    # Owned by the worker's uid, so only the read-only mount stops it from writing there.
    for path in (root, root / "handler.py"):
        os.chown(path, UID, GID)
    root.chmod(0o755)
    return root


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A stand-in for the host's state dir, beside the real one (~/.agentform), not in /tmp."""
    path = Path(tempfile.mkdtemp(prefix=".agentform-sandbox-test-", dir=Path.home()))
    (path / "admin-token").write_text("secret")
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def spec(task_root: Path) -> SandboxSpec:
    return SandboxSpec(task_root=task_root, uid=UID, gid=GID, tmp_mb=16, hostname="sandbox-test")


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    """A parent group of its own, so hosts running meanwhile are never swept."""
    parent = f"agentform-test-{uuid.uuid4().hex[:8]}"
    try:
        yield parent
    finally:
        Cgroup.sweep(parent, remove_parent=True)


def test_sandboxed_worker_sees_only_its_sandbox(
    spawn: Callable[..., Child], spec: SandboxSpec, state_dir: Path
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_S)
    port = listener.getsockname()[1]
    secret = state_dir / "admin-token"
    site_packages = Path(sys.prefix) / "lib" / "python3.11" / "site-packages"
    # An fd the forking process holds on the state dir must not survive into the sandbox.
    leaked = os.open(secret, os.O_RDONLY)

    def body() -> dict[str, Any]:
        def write_error(path: str) -> str | None:
            try:
                Path(path).write_text("x")
            except OSError as exc:
                return errno.errorcode.get(exc.errno or 0, str(exc.errno))
            return None

        try:
            secret_text: str | None = secret.read_text()
        except OSError:
            secret_text = None
        try:
            os.fstat(leaked)
            leaked_fd_open = True
        except OSError:
            leaked_fd_open = False
        Path("/tmp/scratch").write_text("scratch")
        Path("/dev/shm/scratch").write_text("scratch")
        Path("/dev/null").write_text("discarded")
        # Lazy imports read the interpreter's files through the read-only binds.
        for name in [
            m for m in sys.modules if m in ("colorsys", "httpx") or m.startswith("httpx.")
        ]:
            del sys.modules[name]
        import colorsys

        import httpx

        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as conn:
            conn.sendall(b"hi")
            reply = conn.recv(2)
        status = dict(
            line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines()
        )
        return {
            "pid": os.getpid(),
            "proc_pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "state_dir_exists": state_dir.exists(),
            "secret": secret_text,
            "leaked_fd_open": leaked_fd_open,
            "task": (Path("/var/task") / "handler.py").read_text(),
            "cwd": os.getcwd(),
            "write_errors": {
                path: write_error(path)
                for path in (
                    "/var/task/new.py",
                    "/new",
                    "/etc/new",
                    "/var/new",
                    f"{sys.prefix}/new",
                )
            },
            "tmp": Path("/tmp/scratch").read_text(),
            "urandom": len(Path("/dev/urandom").open("rb").read(16)),
            "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],
            "cap_eff": status["CapEff"].strip(),
            "no_new_privs": status["NoNewPrivs"].strip(),
            "hostname": socket.gethostname(),
            "core": list(resource.getrlimit(resource.RLIMIT_CORE)),
            "colorsys": colorsys.__file__,
            "httpx": httpx.__file__,
            "reply": reply.decode(),
        }

    child = spawn(spec, body)
    os.close(leaked)
    conn, peer = listener.accept()
    with conn, listener:
        conn.settimeout(TIMEOUT_S)
        assert conn.recv(2) == b"hi"
        # The host's check on its Runtime API listener: the connection is the worker's uid.
        assert sandbox.peer_uid(*peer) == UID
        assert sandbox.peer_uid(*peer, server=listener.getsockname()) == UID
        assert sandbox.peer_uid(*peer, server=("127.0.0.1", port + 1)) is None
        conn.sendall(b"ok")
        report = child.result()
    assert os.waitstatus_to_exitcode(child.wait()) == 0
    assert report is not None

    assert report["pid"] == 1
    assert report["proc_pids"] == [1]
    assert report["state_dir_exists"] is False
    assert report["secret"] is None
    assert report["leaked_fd_open"] is False
    assert secret.read_text() == "secret"  # still there on the host
    assert report["task"].startswith("def handle")
    assert report["cwd"] == "/var/task"
    assert report["write_errors"]["/var/task/new.py"] == "EROFS"
    assert all(report["write_errors"].values()), report["write_errors"]
    assert not (spec.task_root / "new.py").exists()
    assert report["tmp"] == "scratch"
    assert report["urandom"] == 16
    assert report["ids"] == [UID, UID, GID, GID, []]
    assert int(report["cap_eff"], 16) == 0
    assert report["no_new_privs"] == "1"
    assert report["hostname"] == "sandbox-test"
    assert socket.gethostname() != "sandbox-test"
    assert report["core"] == [0, 0]
    assert report["colorsys"].startswith(sys.base_prefix)
    assert report["httpx"].startswith(str(site_packages))
    assert report["reply"] == "ok"


def test_setsid_grandchild_dies_with_pid_1(
    spawn: Callable[..., Child], spec: SandboxSpec, cgroup_parent: str
) -> None:
    group = Cgroup.create("setsid", memory_mb=256, pids_max=32, parent=cgroup_parent)

    def body() -> dict[str, Any]:
        sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True)
        return {"inner_pid": sleeper.pid}

    child = spawn(dataclasses.replace(spec, cgroup=group), body, linger=True)
    report = child.result()
    assert report is not None

    def worker_and_sleeper() -> list[int]:
        pids = group.pids()
        return pids if len(pids) == 2 else []

    members = wait_until(worker_and_sleeper)
    (grandchild,) = set(members) - {child.pid}
    assert os.getsid(grandchild) == grandchild != os.getsid(child.pid)
    nspid = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{grandchild}/status").read_text().splitlines()
    )["NSpid"].split()
    assert nspid == [str(grandchild), str(report["inner_pid"])]

    child.kill()
    assert os.WTERMSIG(child.wait()) == signal.SIGKILL
    wait_until(lambda: not group.pids())
    assert not Path(f"/proc/{grandchild}").exists()


def test_memory_limit_oom_kills_the_worker(
    spawn: Callable[..., Child], spec: SandboxSpec, cgroup_parent: str
) -> None:
    group = Cgroup.create("oom", memory_mb=64, pids_max=16, parent=cgroup_parent)
    assert not group.oom_killed()

    def body() -> dict[str, Any]:
        data = b"\x01" * (300 * 1024 * 1024)  # written, so every page is charged
        return {"allocated": len(data)}

    child = spawn(dataclasses.replace(spec, cgroup=group), body)
    assert child.result() is None
    status = child.wait()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert group.oom_killed()
    assert 0 < group.peak_memory_mb() <= 64


def test_pids_max_stops_a_fork_bomb(
    spawn: Callable[..., Child], spec: SandboxSpec, cgroup_parent: str
) -> None:
    group = Cgroup.create("forkbomb", memory_mb=256, pids_max=8, parent=cgroup_parent)

    def body() -> dict[str, Any]:
        forked = 0
        for _ in range(64):  # bounded: the limit must stop it long before
            try:
                pid = os.fork()
            except BlockingIOError as exc:
                return {"forked": forked, "errno": exc.errno}
            if pid == 0:
                while True:
                    signal.pause()
            forked += 1
        return {"forked": forked, "errno": None}

    child = spawn(dataclasses.replace(spec, cgroup=group), body, linger=True)
    report = child.result()
    assert report is not None
    assert report["errno"] == errno.EAGAIN
    assert 1 <= report["forked"] < 8
    assert len(group.pids()) == report["forked"] + 1
    group.remove()
    assert os.WTERMSIG(child.wait()) == signal.SIGKILL
    assert not any(d.exists() for d in group.dirs)


def test_prepare_pid_namespace_for_consecutive_forks(spawn: Callable[..., Child]) -> None:
    own = os.readlink("/proc/self/ns/pid")

    def body() -> dict[str, Any]:
        return {"pid": os.getpid(), "ppid": os.getppid(), "ns": os.readlink("/proc/self/ns/pid")}

    first, second = (spawn(None, body).result() for _ in range(2))
    assert first is not None and second is not None
    assert first["pid"] == second["pid"] == 1
    assert first["ppid"] == second["ppid"] == 0  # the parent is outside the namespace
    assert len({first["ns"], second["ns"], own}) == 3
    assert os.readlink("/proc/self/ns/pid") == own  # the caller never moved

    # Forks without prepare_pid_namespace() are ordinary again.
    plain = spawn(None, body, new_pid_ns=False).result()
    assert plain is not None
    assert plain["pid"] != 1 and plain["ns"] == own


def test_worker_dies_with_its_zygote(spec: SandboxSpec, cgroup_parent: str) -> None:
    group = Cgroup.create("orphan", memory_mb=256, pids_max=8, parent=cgroup_parent)
    read_end, write_end = os.pipe()
    zygote = os.fork()
    if zygote == 0:  # pragma: no cover - the zygote stand-in
        try:
            os.close(read_end)
            sandbox.prepare_pid_namespace()
            worker = os.fork()
            if worker == 0:
                sandbox.enter(dataclasses.replace(spec, cgroup=group), keep_fds=[write_end])
                os.write(write_end, b"ready\n")
                while True:
                    signal.pause()
            os.write(write_end, f"{worker}\n".encode())
            while True:
                signal.pause()
        finally:
            os._exit(1)
    os.close(write_end)
    try:
        lines: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(lines) < 2 and select.select([read_end], [], [], deadline - time.monotonic())[0]:
            lines.extend(os.read(read_end, 4096).splitlines())
        assert b"ready" in lines, lines
        (worker,) = (int(line) for line in lines if line.isdigit())
        assert group.pids() == [worker]
    finally:
        os.kill(zygote, signal.SIGKILL)
        os.waitpid(zygote, 0)
        os.close(read_end)
    # The parent-death signal survived the uid change: the orphaned worker is killed.
    wait_until(lambda: not group.pids())


def test_enter_exits_if_the_parent_is_not_the_expected_one(
    spawn: Callable[..., Child], spec: SandboxSpec
) -> None:
    def body() -> dict[str, Any]:
        sandbox.enter(spec, parent_pid=1)  # we were forked by the test, not by pid 1
        return {"entered": True}

    child = spawn(None, body)
    assert child.result() is None
    assert os.waitstatus_to_exitcode(child.wait()) == 1


def test_sweep_removes_leftover_groups(spawn: Callable[..., Child], cgroup_parent: str) -> None:
    first = Cgroup.create("leftover-a", memory_mb=64, pids_max=8, parent=cgroup_parent)
    second = Cgroup.create("leftover-b", memory_mb=64, pids_max=8, parent=cgroup_parent)
    child = spawn(None, lambda: {}, linger=True, new_pid_ns=False)
    assert child.result() == {}
    first.add(child.pid)
    assert first.pids() == [child.pid]

    assert Cgroup.sweep(cgroup_parent) == ["leftover-a", "leftover-b"]
    assert os.WTERMSIG(child.wait()) == signal.SIGKILL
    assert not any(d.exists() for d in (*first.dirs, *second.dirs))
    first.remove()  # already gone: no error


def test_cgroup_limits_are_written(cgroup_parent: str) -> None:
    group = Cgroup.create("limits", memory_mb=96, pids_max=12, parent=cgroup_parent)
    version = sandbox.cgroup_version()
    assert group.version == version
    if version == 1:
        memory, pids = group.dirs
        assert (memory / "memory.limit_in_bytes").read_text().strip() == str(96 << 20)
        assert (pids / "pids.max").read_text().strip() == "12"
    else:
        (directory,) = group.dirs
        assert (directory / "memory.max").read_text().strip() == str(96 << 20)
        assert (directory / "pids.max").read_text().strip() == "12"
    # Creating it again (a leftover of a crashed host) starts over with the new limits.
    again = Cgroup.create("limits", memory_mb=64, pids_max=4, parent=cgroup_parent)
    assert again == group and again.pids() == []


def test_probe_says_sandboxing_works_here(cgroup_parent: str) -> None:
    assert sandbox.probe(parent=cgroup_parent) is None


@pytest.mark.parametrize(
    ("listen", "connect"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("::", "127.0.0.1")],
    ids=["ipv4", "ipv6", "ipv4-mapped"],
)
def test_peer_uid_of_the_callers_own_connection(listen: str, connect: str) -> None:
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    with socket.create_server(
        (listen, 0), family=family, dualstack_ipv6=listen == "::"
    ) as listener:
        listener.settimeout(TIMEOUT_S)
        port = listener.getsockname()[1]
        # Only the listening socket has this local address, and listeners do not count.
        assert sandbox.peer_uid(connect, port) is None
        with socket.create_connection((connect, port), timeout=TIMEOUT_S) as client:
            conn, peer = listener.accept()
            with conn:
                assert peer[1] == client.getsockname()[1]
                assert sandbox.peer_uid(peer[0], peer[1]) == os.geteuid()


def test_default_read_only_covers_the_interpreter() -> None:
    paths = sandbox.default_read_only()
    assert Path(sys.prefix) in paths and Path(sys.base_prefix) in paths
    assert Path(sys.prefix, "lib", "python3.11", "site-packages") in paths
    assert Path("/usr") in paths
    assert all(p.exists() for p in paths)
    assert len(set(paths)) == len(paths)


def _limits(group: Cgroup) -> tuple[int, int]:
    if group.version == 1:
        memory, pids = group.dirs
        return int((memory / "memory.limit_in_bytes").read_text()), int(
            (pids / "pids.max").read_text()
        )
    (directory,) = group.dirs
    return int((directory / "memory.max").read_text()), int((directory / "pids.max").read_text())


def test_a_groups_limits_can_be_lowered_and_raised(cgroup_parent: str) -> None:
    # A spare sandbox's group is created with the largest limits, then set for its request.
    group = Cgroup.create("spare", memory_mb=10240, pids_max=1024, parent=cgroup_parent)
    group.limit(128, 16)
    assert _limits(group) == (128 << 20, 16)
    group.limit(512, 64)
    assert _limits(group) == (512 << 20, 64)
    if group.version == 1 and (group.dirs[0] / "memory.memsw.limit_in_bytes").exists():
        memsw = (group.dirs[0] / "memory.memsw.limit_in_bytes").read_text()
        assert int(memsw) == 512 << 20  # swap counted: the limit holds for swap too


def test_the_syscall_filter_refuses_what_widens_the_kernel_surface(
    spawn: Callable[..., Child], spec: SandboxSpec
) -> None:
    # Each call is one the kernel would carry out (or answer otherwise) without the filter.
    arch = pyseccomp.system_arch()
    number = {name: pyseccomp.resolve_syscall(arch, name) for name in CALLS}

    def body() -> dict[str, Any]:
        libc = ctypes.CDLL(None, use_errno=True)

        def errno_of(name: str, *args: int) -> str:
            rc = libc.syscall(ctypes.c_long(number[name]), *map(ctypes.c_long, args))
            return "ok" if rc >= 0 else errno.errorcode[ctypes.get_errno()]

        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        child = subprocess.run([sys.executable, "-c", "print('child')"], capture_output=True)
        status = dict(
            line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines()
        )
        return {
            "seccomp": status["Seccomp"].strip(),
            "unshare_user": errno_of("unshare", sandbox.CLONE_NEWUSER),
            # Invalid with CLONE_FS: without the filter EINVAL, and nothing is cloned.
            "clone_user": errno_of("clone", sandbox.CLONE_NEWUSER | CLONE_FS),
            "clone3": errno_of("clone3", 0, 0),
            "keyctl": errno_of("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
            "io_uring_setup": errno_of("io_uring_setup", 1, 0),
            "ptrace": errno_of("ptrace", PTRACE_TRACEME, 0, 0, 0),
            "thread": "ok",
            "subprocess": child.stdout.decode().strip(),
        }

    report = spawn(spec, body).result()
    assert report == {
        "seccomp": "2",
        "unshare_user": "EPERM",
        "clone_user": "EPERM",
        "clone3": "ENOSYS",
        "keyctl": "EPERM",
        "io_uring_setup": "EPERM",
        "ptrace": "EPERM",
        "thread": "ok",
        "subprocess": "child",
    }
    assert set(sandbox.DENIED_SYSCALLS) >= set(CALLS) - {"clone", "clone3"}


CALLS = ("unshare", "clone", "clone3", "keyctl", "io_uring_setup", "ptrace")
CLONE_FS = 0x200
KEYCTL_GET_KEYRING_ID = 0
KEY_SPEC_SESSION_KEYRING = -3
PTRACE_TRACEME = 0
