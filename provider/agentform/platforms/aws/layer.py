"""The Lambda layer that carries the runtime's packages.

A deployment's zip holds its code and `agentform_runtime`: the same zip as on the local host.
Lambda's python3.11 runtime brings its own runtime interface client and boto3 with what boto3
needs; everything else `agentform_runtime` imports (pydantic, jsonschema, httpx, PyJWT,
cryptography and their dependencies: `agentform_runtime.lambda_packages`) travels in one
layer per architecture, `agentform-runtime-<arch>`, which every function lists:

- built with pip from wheels for Lambda's platform (manylinux2014, CPython 3.11) at exactly
  the versions this process runs, so what runs on Lambda is what the tests ran;
- kept as a zip in `$AGENTFORM_CACHE` (default `~/.cache/agentform`) under `lambda-layers/`,
  so pip (and PyPI, or the index `PIP_INDEX_URL` names) is needed once per architecture and
  version set; the zip is the same bytes on every build, whichever Python builds it;
- published once per region and content: a layer version's description names the zip's
  SHA-256, so the next deploy finds it (ListLayerVersions) instead of publishing again.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from agentform import packaging
from agentform.platforms.aws import catalog
from agentform.platforms.aws.session import AwsSession
from agentform_runtime import lambda_packages
from agentform_runtime.errors import AgentformError

RUNTIME = "python3.11"  # the Lambda runtime every function runs on; the layer's wheels match
WHEEL_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
_RECIPE = 2  # how the zip is made: a new value leaves zips cached by an older recipe unused
_PIP_TIMEOUT_S = 600
_build_locks: dict[str, threading.Lock] = {}
_publish_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_lock = threading.Lock()
_loaded: dict[Path, tuple[bytes, str]] = {}  # cache file -> (zip, its SHA-256)


def layer_name(architecture: str) -> str:
    return f"agentform-runtime-{architecture}"


def cache_dir() -> Path:
    root = os.environ.get("AGENTFORM_CACHE") or str(Path.home() / ".cache" / "agentform")
    return Path(root) / "lambda-layers"


@functools.cache
def requirements() -> tuple[str, ...]:
    """`name==version` for every distribution the layer holds, sorted (read once: what is
    installed does not change under a running provider)."""
    provided = lambda_packages.closure(lambda_packages.LAMBDA_PACKAGES)
    needed = lambda_packages.closure(lambda_packages.LAYER_PACKAGES)
    missing = [
        p for p in lambda_packages.LAYER_PACKAGES if lambda_packages.normalized(p) not in needed
    ]
    if missing:
        raise AgentformError(
            500,
            "LayerBuildFailed",
            f"{', '.join(missing)} not installed in this Python ({sys.executable}): install "
            "agentform with its dependencies",
        )
    return tuple(
        sorted(f"{name}=={version}" for name, version in needed.items() if name not in provided)
    )


def _zip_directory(root: Path) -> bytes:
    """`root`'s files under `python/` (where Lambda puts layers on `sys.path`), zipped so that
    the same files give the same bytes."""
    entries: dict[str, bytes] = {}
    for directory, dirs, names in os.walk(root):
        top = Path(directory) == root
        dirs[:] = [d for d in dirs if d != "__pycache__" and not (top and d == "bin")]
        for name in names:
            if not name.endswith(".pyc"):
                path = Path(directory, name)
                entries[f"python/{path.relative_to(root).as_posix()}"] = _contents(path)
    return packaging.deterministic_zip(entries)


def _contents(path: Path) -> bytes:
    """A file's bytes; a RECORD without the scripts pip put in `bin/`: the layer leaves them
    out, and their first line names the interpreter that installed them."""
    data = path.read_bytes()
    if path.name == "RECORD" and path.parent.name.endswith(".dist-info"):
        lines = data.decode().splitlines(keepends=True)
        data = "".join(line for line in lines if not line.startswith("../")).encode()
    return data


def _pip_install(pins: tuple[str, ...], platform: str, target: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        platform,
        "--implementation",
        "cp",
        "--python-version",
        RUNTIME.removeprefix("python"),
        "--abi",
        "cp" + RUNTIME.removeprefix("python").replace(".", ""),
        "--target",
        str(target),
        *pins,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _build_failed(platform, f"{' '.join(command[:4])} could not run: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise _build_failed(platform, f"pip exited {done.returncode}: {tail}")


def _build_failed(platform: str, detail: str) -> AgentformError:
    return AgentformError(
        502,
        "LayerBuildFailed",
        f"building the Lambda layer of the runtime's packages ({platform} wheels) failed: "
        f"{detail}. pip downloads them once from PyPI (or PIP_INDEX_URL); the zip is then "
        f"kept in {cache_dir()}",
    )


def build_layer(architecture: str) -> bytes:
    """The layer's zip for `architecture` ("x86_64" or "arm64"), from the cache or built."""
    return _layer(architecture)[0]


def _layer(architecture: str) -> tuple[bytes, str]:
    """(the layer's zip, its SHA-256), read or built once per process and cache file: every
    deployment a provider puts lists the layer."""
    platform = WHEEL_PLATFORMS.get(architecture)
    if platform is None:
        raise AgentformError(
            400,
            "BadArchitecture",
            f"no Lambda layer for architecture '{architecture}': "
            f"{' or '.join(WHEEL_PLATFORMS)} only",
        )
    pins = requirements()
    recipe = [str(_RECIPE), platform, RUNTIME, *pins]
    key = hashlib.sha256("\n".join(recipe).encode()).hexdigest()[:16]
    cached = cache_dir() / f"{architecture}-{key}.zip"
    with _lock(_build_locks, key):
        if cached not in _loaded:
            try:
                data = cached.read_bytes()
            except FileNotFoundError:
                data = _build(pins, platform, cached)
            _loaded[cached] = (data, hashlib.sha256(data).hexdigest())
        return _loaded[cached]


def _build(pins: tuple[str, ...], platform: str, cached: Path) -> bytes:
    with tempfile.TemporaryDirectory(prefix="agentform-layer-") as tmp:
        _pip_install(pins, platform, Path(tmp) / "python")
        data = _zip_directory(Path(tmp) / "python")
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, cached)  # whole or absent, for other processes building it too
    return data


def ensure_layer(aws: AwsSession, region: str, architecture: str) -> str:
    """The ARN of the layer version holding this runtime's packages for `architecture` in
    `region`: an existing one with the same content, or one published now."""
    data, digest = _layer(architecture)
    description = f"agentform runtime packages sha256:{digest}"
    name = layer_name(architecture)
    lam = aws.client("lambda", region)
    with _lock(_publish_locks, (region, architecture)):
        found = _find(lam, name, description)
        if found:
            return found
        published = lam.publish_layer_version(
            LayerName=name,
            Description=description,
            Content=catalog.code_location(aws, region, data),
            CompatibleRuntimes=[RUNTIME],
            CompatibleArchitectures=[architecture],
        )
        return str(published["LayerVersionArn"])


def _find(lam: Any, name: str, description: str) -> str | None:
    try:
        for page in lam.get_paginator("list_layer_versions").paginate(LayerName=name):
            for version in page["LayerVersions"]:
                if version.get("Description") == description:
                    return str(version["LayerVersionArn"])
    except lam.exceptions.ResourceNotFoundException:
        return None
    return None


def _lock(locks: dict[Any, threading.Lock], key: Any) -> threading.Lock:
    """One lock per key: the dynamic provider puts several deployments at once."""
    with _locks_lock:
        return locks.setdefault(key, threading.Lock())
