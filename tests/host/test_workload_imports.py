"""A worker imports what it could import on Lambda: its own code, the standard library and
the packages Lambda's runtime and Agentform's layer bring; not the rest of the host's
environment (here: psutil and moto, which the tests have installed)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from agentform.packaging import build_artifact
from agentform_runtime.specs import Manifest, WorkloadKind
from tests.support.hosts import RunningHost
from tests.support.workloads import deploy, setup_environment

PROBE = """
import importlib, importlib.metadata, sys


def main() -> dict:
    found = {}
    for name in ("psutil", "moto", "agentform", "pydantic", "jsonschema", "httpx", "jwt",
                 "cryptography.fernet", "boto3", "shipped"):
        try:
            module = importlib.import_module(name)
            found[name] = getattr(module, "ORIGIN", "imported")
        except ImportError as exc:
            found[name] = f"{type(exc).__name__}: {exc}"
    for name in ("pydantic", "psutil"):
        try:
            found[f"version {name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[f"version {name}"] = "PackageNotFoundError"
    found["path"] = sys.path
    return found
"""


def test_a_worker_imports_only_what_it_would_have_on_lambda(
    host: RunningHost, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    (code / "shipped").mkdir(parents=True)
    (code / "shipped" / "__init__.py").write_text('ORIGIN = "the artifact"\n')
    (code / "tool.py").write_text(PROBE)
    artifact = build_artifact(
        Manifest(kind=WorkloadKind.FUNCTIONS, name="probe", entrypoint="tool:main"), code
    )
    admin = host.admin()
    key = setup_environment(admin)
    deploy(admin, artifact, "probe").raise_for_status()

    answer = host.client(key).post("/run/development/functions/probe", json={})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    # Installed here, yet not on Lambda: refused as Lambda would refuse them.
    for name in ("psutil", "moto", "agentform"):
        assert found[name] == f"ModuleNotFoundError: No module named '{name}'", found
    assert found["version psutil"] == "PackageNotFoundError"
    # The layer's packages, Lambda's own, and what the artifact ships.
    for name in ("pydantic", "jsonschema", "httpx", "jwt", "cryptography.fernet", "boto3"):
        assert found[name] == "imported", (name, found[name])
    assert found["version pydantic"] == importlib.metadata.version("pydantic")
    assert found["shipped"] == "the artifact"
    assert found["path"][0] == "/var/task"
    assert not [p for p in found["path"] if "site-packages" in p], found["path"]
