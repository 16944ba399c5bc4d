"""Deterministic artifacts: the same code and manifest always give the same bytes (and so the
same digest and version). A zip holds the user's code, the workload part of
`agentform_runtime`, and `agentform.json` at its root."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import agentform_runtime
from agentform_runtime.specs import MANIFEST_FILE, Manifest

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}
# The host package never ships inside a workload: workloads must not depend on it.
_RUNTIME_EXCLUDE = frozenset({"host"})


class PackagingError(ValueError):
    """The code to package is missing or collides with the runtime."""


def _files(root: Path, exclude_top: frozenset[str] = frozenset()) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in exclude_top or _SKIP_DIRS & set(relative.parts):
            continue
        if path.is_file() and path.suffix not in _SKIP_SUFFIXES:
            yield relative.as_posix(), path


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


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_artifact(manifest: Manifest, code: Path | None = None) -> bytes:
    """Zip `code` (a directory or a .zip archive) with the runtime and the manifest."""
    entries: dict[str, bytes] = {}
    if code is not None:
        for name, data in _code_entries(code):
            if name.split("/")[0] in ("agentform_runtime", MANIFEST_FILE):
                raise PackagingError(f"{code}: '{name}' collides with a name Agentform reserves")
            entries[name] = data
    runtime_root = Path(agentform_runtime.__file__).parent
    for name, path in _files(runtime_root, _RUNTIME_EXCLUDE):
        entries[f"agentform_runtime/{name}"] = path.read_bytes()
    entries[MANIFEST_FILE] = manifest.model_dump_json(indent=2).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            _add(archive, name, entries[name])
    return buffer.getvalue()
