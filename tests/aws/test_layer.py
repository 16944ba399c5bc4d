"""The Lambda layer of the runtime's packages: what it holds, that it is built the same every
time, and that a failed build says why. (Its publishing is in test_aws_platform.py; that a
deployed zip imports from it, and from nothing else but Lambda's own packages, is what every
test under tests/aws_runtime/ runs on.)"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from agentform.platforms.aws import layer
from agentform_runtime.errors import AgentformError


def _names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


@pytest.mark.parametrize(("architecture", "machine"), [("x86_64", "x86_64"), ("arm64", "aarch64")])
def test_the_layer_holds_the_runtime_packages_for_its_architecture(
    architecture: str, machine: str
) -> None:
    names = _names(layer.build_layer(architecture))
    tops = {n.split("/")[1] for n in names}
    assert all(n.startswith("python/") for n in names)  # Lambda's /opt/python
    for package in ("pydantic", "pydantic_core", "jsonschema", "httpx", "jwt", "cryptography"):
        assert package in tops, package
    # What Lambda's python3.11 runtime brings stays out, and so do byte-code and scripts.
    assert not tops & {"boto3", "botocore", "urllib3", "awslambdaric", "bin"}
    assert not [n for n in names if n.endswith(".pyc") or "/__pycache__/" in n]
    assert f"python/pydantic_core/_pydantic_core.cpython-311-{machine}-linux-gnu.so" in names


def test_the_layer_pins_the_versions_this_process_runs() -> None:
    import pydantic

    assert f"pydantic=={pydantic.VERSION}" in layer.requirements()
    assert not [r for r in layer.requirements() if r.startswith(("boto3==", "botocore=="))]


def test_a_build_gives_the_same_bytes_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = layer.build_layer("x86_64")
    monkeypatch.setenv("AGENTFORM_CACHE", str(tmp_path / "fresh"))
    rebuilt = layer.build_layer("x86_64")  # from wheels again, into an empty cache
    # Digests, not bytes: a failed comparison of two 9 MB values would be diffed for minutes.
    assert hashlib.sha256(rebuilt).hexdigest() == hashlib.sha256(cached).hexdigest()
    assert [p.name for p in (tmp_path / "fresh" / "lambda-layers").iterdir()] == [
        p.name for p in layer.cache_dir().iterdir()
    ]
    # Every file a RECORD lists is in the layer: pip's scripts, which name the interpreter that
    # installed them (so differ between virtualenvs), are neither in it nor in its RECORDs.
    with zipfile.ZipFile(io.BytesIO(rebuilt)) as archive:
        names = set(archive.namelist())
        for record in (n for n in names if n.endswith(".dist-info/RECORD")):
            for line in archive.read(record).decode().splitlines():
                assert f"python/{line.split(',')[0]}" in names, (record, line)


def test_a_failed_build_names_the_index_and_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTFORM_CACHE", str(tmp_path / "empty"))
    # A closed port as the index, no retries and no pip cache: pip must fail, and fast.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(AgentformError) as failed:
        layer.build_layer("x86_64")
    assert failed.value.code == "LayerBuildFailed"
    assert "manylinux2014_x86_64" in failed.value.message
    assert "PIP_INDEX_URL" in failed.value.message
    assert str(tmp_path / "empty" / "lambda-layers") in failed.value.message
    assert not (tmp_path / "empty" / "lambda-layers").exists()  # no partial zip left


def test_an_unknown_architecture_is_refused() -> None:
    with pytest.raises(AgentformError) as failed:
        layer.build_layer("s390x")
    assert failed.value.code == "BadArchitecture"
    assert "x86_64 or arm64" in failed.value.message
