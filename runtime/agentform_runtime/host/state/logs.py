"""Worker log rotation: `<name>.log` is cut when it passes a size, into `<name>.log.1` ...
`.N` (the newest first), and rotated files older than the retention are deleted.

Workers write their logs through file descriptors opened with O_APPEND, which the host
cannot make them reopen. So a log is never renamed: its head is copied into `.1`, then
removed from the live file in place with `fallocate(FALLOC_FL_COLLAPSE_RANGE)` (ext4, XFS).
That is atomic against concurrent appends, so no line is lost. Where the file system cannot
collapse a range, the rest is copied too and the file truncated (copytruncate, as logrotate
does for such programs): a line written in that instant can be lost."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("agentform.host")

_FALLOC_FL_COLLAPSE_RANGE = 0x08
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


@dataclass
class LogRotation:
    rotated: int = 0
    deleted: int = 0
    bytes: int = 0  # worker logs on disk after this pass, rotated files included


def _collapse_head(fd: int, length: int) -> bool:
    """Remove the first `length` bytes of the file; False where unsupported."""
    if _fallocate(fd, _FALLOC_FL_COLLAPSE_RANGE, 0, length) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
        return False
    raise OSError(error, os.strerror(error))


def _rotated(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def rotate(path: Path, keep: int) -> None:
    """Move the content of `path` into `path.1`, shifting older files up to `keep`."""
    for index in range(keep, 0, -1):
        older = _rotated(path, index)
        if older.exists():
            if index == keep:
                older.unlink()
            else:
                older.replace(_rotated(path, index + 1))
    target = _rotated(path, 1)
    partial = target.with_name(target.name + ".partial")
    with open(path, "rb+") as live, open(partial, "wb") as copy:
        status = os.fstat(live.fileno())
        block = status.st_blksize or 4096
        # Collapse needs whole blocks and must leave at least one byte behind.
        head = (status.st_size - 1) // block * block
        left = head
        while left > 0:
            chunk = live.read(min(left, 1 << 20))
            if not chunk:
                break
            copy.write(chunk)
            left -= len(chunk)
        copy.flush()
        if head <= 0 or not _collapse_head(live.fileno(), head):
            shutil.copyfileobj(live, copy)
            copy.flush()
            live.truncate(0)
    os.utime(partial, (status.st_atime, status.st_mtime))  # its age is its last line's
    partial.replace(target)
    if keep == 0:
        target.unlink()


def rotate_logs(
    log_dir: Path, max_bytes: int, keep: int, max_age_s: float, now: float
) -> LogRotation:
    """One pass over every worker log under `log_dir`."""
    result = LogRotation()
    if not log_dir.is_dir():
        return result
    cutoff = now - max_age_s
    for path in sorted(log_dir.rglob("*.log")):
        try:
            status = path.stat()
            too_old = status.st_size > 0 and status.st_mtime < cutoff
            if status.st_size > max_bytes or too_old:
                rotate(path, keep)
                result.rotated += 1
        except OSError as exc:
            log.warning("could not rotate %s: %s", path, exc)
    for path in sorted(log_dir.rglob("*.log.*")):
        suffix = path.name.rsplit(".", 1)[-1]
        try:
            status = path.stat()
            stale = suffix.isdigit() and (int(suffix) > keep or status.st_mtime < cutoff)
            if stale or (suffix == "partial" and status.st_mtime < now - 3600):
                path.unlink()
                result.deleted += 1
            else:
                result.bytes += status.st_size
        except OSError as exc:
            log.warning("could not delete %s: %s", path, exc)
    result.bytes += sum(p.stat().st_size for p in log_dir.rglob("*.log") if p.is_file())
    return result
