"""Isolation primitives for worker processes: namespaces, a private root, cgroups, a seccomp
filter.

The host starts workers from a pre-initialised "zygote" process (root, single-threaded,
outside any sandbox). Per worker the zygote calls :func:`prepare_pid_namespace` and forks;
the child calls :func:`enter`, which leaves it as PID 1 of its own PID namespace, in its own
mount/IPC/UTS namespaces, with a read-only view of the interpreter, the artifact at
``/var/task`` and a private ``/tmp``, inside the worker's :class:`Cgroup`, running as an
unprivileged uid under a seccomp filter (:data:`DENIED_SYSCALLS`). The network namespace is
shared on purpose: workers reach the host's Runtime API and the outside world over TCP;
:func:`peer_uid` lets the host check which worker (uid) is on the other end of a loopback
connection.

Everything here is Linux-only and needs root (CAP_SYS_ADMIN) in the calling process.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import functools
import ipaddress
import json
import os
import platform
import resource
import select
import shutil
import signal
import site
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Cgroup",
    "PreparedSandbox",
    "SandboxSpec",
    "cgroup_version",
    "default_read_only",
    "enter",
    "host_path",
    "peer_uid",
    "prepare",
    "prepare_pid_namespace",
    "probe",
    "restore_pid_namespace",
]

# <sched.h>, <sys/mount.h>, <sys/prctl.h>: stable kernel ABI values.
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# glibc has no pivot_root() wrapper, so it goes through syscall(2).
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]

# Where the sandboxed process's pieces appear inside it.
TASK_ROOT = Path("/var/task")
_DEV_NODES = ("null", "zero", "random", "urandom", "full")
_OLD_ROOT = "/.oldroot"
_NOFILE = 1024

# The pid (as the host's /proc numbers it) of the process that last called
# prepare_pid_namespace(). A forked child inherits it, so enter() knows which parent to expect
# even though, as PID 1 of a new namespace, its getppid() is 0.
_forking_parent: int | None = None


def _oserror(call: str) -> OSError:
    err = ctypes.get_errno()
    name = errno.errorcode.get(err, str(err))
    return OSError(err, f"{call} failed: {name} ({os.strerror(err)})")


def _check(rc: int, call: str) -> None:
    if rc != 0:
        raise _oserror(call)


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    enc = os.fsencode
    rc = _libc.mount(
        enc(source) if source is not None else None,
        enc(target),
        enc(fstype) if fstype is not None else None,
        flags,
        enc(data) if data is not None else None,
    )
    _check(rc, f"mount({source!r}, {target!r}, {fstype!r}, {flags:#x}, {data!r})")


def _prctl(option: int, arg: int, call: str) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), call)


def _pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unsupported architecture {platform.machine()}")
    rc = _libc.syscall(ctypes.c_long(nr), os.fsencode(new_root), os.fsencode(put_old))
    _check(rc, f"pivot_root({new_root!r}, {put_old!r})")


# --------------------------------------------------------------------------- system calls

# System calls a worker never needs, each of which widens the part of the kernel it can reach:
# new namespaces (an unprivileged user namespace hands out capabilities inside it, the usual
# first step of a kernel exploit), mounts, kernel keyrings, BPF, perf events, userfaultfd,
# io_uring, tracing or reading other processes, modules, clocks, swap and reboot. Most already
# fail for an unprivileged uid; the filter refuses them before the kernel looks at them, with
# the EPERM a program expects. Names an architecture lacks (iopl on arm64) are skipped.
DENIED_SYSCALLS = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "open_by_handle_at", "name_to_handle_at", "quotactl", "quotactl_fd",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog",
    "swapon", "swapoff", "reboot", "acct", "vhangup", "iopl", "ioperm", "lookup_dcookie",
)  # fmt: skip
# clone(2) is how threads and processes start, so it is refused only with a namespace flag.
_NAMESPACE_FLAGS = (
    CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWCGROUP, CLONE_NEWUSER,
    CLONE_NEWNET,
)  # fmt: skip


@functools.cache
def syscall_filter() -> bytes:
    """The seccomp program every sandboxed worker runs under: classic BPF for this machine's
    architecture, built once by libseccomp. Everything is allowed but :data:`DENIED_SYSCALLS`
    and clone(2) with a namespace flag (EPERM); clone3(2) is ENOSYS, because its flags sit
    behind a pointer a filter cannot read, and C libraries then fall back to clone(2). System
    calls of another ABI (32-bit ones on x86_64) kill the process, libseccomp's default.

    Raises OSError when libseccomp is missing (Debian's package: libseccomp2)."""
    try:
        import pyseccomp  # loads libseccomp; imported here, in the processes that build
    except RuntimeError as exc:  # "Unable to find libseccomp"
        raise OSError(errno.ENOENT, f"{exc} (Debian: apt-get install libseccomp2)") from exc
    arch = pyseccomp.system_arch()
    refused = pyseccomp.ERRNO(errno.EPERM)
    program = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        number = pyseccomp.resolve_syscall(arch, name)
        if number >= 0:
            program.add_rule(refused, number)
    for flag in _NAMESPACE_FLAGS:
        program.add_rule(refused, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    program.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        program.export_bpf(out)
        out.seek(0)
        return out.read()


class _SockFprog(ctypes.Structure):
    """<linux/filter.h>'s struct sock_fprog: a BPF program's length (in 8-byte
    instructions) and address."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _load_syscall_filter(program: bytes) -> None:
    """Put the calling (single-threaded, no_new_privs) process under `program`, for good."""
    code = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(code))
    rc = _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0)
    _check(rc, "prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)")


# --------------------------------------------------------------------------- PID namespaces


def restore_pid_namespace() -> None:
    """Make the caller's next forked children land in the caller's own PID namespace again.

    After :func:`prepare_pid_namespace`, every fork goes into the new namespace, and once its
    PID 1 exits further forks fail with ENOMEM. A caller that forks for other reasons too
    (``subprocess``) calls this right after the worker fork.
    """
    fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        # setns() to our own active namespace is always allowed and resets
        # pid_ns_for_children; it never changes the caller's own namespace.
        _check(_libc.setns(fd, CLONE_NEWPID), "setns(/proc/self/ns/pid, CLONE_NEWPID)")
    finally:
        os.close(fd)


def prepare_pid_namespace() -> None:
    """Make the calling process's next forked child PID 1 of a fresh PID namespace.

    Call it right before each ``os.fork()`` (the caller must not fork anything else in
    between). The caller stays in its own namespace: ``unshare(CLONE_NEWPID)`` only sets the
    namespace for future children. A second ``unshare`` fails with EINVAL while that setting
    differs from the caller's own namespace (checked on Linux 6.18), so it is reset first.
    """
    global _forking_parent
    restore_pid_namespace()
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    # Recorded as the host's procfs numbers us, which is what enter() reads back.
    _forking_parent = int(os.readlink("/proc/self"))


# --------------------------------------------------------------------------- cgroups


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii")


def _write(path: Path, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"opening {path}: {exc.strerror}") from exc
    try:
        os.write(fd, value.encode("ascii"))
    except OSError as exc:
        # cgroup files reject values on write(), where Python's error names no file.
        raise OSError(exc.errno, f"writing {value!r} to {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _cgroup_mounts() -> tuple[dict[str, tuple[Path, str]], tuple[Path, str] | None]:
    """v1 controller -> (mount point, mount root), and the cgroup2 mount if any."""
    v1: dict[str, tuple[Path, str]] = {}
    v2: tuple[Path, str] | None = None
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, after = pre.split(), post.split()
            if len(fields) < 5 or len(after) < 3:
                continue
            mount_root, mount_point = fields[3], Path(fields[4])
            if after[0] == "cgroup":
                for option in after[2].split(","):
                    if option in ("memory", "pids"):
                        v1[option] = (mount_point, mount_root)
            elif after[0] == "cgroup2" and v2 is None:
                v2 = (mount_point, mount_root)
    return v1, v2


def _v2_controllers(mount_point: Path) -> set[str]:
    try:
        return set(_read(mount_point / "cgroup.controllers").split())
    except OSError:
        return set()


def cgroup_version() -> int | None:
    """Which cgroup version provides both the memory and the pids controllers, or None.

    Hybrid hosts (v1 controllers plus an empty ``/sys/fs/cgroup/unified``) count as v1.
    """
    v1, v2 = _cgroup_mounts()
    if v2 is not None and {"memory", "pids"} <= _v2_controllers(v2[0]):
        return 2
    if "memory" in v1 and "pids" in v1:
        return 1
    return None


def _own_cgroup(controller: str | None) -> str:
    """The caller's cgroup path in the hierarchy of `controller` (None: the v2 hierarchy)."""
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            names = controllers.split(",") if controllers else []
            if (controller is None and not names) or controller in names:
                return path
    return "/"


def _hierarchy_dir(mount: tuple[Path, str], own: str, parent: str) -> Path:
    mount_point, mount_root = mount
    if parent.startswith("/"):
        return mount_point / parent.lstrip("/")
    # Nest under our own cgroup so limits that apply to the host apply to its workers too.
    rel = os.path.relpath(own, mount_root) if own.startswith(mount_root) else "."
    return (mount_point / rel / parent).resolve()


def _parent_dirs(parent: str, version: int) -> tuple[Path, ...]:
    """The directories of group `parent` in each hierarchy the version uses (v1: memory, pids)."""
    if not parent or ".." in Path(parent).parts:
        raise ValueError(f"invalid cgroup parent {parent!r}")
    v1, v2 = _cgroup_mounts()
    if version == 2 and v2 is not None:
        return (_hierarchy_dir(v2, _own_cgroup(None), parent),)
    if version == 1 and "memory" in v1 and "pids" in v1:
        return tuple(_hierarchy_dir(v1[c], _own_cgroup(c), parent) for c in ("memory", "pids"))
    raise OSError(errno.ENOTSUP, "no mounted cgroup hierarchy has the memory and pids controllers")


def _enable_v2_controllers(mount_point: Path, group_parent: Path) -> None:
    """Enable memory and pids for children of every group from the root down to group_parent."""
    directory = mount_point
    for part in (*group_parent.relative_to(mount_point).parts, None):
        control = directory / "cgroup.subtree_control"
        missing = {"memory", "pids"} - set(_read(control).split())
        if missing:
            try:
                _write(control, " ".join(f"+{c}" for c in sorted(missing)))
            except OSError as exc:
                # EBUSY: the group has processes of its own ("no internal processes" rule).
                raise OSError(
                    exc.errno,
                    f"{exc.strerror}; put the host in a delegated cgroup, or use a parent "
                    "group under the root (a parent starting with '/')",
                ) from exc
        if part is None:
            break
        directory = directory / part
        directory.mkdir(mode=0o755, exist_ok=True)


@dataclass(frozen=True)
class Cgroup:
    """One worker's cgroup: memory and pids limits, usage and OOM accounting, kill.

    ``dirs`` is ``(memory dir, pids dir)`` on cgroup v1 and ``(dir,)`` on v2. Processes a
    member forks or execs (even ``setsid`` ones) stay members, so they are counted and killed
    with it. The value is picklable so the host can hand it to the zygote.
    """

    name: str
    version: int
    dirs: tuple[Path, ...]

    @classmethod
    def at(cls, name: str, *, parent: str = "agentform") -> Cgroup:
        """The group `name` under `parent`, without creating or configuring it.

        `parent` is relative to the caller's own cgroup (so the host's own limits still
        apply), or to the hierarchy root when it starts with ``/``. Hosts that may run side by
        side should each use their own parent: :meth:`sweep` kills everything under it.
        """
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid cgroup name {name!r}")
        version = cgroup_version()
        if version is None:
            raise OSError(
                errno.ENOTSUP, "no mounted cgroup hierarchy has the memory and pids controllers"
            )
        return cls(name, version, tuple(d / name for d in _parent_dirs(parent, version)))

    @classmethod
    def create(
        cls, name: str, memory_mb: int, pids_max: int, *, parent: str = "agentform"
    ) -> Cgroup:
        """Create (or recreate, killing a leftover) group `name` with its limits set."""
        if memory_mb <= 0 or pids_max <= 0:
            raise ValueError("memory_mb and pids_max must be positive")
        group = cls.at(name, parent=parent)
        group.remove()
        v2_mount = _cgroup_mounts()[1]
        if group.version == 2 and v2_mount is not None:
            _enable_v2_controllers(v2_mount[0], group.dirs[0].parent)
        for directory in group.dirs:
            directory.mkdir(mode=0o755, parents=True)
        try:
            group.limit(memory_mb, pids_max)
        except BaseException:
            group.remove()
            raise
        return group

    def limit(self, memory_mb: int, pids_max: int) -> None:
        """Set the group's memory (swap included) and pids limits. Lowering the memory limit
        below what the group uses already fails (EBUSY)."""
        if memory_mb <= 0 or pids_max <= 0:
            raise ValueError("memory_mb and pids_max must be positive")
        limit = str(memory_mb * 1024 * 1024)
        if self.version == 1:
            memory, pids = self.dirs
            # v1 refuses a memory limit above the memory+swap one: order the writes so that
            # memsw never sits below memory, whichever way the limit moves.
            memsw = memory / "memory.memsw.limit_in_bytes"
            current = int(_read(memory / "memory.limit_in_bytes"))
            if memsw.exists() and int(limit) > current:
                _write(memsw, limit)
            _write(memory / "memory.limit_in_bytes", limit)
            # Without swap accounting the group could swap out instead of hitting the limit.
            if memsw.exists():
                _write(memsw, limit)
            _write(pids / "pids.max", str(pids_max))
        else:
            (directory,) = self.dirs
            _write(directory / "memory.max", limit)
            if (directory / "memory.swap.max").exists():
                _write(directory / "memory.swap.max", "0")
            _write(directory / "pids.max", str(pids_max))

    @property
    def _memory_dir(self) -> Path:
        return self.dirs[0]

    def add(self, pid: int) -> None:
        """Move process `pid` (0: the caller) into the group, in every hierarchy."""
        for directory in self.dirs:
            _write(directory / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        """The processes in the group (as the caller's PID namespace numbers them)."""
        found: set[int] = set()
        for directory in self.dirs:
            try:
                found.update(int(p) for p in _read(directory / "cgroup.procs").split())
            except FileNotFoundError:
                continue
        return sorted(found)

    def peak_memory_mb(self) -> float:
        """The group's peak memory use (including page cache and its tmpfs files), in MB."""
        if self.version == 1:
            peak = self._memory_dir / "memory.max_usage_in_bytes"
        else:
            peak = self._memory_dir / "memory.peak"
            if not peak.exists():
                peak = self._memory_dir / "memory.current"
        return int(_read(peak)) / (1024 * 1024)

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this group."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        # Raw reads: this runs after every invocation.
        fd = os.open(self._memory_dir / name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            text = os.read(fd, 4096).decode("ascii")
        finally:
            os.close(fd)
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value) > 0
        return False

    def kill(self) -> None:
        """Send SIGKILL to every process in the group (a no-op if the group is gone)."""
        kill_file = self.dirs[0] / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            try:
                _write(kill_file, "1")
                return
            except FileNotFoundError:
                return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, timeout_s: float = 5.0) -> None:
        """Kill the group's processes, wait (bounded) until it is empty, and delete it.

        Does nothing if the group is already gone. Killed members that are not reaped yet
        (zombies) no longer count. Raises OSError(EBUSY) if it is still populated after
        `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self.kill()  # again on every round: a member may have forked meanwhile
            if not self.pids():
                try:
                    for directory in self.dirs:
                        if directory.exists():
                            directory.rmdir()
                    return
                except FileNotFoundError:
                    return
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
            if time.monotonic() > deadline:
                raise OSError(
                    errno.EBUSY,
                    f"cgroup {self.name} still has processes {self.pids()} after {timeout_s}s",
                )
            time.sleep(0.01)

    @classmethod
    def sweep(cls, parent: str = "agentform", *, remove_parent: bool = False) -> list[str]:
        """Kill and remove every group under `parent` (leftovers of a previous host run).

        Returns the names removed. With `remove_parent`, also removes `parent` itself.
        Raises the first error after trying every group.
        """
        version = cgroup_version()
        if version is None:
            return []
        parent_dirs = _parent_dirs(parent, version)
        names = sorted(
            {
                child.name
                for d in parent_dirs
                if d.is_dir()
                for child in d.iterdir()
                if child.is_dir()
            }
        )
        failure: OSError | None = None
        for name in names:
            try:
                cls(name, version, tuple(d / name for d in parent_dirs)).remove()
            except OSError as exc:
                failure = failure or exc
        if remove_parent and failure is None:
            for directory in parent_dirs:
                with contextlib.suppress(FileNotFoundError):
                    directory.rmdir()
        if failure is not None:
            raise failure
        return names


# --------------------------------------------------------------------------- the sandbox


def default_read_only() -> tuple[Path, ...]:
    """The host paths a worker needs read-only: the running interpreter and system files.

    The interpreter's prefixes (venv and base install), the real location of the executable,
    its site-packages, the system library/binary directories and the few ``/etc`` files name
    resolution and TLS read. Missing paths are skipped; duplicates are dropped.
    """
    candidates = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.realpath(sys.executable),
        *site.getsitepackages(),
        *(
            [site.getusersitepackages()]
            if site.ENABLE_USER_SITE and site.getusersitepackages()
            else []
        ),
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/nsswitch.conf",
        "/etc/ssl",
        "/etc/ca-certificates",
    ]
    paths: dict[Path, None] = {}
    for candidate in candidates:
        path = Path(os.path.abspath(candidate))
        if path.exists():
            paths.setdefault(path, None)
    return tuple(paths)


@dataclass(frozen=True, kw_only=True)
class SandboxSpec:
    """What one worker's sandbox contains and who it runs as.

    Attributes:
        task_root: the unpacked artifact on the host; read-only at ``/var/task`` inside. It
            must be readable by `uid` (for example mode 0755).
        read_only: host paths bound read-only at the same path inside (see
            :func:`default_read_only`).
        tmp_mb: size of the private tmpfs at ``/tmp`` (and of ``/dev/shm``); its contents
            count against the cgroup's memory.
        uid, gid: the unprivileged ids the worker runs as (one uid per worker, so
            :func:`peer_uid` can tell workers apart).
        cgroup: the group the worker joins, if any.
        hostname: the worker's hostname (its own UTS namespace).
        max_file_bytes: RLIMIT_FSIZE, the largest file the worker may write (its log
            included, whose fd it holds); None: no limit.
    """

    task_root: Path
    uid: int
    gid: int
    read_only: tuple[Path, ...] = field(default_factory=default_read_only)
    tmp_mb: int = 512
    cgroup: Cgroup | None = None
    hostname: str = "agentform"
    max_file_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.uid <= 0 or self.gid <= 0:
            raise ValueError("a sandbox runs as an unprivileged uid and gid (> 0)")
        if self.tmp_mb <= 0:
            raise ValueError("tmp_mb must be positive")
        if not self.task_root.is_absolute() or not all(p.is_absolute() for p in self.read_only):
            raise ValueError("task_root and read_only paths must be absolute")
        if not 0 < len(self.hostname.encode()) <= 64:
            raise ValueError("hostname must be 1-64 bytes")


def _read_ppid(stat_fd: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
    data = os.pread(stat_fd, 4096, 0).decode("ascii", "replace")
    return int(data[data.rindex(")") + 2 :].split()[1])


def _parent_gone(expected: int) -> None:
    os.write(2, f"agentform sandbox: parent {expected} exited; worker not started\n".encode())
    os._exit(1)


def _bind(source: str, target: str, *, read_only: bool) -> None:
    """Bind host path `source` (under the old root) at `target`, creating the mount point."""
    if not os.path.lexists(target):
        if os.path.isdir(source):
            # 0755, whatever the host's mode: a 0700 parent (a home directory holding the
            # interpreter) must not lock out the worker's uid.
            os.makedirs(target, mode=0o755)
        else:
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    # Not MS_REC: a read-only remount does not apply to submounts, so none are brought in.
    _mount(source, target, None, MS_BIND)
    if read_only:
        # Bind mounts ignore MS_RDONLY on creation; it only takes effect on a remount.
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _build_skeleton(read_only: Iterable[Path], tmp_mb: int) -> None:
    """Replace the mount namespace's root with a tmpfs holding the shared read-only paths, a
    fresh /proc, a minimal /dev and a private /tmp; the host's root stays at /.oldroot until
    :func:`_seal_root`."""
    # Resolve symlinks while the host's tree is still the root: an absolute link (such as
    # /etc/resolv.conf -> /run/...) means nothing once the root has moved. Parents come before
    # children, so a nested path is bound on top of its parent's bind.
    binds = [
        (os.path.realpath(path), str(path))
        for path in sorted(set(read_only), key=lambda p: len(p.parts))
    ]

    # The new root is a tmpfs mounted over /tmp in this (private) namespace. pivot_root moves
    # it to / and the old root to /.oldroot, where the host paths are bound from (/tmp ones
    # included: the tmpfs no longer hides them once it has moved).
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    os.mkdir("/tmp" + _OLD_ROOT, 0o700)
    _pivot_root("/tmp", "/tmp" + _OLD_ROOT)
    os.chdir("/")
    for source, target in binds:
        _bind(_OLD_ROOT + source, target, read_only=True)

    os.makedirs("/proc", mode=0o555, exist_ok=True)
    # A fresh procfs: we are PID 1 of our own PID namespace, so it lists only our processes.
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)

    os.makedirs("/dev", mode=0o755, exist_ok=True)
    for node in _DEV_NODES:
        _bind(f"{_OLD_ROOT}/dev/{node}", f"/dev/{node}", read_only=False)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm", 0o1777)
    size = f"mode=1777,size={tmp_mb}m"
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, size)
    os.makedirs("/tmp", mode=0o1777, exist_ok=True)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, size)


def _seal_root(task_root: str) -> None:
    """Bind the artifact (`task_root`: a symlink-free host path) at /var/task, then detach the
    host's root and make the skeleton read-only."""
    _bind(_OLD_ROOT + task_root, str(TASK_ROOT), read_only=True)
    # Detach the host's root: nothing outside the binds stays reachable.
    _check(_libc.umount2(_OLD_ROOT.encode(), MNT_DETACH), f"umount2({_OLD_ROOT!r}, MNT_DETACH)")
    os.rmdir(_OLD_ROOT)
    # The skeleton itself (/, /var, /dev, ...) becomes read-only too.
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def host_path(path: Path | str) -> str:
    """Where a sandbox between :func:`prepare` and :meth:`PreparedSandbox.finish` reaches the
    host's `path` (which must be absolute and free of symlinks: resolve it in a process that
    sees the host's root)."""
    return _OLD_ROOT + str(path)


def _close_fds(keep: Iterable[int]) -> None:
    """Close every fd but 0-2 and `keep`: the zygote's own files must not leak inside."""
    kept = {0, 1, 2, *keep}
    # The host's /proc is still mounted here; listing it beats closing up to an unbounded
    # RLIMIT_NOFILE. (The fd listdir() itself used is gone by the time we close it.)
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in kept:
            with contextlib.suppress(OSError):
                os.close(int(name))


@dataclass
class PreparedSandbox:
    """A sandbox built up to what names its worker (artifact and uid): see :func:`prepare`."""

    expected_parent: int
    stat_fd: int
    syscalls: bytes

    def finish(self, spec: SandboxSpec) -> None:
        """Complete :func:`prepare`'s sandbox for `spec` (its task_root, uid, gid, hostname;
        the rest was fixed by prepare). `spec.task_root` must be free of symlinks (resolved
        by a process that sees the host's root). Returns as :func:`enter` does."""
        try:
            _seal_root(str(spec.task_root))
            os.chdir(TASK_ROOT)
            socket.sethostname(spec.hostname)

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if spec.max_file_bytes is not None:
                # Bounds its log between two rotations (a write past it fails with EFBIG:
                # Python ignores SIGXFSZ), and every file it writes.
                limit = spec.max_file_bytes
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            nofile = _NOFILE if hard == resource.RLIM_INFINITY else min(_NOFILE, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, nofile), nofile))

            os.setgroups([])
            os.setresgid(spec.gid, spec.gid, spec.gid)
            # Dropping uid 0 for good clears every capability.
            os.setresuid(spec.uid, spec.uid, spec.uid)
            # The uid change made us non-dumpable, which hands /proc/self to root; the worker
            # needs its own /proc entries (fds, status). Core dumps stay off (RLIMIT_CORE 0).
            _prctl(PR_SET_DUMPABLE, 1, "prctl(PR_SET_DUMPABLE, 1)")
            _prctl(PR_SET_NO_NEW_PRIVS, 1, "prctl(PR_SET_NO_NEW_PRIVS, 1)")
            # Changing uid/gid cleared the parent-death signal: set it again, then check the
            # parent did not die in the window before it was set.
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "prctl(PR_SET_PDEATHSIG, SIGKILL)")
            if _read_ppid(self.stat_fd) != self.expected_parent:
                _parent_gone(self.expected_parent)
            _load_syscall_filter(self.syscalls)
        finally:
            os.close(self.stat_fd)
        if not os.access(TASK_ROOT, os.R_OK | os.X_OK):
            raise PermissionError(
                errno.EACCES, f"task root {spec.task_root} is not readable by uid {spec.uid}"
            )


def prepare(
    *,
    read_only: Iterable[Path],
    tmp_mb: int,
    cgroup: Cgroup | None,
    parent_pid: int | None = None,
    keep_fds: Iterable[int] = (),
) -> PreparedSandbox:
    """The first part of :func:`enter`, which does not depend on the worker: the parent-death
    signal, the cgroup, closed fds, the namespaces and the root skeleton (the host's root
    still reachable under /.oldroot, as root). A zygote can do this ahead of a request and
    :meth:`PreparedSandbox.finish` it when the request names the artifact and the uid (pass
    host paths it needs meanwhile through :func:`host_path`)."""
    # Built while the host's libraries are still in view (free when the zygote built it).
    syscalls = syscall_filter()
    # Mount points are created with the default mode; the zygote's umask must not make them
    # unreadable to the worker's uid. (Also the worker's own umask, as on Lambda.)
    os.umask(0o022)
    # Signal on parent death first, so a parent that dies during setup takes us with it.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "prctl(PR_SET_PDEATHSIG, SIGKILL)")
    # getppid() is 0 for PID 1 of a namespace; the host's procfs still tells the real parent.
    # This fd stays open until finish(), when that procfs is no longer mounted here.
    stat_fd = os.open("/proc/self/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        expected = parent_pid or _forking_parent or _read_ppid(stat_fd)
        if _read_ppid(stat_fd) != expected:
            _parent_gone(expected)

        # Join before the mounts hide /sys/fs/cgroup; "0" means the writing process itself.
        if cgroup is not None:
            cgroup.add(0)
        _close_fds([*keep_fds, stat_fd])

        flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
        _check(_libc.unshare(flags), "unshare(CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS)")
        # Private, so none of our mounts propagate back to the host (and none of its to us).
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _build_skeleton(read_only, tmp_mb)
    except BaseException:
        os.close(stat_fd)
        raise
    return PreparedSandbox(expected, stat_fd, syscalls)


def enter(
    spec: SandboxSpec, *, parent_pid: int | None = None, keep_fds: Iterable[int] = ()
) -> None:
    """Turn the calling process (a freshly forked, single-threaded child) into a sandboxed worker.

    Call it in the child forked right after :func:`prepare_pid_namespace`. On return the
    process is PID 1 of its own PID namespace, has its own mount, IPC and UTS namespaces, sees
    only ``spec.read_only`` (read-only, same paths), the artifact read-only at ``/var/task``
    (the cwd), a fresh ``/proc``, a minimal ``/dev`` and a private writable ``/tmp``; it is in
    ``spec.cgroup``, runs as ``spec.uid``/``spec.gid`` with no capabilities, cannot gain
    privileges (no_new_privs), runs under :func:`syscall_filter` and is SIGKILLed when its
    parent dies. The network namespace is shared (TCP to 127.0.0.1 works).

    File descriptors other than 0-2 and `keep_fds` are closed. If the parent (`parent_pid`,
    default: the process that called prepare_pid_namespace, as the host's /proc numbers it)
    has already exited, the process exits with status 1 instead of returning.

    As PID 1 the worker only receives signals it has handlers for (SIGKILL always works) and
    should reap children it did not start itself.

    Raises OSError naming the call the kernel refused; the process is then half set up and
    must exit (``os._exit``), not run the worker. (:func:`prepare` followed by
    :meth:`PreparedSandbox.finish` does the same in two steps.)
    """
    task_root = os.path.realpath(spec.task_root)
    prepared = prepare(
        read_only=spec.read_only,
        tmp_mb=spec.tmp_mb,
        cgroup=spec.cgroup,
        parent_pid=parent_pid,
        keep_fds=keep_fds,
    )
    prepared.finish(dataclasses.replace(spec, task_root=Path(task_root)))


# --------------------------------------------------------------------------- probe


def _probe_worker(spec: SandboxSpec, report: int) -> None:
    """Body of the probe's grandchild: enter a sandbox and check the basics."""
    enter(spec, keep_fds=[report])
    problems = []
    if os.getpid() != 1:
        problems.append(f"not PID 1 of its namespace (pid {os.getpid()})")
    others = [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]
    if others:
        problems.append(f"/proc shows other processes {others}")
    if os.getuid() != spec.uid:
        problems.append(f"runs as uid {os.getuid()}")
    if _libc.unshare(CLONE_NEWUSER) == 0 or ctypes.get_errno() != errno.EPERM:
        problems.append("the seccomp filter did not refuse unshare(CLONE_NEWUSER)")
    os.write(report, json.dumps({"reason": "; ".join(problems) or None}).encode())


def probe(*, parent: str = "agentform", timeout_s: float = 30.0) -> str | None:
    """Check that workers can be sandboxed here: None if so, else a one-line reason.

    Creates a throwaway cgroup under `parent` and, in a forked child, a throwaway sandboxed
    worker (PID namespace, mounts, uid 65534), so the caller's own state is not touched.
    """
    if os.geteuid() != 0:
        return f"sandboxing needs root; running as uid {os.geteuid()}"
    if cgroup_version() is None:
        return "no mounted cgroup hierarchy has the memory and pids controllers"
    try:
        syscall_filter()
    except OSError as exc:
        return f"cannot build the seccomp filter: {exc.strerror or exc}"
    try:
        group = Cgroup.create(f"probe-{os.getpid()}", 64, 16, parent=parent)
    except OSError as exc:
        return f"cannot create a cgroup: {exc.strerror or exc}"
    task_root = Path(tempfile.mkdtemp(prefix="agentform-probe-"))
    try:
        task_root.chmod(0o755)
        spec = SandboxSpec(
            task_root=task_root, uid=65534, gid=65534, tmp_mb=1, cgroup=group, hostname="probe"
        )
        return _probe_in_child(spec, timeout_s)
    finally:
        group.remove()
        shutil.rmtree(task_root, ignore_errors=True)


def _probe_in_child(spec: SandboxSpec, timeout_s: float) -> str | None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        status = 1
        try:
            os.close(read_end)
            # Only this throwaway child changes its namespace for children, not the caller.
            prepare_pid_namespace()
            worker = os.fork()
            if worker == 0:
                try:
                    _probe_worker(spec, write_end)
                    os._exit(0)
                except BaseException as exc:
                    os.write(write_end, json.dumps({"reason": _reason(exc)}).encode())
                    os._exit(1)
            _, wait_status = os.waitpid(worker, 0)
            status = 0 if os.waitstatus_to_exitcode(wait_status) == 0 else 2
        except BaseException as exc:
            os.write(write_end, json.dumps({"reason": _reason(exc)}).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([read_end], [], [], left)[0]:
                break
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    timed_out = time.monotonic() >= deadline
    if timed_out:
        os.kill(pid, signal.SIGKILL)  # its worker dies with it (parent-death signal)
    _, wait_status = os.waitpid(pid, 0)
    if timed_out:
        return f"the sandbox probe did not finish within {timeout_s}s"
    try:
        reason: str | None = json.loads(b"".join(chunks))["reason"]
    except (ValueError, KeyError):
        code = os.waitstatus_to_exitcode(wait_status)
        return f"the sandbox probe exited with status {code} without reporting"
    return None if reason is None else f"sandbox setup failed: {reason}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- peer uid


def _proc_net_address(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    # "0100007F:1F90": the address as native-endian 32-bit words in hex, then the port.
    addr_hex, port_hex = text.split(":")
    raw = b"".join(
        int(addr_hex[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(addr_hex), 8)
    )
    return _unmapped(ipaddress.ip_address(raw)), int(port_hex, 16)


def _unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_TCP_LISTEN, _TCP_TIME_WAIT = 0x0A, 0x06


# <linux/netlink.h>, <linux/sock_diag.h>, <linux/inet_diag.h>: stable kernel ABI values.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_INET_DIAG_NOCOOKIE = 0xFFFFFFFF
_NLMSG_HEADER = struct.Struct("=IHHII")
_DIAG_UID_OFFSET = _NLMSG_HEADER.size + 4 + 48 + 12  # inet_diag_msg: ..., id, expires, rq, wq


def _diag_uid(
    local: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int],
    remote: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int],
) -> int | None:
    """The uid of the TCP socket with exactly this local and remote address, asked of the
    kernel by netlink sock_diag: one hash lookup, where reading /proc/net/tcp walks every
    socket of the machine (tens of ms on a busy one). None if there is no such socket."""
    if local[0].version != remote[0].version:
        return None
    family = socket.AF_INET if local[0].version == 4 else socket.AF_INET6
    request = (
        struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)
        + struct.pack("!HH", local[1], remote[1])
        + local[0].packed.ljust(16, b"\0")
        + remote[0].packed.ljust(16, b"\0")
        + struct.pack("=III", 0, _INET_DIAG_NOCOOKIE, _INET_DIAG_NOCOOKIE)
    )
    header = _NLMSG_HEADER.pack(
        _NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0
    )
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as diag:
        diag.settimeout(5.0)
        diag.send(header + request)
        reply = diag.recv(65536)
    _, kind, _, _, _ = _NLMSG_HEADER.unpack_from(reply)
    if kind == _NLMSG_ERROR:
        (code,) = struct.unpack_from("=i", reply, _NLMSG_HEADER.size)
        if code == -errno.ENOENT:
            return None
        raise OSError(-code, f"sock_diag: {os.strerror(-code)}")
    state = reply[_NLMSG_HEADER.size + 1]
    if state in (_TCP_LISTEN, _TCP_TIME_WAIT):
        return None
    (uid,) = struct.unpack_from("=I", reply, _DIAG_UID_OFFSET)
    return int(uid)


def peer_uid(
    peer_host: str, peer_port: int, *, server: tuple[str, int] | None = None
) -> int | None:
    """The uid owning the TCP socket whose local address is (peer_host, peer_port), or None.

    The host calls it with ``getpeername()`` of a connection it accepted on loopback: the
    other end is a socket in the same network namespace, listed in ``/proc/net/tcp`` or
    ``tcp6`` with the uid that created it. With `server`, the socket's remote address must
    also be that (host, port), and the kernel is asked for exactly that socket (sock_diag);
    the tables are read only when it does not know it. Listening and TIME_WAIT sockets are
    ignored; None if no socket or sockets of several uids match (so an ambiguous answer fails
    closed).
    """
    want = (_unmapped(ipaddress.ip_address(peer_host.split("%")[0])), peer_port)
    want_remote = None
    if server is not None:
        want_remote = (_unmapped(ipaddress.ip_address(server[0].split("%")[0])), server[1])
        with contextlib.suppress(OSError):
            uid = _diag_uid(want, want_remote)
            if uid is not None:
                return uid
    uids: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 8 or int(fields[3], 16) in (_TCP_LISTEN, _TCP_TIME_WAIT):
                continue
            if _proc_net_address(fields[1]) != want:
                continue
            if want_remote is not None and _proc_net_address(fields[2]) != want_remote:
                continue
            uids.add(int(fields[7]))
    return uids.pop() if len(uids) == 1 else None
