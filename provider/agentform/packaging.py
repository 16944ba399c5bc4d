"""Deterministic artifacts: the same code and manifest always give the same bytes (and so the
same digest and version). A zip holds the user's code, the workload part of
`agentform_runtime`, and `agentform.json` at its root."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import agentform_runtime
from agentform_runtime.specs import MANIFEST_FILE, Manifest

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}
# The host package never ships inside a workload: workloads must not depend on it.
_RUNTIME_EXCLUDE = frozenset({"host"})
# Built artifacts kept per process, so that `check` and `create` of one workload zip it once.
_BUILT_MAX_BYTES = 128 * 1024 * 1024


class PackagingError(ValueError):
    """The code to package is missing or collides with the runtime."""


def _files(root: Path, exclude_top: frozenset[str] = frozenset()) -> Iterator[tuple[str, Path]]:
    """The files under `root` as (relative posix name, path), skipped directories unvisited."""
    for directory, dirs, files in os.walk(root):
        top = Path(directory) == root
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not (top and d in exclude_top)]
        for name in files:
            path = Path(directory, name)
            if name in _SKIP_DIRS or path.suffix in _SKIP_SUFFIXES or not path.is_file():
                continue
            yield path.relative_to(root).as_posix(), path


def _code_entries(code: Path) -> Iterator[tuple[str, bytes]]:
    """The user's files, from a directory or a .zip archive."""
    if code.is_dir():
        for name, path in _files(code):
            yield name, path.read_bytes()
    elif code.is_file() and zipfile.is_zipfile(code):
        with zipfile.ZipFile(code) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                parts = set(Path(info.filename).parts)
                if (
                    not info.is_dir()
                    and not _SKIP_DIRS & parts
                    and Path(info.filename).suffix not in _SKIP_SUFFIXES
                ):
                    yield info.filename, archive.read(info)
    else:
        raise PackagingError(f"code {code} is neither a directory nor a .zip archive")


@functools.cache
def _runtime_entries() -> tuple[tuple[str, bytes], ...]:
    """The workload part of `agentform_runtime`, read once: it is the same in every artifact
    a process builds, and walking it dominated building small artifacts."""
    root = Path(agentform_runtime.__file__).parent
    return tuple(
        (f"agentform_runtime/{name}", path.read_bytes())
        for name, path in _files(root, _RUNTIME_EXCLUDE)
    )


def deterministic_zip(entries: dict[str, bytes]) -> bytes:
    """`entries` (name -> bytes) zipped in name order with fixed times and modes: the same
    entries always give the same bytes (artifacts, and the AWS runtime layer)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()


class _Built:
    """Artifacts by a digest of their entries, least recently used dropped past a byte budget."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # the dynamic provider serves calls on several threads

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._items or len(data) > self.max_bytes:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                self._size -= len(self._items.popitem(last=False)[1])


_built = _Built(_BUILT_MAX_BYTES)


def _key(entries: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(entries):
        data = entries[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def build_artifact(manifest: Manifest, code: Path | None = None) -> bytes:
    """Zip `code` (a directory or a .zip archive) with the runtime and the manifest."""
    entries: dict[str, bytes] = {}
    if code is not None:
        for name, data in _code_entries(code):
            if name.split("/")[0] in ("agentform_runtime", MANIFEST_FILE):
                raise PackagingError(f"{code}: '{name}' collides with a name Agentform reserves")
            entries[name] = data
    entries.update(_runtime_entries())
    entries[MANIFEST_FILE] = manifest.model_dump_json(indent=2).encode()
    # The code is read every time (it may change between `check` and `create`); only zipping
    # the same entries again is skipped.
    key = _key(entries)
    artifact = _built.get(key)
    if artifact is None:
        artifact = deterministic_zip(entries)
        _built.put(key, artifact)
    return artifact
