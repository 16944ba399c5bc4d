"""Deterministic artifacts and content-addressed versions."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from agentform.packaging import PackagingError, build_artifact
from agentform_runtime.specs import DeploymentSpec, Manifest, WorkloadKind, digest_of, version_of

MANIFEST = Manifest(kind=WorkloadKind.FUNCTIONS, name="add", entrypoint="tool:main")


def _code(root: Path, body: str = "def main():\n    return 1\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tool.py").write_text(body)
    (root / "__pycache__").mkdir(exist_ok=True)
    (root / "__pycache__" / "tool.cpython-311.pyc").write_bytes(b"junk")
    return root


def test_same_code_gives_byte_identical_artifacts(tmp_path: Path) -> None:
    first = build_artifact(MANIFEST, _code(tmp_path / "a"))
    os.utime(tmp_path / "a" / "tool.py", (1, 1))  # timestamps do not matter
    second = build_artifact(MANIFEST, _code(tmp_path / "b"))
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert "agentform.json" in names and "tool.py" in names
    assert "agentform_runtime/workload/handler.py" in names
    assert not any(n.startswith("agentform_runtime/host/") or "__pycache__" in n for n in names)


def test_code_or_manifest_changes_change_the_digest(tmp_path: Path) -> None:
    base = digest_of(build_artifact(MANIFEST, _code(tmp_path / "a")))
    assert (
        digest_of(build_artifact(MANIFEST, _code(tmp_path / "b", "def main():\n    return 2\n")))
        != base
    )
    other = MANIFEST.model_copy(update={"entrypoint": "tool:other"})
    assert digest_of(build_artifact(other, _code(tmp_path / "c"))) != base


def test_a_zip_archive_packages_like_its_directory(tmp_path: Path) -> None:
    code = _code(tmp_path / "code")
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(code / "tool.py", "tool.py")
    assert build_artifact(MANIFEST, archive) == build_artifact(MANIFEST, code)


def test_reserved_names_and_missing_code_are_refused(tmp_path: Path) -> None:
    code = _code(tmp_path / "code")
    (code / "agentform.json").write_text("{}")
    with pytest.raises(PackagingError, match="collides"):
        build_artifact(MANIFEST, code)
    with pytest.raises(PackagingError, match=r"neither a directory nor a \.zip"):
        build_artifact(MANIFEST, tmp_path / "missing")


def test_versions_cover_code_and_configuration_not_scaling() -> None:
    spec = DeploymentSpec(artifact="sha256:" + "a" * 64)
    assert version_of(spec) == version_of(DeploymentSpec(artifact="sha256:" + "a" * 64))
    assert version_of(spec) != version_of(spec.model_copy(update={"memory_mb": 1024}))
    assert version_of(spec) != version_of(spec.model_copy(update={"config": {"mode": "fast"}}))
    scaled = spec.model_copy(update={"enabled": False, "policies": ["eu"]})
    assert version_of(spec) == version_of(scaled)


def test_an_artifact_is_zipped_once_and_rebuilt_when_its_code_changes(tmp_path: Path) -> None:
    code = _code(tmp_path / "code")
    first = build_artifact(MANIFEST, code)
    assert build_artifact(MANIFEST, code) is first  # `check` then `create`: zipped once
    (code / "tool.py").write_text("def main():\n    return 3\n")
    changed = build_artifact(MANIFEST, code)
    assert digest_of(changed) != digest_of(first)
    assert zipfile.ZipFile(io.BytesIO(changed)).read("tool.py") == b"def main():\n    return 3\n"
