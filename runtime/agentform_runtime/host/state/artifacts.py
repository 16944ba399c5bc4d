"""Content-addressed artifact files and their unpacked copies.

Uploads and unpacking are bounded: Lambda's limits (250 MB unpacked) and an entry count are
checked against the zip's declared sizes before any byte is inflated, and the bytes actually
written are counted again while unpacking, so a zip that lies about its sizes (a zip bomb)
is refused quickly rather than filling the disk. Both are blocking work: callers on the
event loop run them in a thread (`put_file` and `unpack`)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import IO

MAX_UPLOAD_BYTES = 250 * 1024 * 1024  # the zip as uploaded
MAX_UNPACKED_BYTES = 250 * 1024 * 1024  # Lambda's limit for a function's unzipped code
MAX_ENTRIES = 20_000  # files and directories in one zip
_CHUNK = 1024 * 1024
# Byte-compiling hostile source can take seconds of CPU and GBs of memory (the compiler's
# AST): it runs in a child process under these limits, and a failure only means no .pyc.
COMPILE_MEMORY_BYTES = 1024 * 1024 * 1024  # the child's address space
COMPILE_CPU_S = 60
COMPILE_TIMEOUT_S = 120
# Reads NUL-separated (source, .pyc) pairs on stdin. Hash-based, unchecked .pycs: each is
# named by its source's sha256 and the unpacked copies never change, so one .pyc serves every
# artifact that holds the same source (the runtime is in all of them).
_COMPILE = """
import os, py_compile, resource, sys
memory, cpu = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
paths = sys.stdin.buffer.read().split(b"\\0")
for source, target in zip(paths[0::2], paths[1::2]):
    try:
        py_compile.compile(
            os.fsdecode(source),
            cfile=os.fsdecode(target),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except Exception:  # a syntax error or out of memory: that module gets no .pyc
        pass
"""
#: A cached .pyc no unpacked copy links to is deleted once it is older than this.
BYTECODE_KEEP_S = 60.0


class InvalidArtifact(ValueError):
    """The upload is not a usable zip."""


class ArtifactTooLarge(InvalidArtifact):
    """The zip, or what it unpacks to, is beyond a limit (named in the message)."""


class Upload:
    """A zip being received: written to a temporary file and hashed as it streams."""

    def __init__(self, directory: Path) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-")
        self.path = Path(name)
        self.size = 0
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > MAX_UPLOAD_BYTES:
            raise ArtifactTooLarge(f"artifacts are limited to {MAX_UPLOAD_BYTES} bytes (zipped)")
        self._file.write(chunk)
        self._hash.update(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


def check_zip(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The members of `archive` when its declared shape is within the limits."""
    members = archive.infolist()
    if len(members) > MAX_ENTRIES:
        raise InvalidArtifact(
            f"artifact has {len(members)} entries; the limit is {MAX_ENTRIES} entries"
        )
    declared = sum(m.file_size for m in members)
    if declared > MAX_UNPACKED_BYTES:
        raise ArtifactTooLarge(
            f"artifact unpacks to {declared} bytes; the limit is {MAX_UNPACKED_BYTES} bytes "
            "unpacked"
        )
    unsafe = [m.filename for m in members if _unsafe(m.filename)]
    if unsafe:
        raise InvalidArtifact(f"artifact has paths outside its root: {unsafe[:3]}")
    return members


def _unsafe(name: str) -> bool:
    return name.startswith(("/", "\\")) or ".." in Path(name.replace("\\", "/")).parts


class ArtifactStore:
    """Zips under `root/blobs`, each unpacked once under `root/unpacked` for workers, with
    byte-code from `root/bytecode`: one .pyc per distinct source file, hard-linked into every
    unpacked copy that holds that file.

    With `group` (the gid sandboxed workers run as), unpacked copies are readable by that
    group only (0640/0750): a worker sees its own copy through its read-only bind mount, while
    the state dir around it stays 0700 and the zips 0600."""

    def __init__(self, root: Path, group: int | None = None) -> None:
        self.group = group
        self.blobs = root / "blobs"
        self.unpacked = root / "unpacked"
        self.bytecode = root / "bytecode" / (sys.implementation.cache_tag or "none")
        for directory in (self.blobs, self.unpacked, self.bytecode):
            directory.mkdir(parents=True, exist_ok=True)

    def _blob(self, digest: str) -> Path:
        return self.blobs / digest.removeprefix("sha256:")

    def upload(self) -> Upload:
        return Upload(self.blobs)

    def put_file(self, upload: Upload) -> str:
        """Check a received zip and keep it under its digest; idempotent. Blocking."""
        try:
            upload.close()
            digest = upload.digest
            target = self._blob(digest)
            if target.exists():
                return digest
            try:
                with zipfile.ZipFile(upload.path) as archive:
                    check_zip(archive)
                    bad = archive.testzip()  # inflates at most the declared sizes, checked above
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
                raise InvalidArtifact(f"artifact is not a usable zip file: {exc}") from exc
            if bad is not None:
                raise InvalidArtifact(f"artifact member {bad!r} is corrupt")
            os.replace(upload.path, target)
            return digest
        finally:
            upload.discard()

    def put(self, data: bytes) -> str:
        """Store `data` (a zip) durably and return its digest; idempotent. Blocking."""
        upload = self.upload()
        try:
            upload.write(data)
        except BaseException:
            upload.discard()
            raise
        return self.put_file(upload)

    def directory(self, digest: str) -> Path:
        """The unpacked artifact, extracted on first use (blocking; see `unpack`)."""
        target = self.unpacked / digest.removeprefix("sha256:")
        if target.exists():
            return target
        staging = Path(tempfile.mkdtemp(dir=self.unpacked, prefix="staging-"))
        try:
            with zipfile.ZipFile(self._blob(digest)) as archive:
                _extract(archive, staging)
            # Byte-code now, once: sandboxed workers see the code read-only and would otherwise
            # compile every module on every cold start.
            self._byte_compile(staging)
            if self.group is not None:
                _share_with_group(staging, self.group)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise InvalidArtifact(f"artifact cannot be unpacked: {exc}") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            staging.rename(target)
        except OSError:  # another caller finished first
            shutil.rmtree(staging, ignore_errors=True)
        return target

    async def unpack(self, digest: str) -> Path:
        """`directory`, off the event loop: unpacking 250 MB must not stall other requests."""
        return await asyncio.to_thread(self.directory, digest)

    def exists(self, digest: str) -> bool:
        return self._blob(digest).exists()

    def zip_path(self, digest: str) -> Path:
        """The zip itself, for copying it to another host."""
        return self._blob(digest)

    def retire_unpacked(self, keep: set[str]) -> list[Path]:
        """Move the unpacked copies of every artifact not in `keep` out of the way (a rename:
        instant, so no unpack can race it) and return them for `delete`. The zips stay: they
        are content-addressed uploads, cheap to unpack again."""
        wanted = {d.removeprefix("sha256:") for d in keep}
        retired = []
        for entry in self.unpacked.iterdir():
            if entry.name.startswith("staging-") or entry.name in wanted:
                continue
            if entry.name.startswith("trash-"):  # left by a host that stopped mid-delete
                retired.append(entry)
                continue
            trash = entry.with_name(f"trash-{entry.name}-{os.urandom(4).hex()}")
            entry.rename(trash)
            retired.append(trash)
        return retired

    def delete(self, paths: list[Path]) -> None:
        """Delete retired copies, and the cached .pycs none of the others links to (blocking:
        run it in a thread)."""
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
        # A young one may be about to be linked by an unpack under way.
        old = time.time() - BYTECODE_KEEP_S
        for cached in self.bytecode.iterdir():
            with contextlib.suppress(FileNotFoundError):
                status = cached.stat()
                if status.st_nlink == 1 and status.st_mtime < old:
                    cached.unlink()

    def _byte_compile(self, root: Path) -> None:
        """Give every module under `root` its .pyc: from the cache when that source was seen
        before, else compiled (in a bounded child) into the cache first."""
        links: list[tuple[Path, Path]] = []  # (cached .pyc, where the import system looks)
        missing: list[tuple[Path, Path]] = []  # (source, cached .pyc)
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
            for name in files:
                if not name.endswith(".py"):
                    continue
                source = Path(directory, name)
                cached = self.bytecode / f"{hashlib.sha256(source.read_bytes()).hexdigest()}.pyc"
                links.append((cached, Path(importlib.util.cache_from_source(str(source)))))
                if not cached.exists():
                    missing.append((source, cached))
        if missing:
            _compile_in_child(missing)
        for cached, target in links:
            _link(cached, target)


def _extract(archive: zipfile.ZipFile, root: Path) -> None:
    """Extract into `root`, counting the bytes written against the limit as they come."""
    written = 0
    for member in check_zip(archive):
        path = root / member.filename
        try:
            if member.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(path, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > MAX_UNPACKED_BYTES:
                        raise ArtifactTooLarge(
                            f"artifact unpacks to more than {MAX_UNPACKED_BYTES} bytes unpacked"
                        )
                    sink.write(chunk)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # the host's disk, not the artifact
            # The zip's own fault: a file `a` and a directory `a/b`, two members one path...
            raise InvalidArtifact(
                f"artifact member {member.filename!r} cannot be unpacked: {exc.strerror or exc}"
            ) from None


def _compile_in_child(pairs: list[tuple[Path, Path]]) -> None:
    """Compile each source to its .pyc in a bounded child process; a failure only means no
    .pyc (the module is compiled in memory when imported)."""
    command = [sys.executable, "-c", _COMPILE, str(COMPILE_MEMORY_BYTES), str(COMPILE_CPU_S)]
    paths = b"\0".join(os.fsencode(path) for pair in pairs for path in pair)
    with contextlib.suppress(subprocess.TimeoutExpired):  # run() killed it
        subprocess.run(
            command,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            input=paths,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )


def _link(cached: Path, target: Path) -> None:
    """Put `cached` at `target` (replacing a .pyc the zip may have brought): a hard link, or
    a copy where the file system has none. Without it (the source did not compile, the cache
    entry was pruned meanwhile, the zip put a file where `__pycache__` goes) the module is
    compiled in memory when imported."""
    staged = target.with_name(f"{target.name}.{os.urandom(4).hex()}")
    try:
        target.parent.mkdir(exist_ok=True)
        try:
            os.link(cached, staged)
        except FileNotFoundError:
            return
        except OSError:  # no hard links here
            shutil.copyfile(cached, staged)
        os.replace(staged, target)
    except OSError:
        staged.unlink(missing_ok=True)


def _share_with_group(root: Path, gid: int) -> None:
    """Give `gid` read access (and search/execute where the owner has it) to the tree."""
    for directory, _, files in os.walk(root):
        os.chown(directory, -1, gid)
        os.chmod(directory, 0o750)
        for name in files:
            path = os.path.join(directory, name)
            os.chown(path, -1, gid, follow_symlinks=False)
            if not os.path.islink(path):
                os.chmod(path, 0o750 if os.stat(path).st_mode & 0o100 else 0o640)
