"""Unpacked artifacts share their byte-code: one .pyc per distinct source file, compiled once
(in the bounded child) and hard-linked into every copy that holds that file."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import agentform_runtime.host.state.artifacts as artifacts
from agentform_runtime.host.state.artifacts import ArtifactStore

SHARED = "def shared():\n    return 'shared'\n"


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _compiled(root: Path, module: str) -> Path:
    return root / "__pycache__" / f"{module}.{sys.implementation.cache_tag}.pyc"


def test_the_same_source_in_two_artifacts_is_compiled_once_and_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[list[str]] = []
    compile_in_child = artifacts._compile_in_child

    def counting(pairs: list[tuple[Path, Path]]) -> None:
        compiled.append(sorted(source.name for source, _ in pairs))
        compile_in_child(pairs)

    monkeypatch.setattr(artifacts, "_compile_in_child", counting)
    store = ArtifactStore(tmp_path)
    first = store.directory(store.put(_zip({"shared.py": SHARED, "one.py": "ONE = 1\n"})))
    second = store.directory(store.put(_zip({"shared.py": SHARED, "two.py": "TWO = 2\n"})))

    assert compiled == [["one.py", "shared.py"], ["two.py"]]  # `shared` was not compiled again
    assert _compiled(first, "shared").stat().st_ino == _compiled(second, "shared").stat().st_ino
    assert _compiled(second, "two").exists()


def test_a_shared_pyc_is_what_the_import_system_loads(tmp_path: Path) -> None:
    """Not recompiled in memory: the import system takes the linked .pyc as it is, and names
    the module's file as this copy's, not the copy it was first compiled for."""
    store = ArtifactStore(tmp_path)
    store.directory(store.put(_zip({"shared.py": SHARED, "one.py": ""})))
    root = store.directory(store.put(_zip({"shared.py": SHARED, "two.py": ""})))
    probe = "import shared; print(shared.shared.__code__.co_filename)"
    result = subprocess.run(
        [sys.executable, "-v", "-c", probe],
        cwd=root,
        env={"PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == str(root / "shared.py")
    assert f"# code object from '{_compiled(root, 'shared')}'" in result.stderr


def test_a_pyc_the_zip_brings_is_replaced_by_the_compiled_one(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    pyc = f"__pycache__/shared.{sys.implementation.cache_tag}.pyc"
    root = store.directory(store.put(_zip({"shared.py": SHARED, pyc: "not byte-code"})))
    assert _compiled(root, "shared").read_bytes().startswith(importlib.util.MAGIC_NUMBER)


def test_a_cached_pyc_goes_with_the_last_copy_that_links_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts, "BYTECODE_KEEP_S", 0.0)
    store = ArtifactStore(tmp_path)
    one = store.put(_zip({"shared.py": SHARED, "one.py": "ONE = 1\n"}))
    two = store.put(_zip({"shared.py": SHARED}))
    store.directory(one)
    store.directory(two)
    assert len(list(store.bytecode.iterdir())) == 2

    store.delete(store.retire_unpacked(keep={two}))
    assert len(list(store.bytecode.iterdir())) == 1  # `one`'s own went, the shared one stays
    store.delete(store.retire_unpacked(keep=set()))
    assert list(store.bytecode.iterdir()) == []
