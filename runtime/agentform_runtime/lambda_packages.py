"""What a workload may import besides its own artifact and the standard library: the same on
AWS Lambda and on the local host, so that code that runs locally runs on Lambda.

Lambda's python3.11 runtime brings its runtime interface client (awslambdaric) and boto3,
with what they depend on; Agentform's runtime layer brings what `agentform_runtime` imports
beyond those (pydantic, jsonschema, httpx, PyJWT, cryptography, with theirs). Anything else
a workload needs ships in its code directory (for example `pip install --target`)."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable

# What `agentform_runtime` imports beyond the standard library, boto3 and awslambdaric: the
# runtime layer.
LAYER_PACKAGES = ("pydantic", "jsonschema", "httpx", "pyjwt", "cryptography")
# Lambda's python3.11 runtime ships these and what they depend on.
LAMBDA_PACKAGES = ("boto3", "awslambdaric")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: Iterable[str]) -> dict[str, str]:
    """The installed distributions `names` need (normalized name -> version). A requirement
    behind an extra is left out; one behind another marker counts only if it is installed
    (this process runs the same Python minor version and OS family as Lambda)."""
    found: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = normalized(todo.pop())
        if name in found:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found[name] = distribution.version
        for requirement in distribution.requires or []:
            if "extra" in requirement.partition(";")[2]:
                continue
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
            if match:
                todo.append(match.group(1))
    return found


def workload_distributions() -> dict[str, str]:
    """Every distribution a workload may import from: the layer's and Lambda's own."""
    return closure(LAYER_PACKAGES + LAMBDA_PACKAGES)


def top_level_names(distributions: Iterable[str]) -> set[str]:
    """The top-level modules and packages the installed `distributions` provide."""
    names: set[str] = set()
    for name in distributions:
        for file in importlib.metadata.distribution(name).files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.endswith((".dist-info", ".data", ".pth")):
                continue
            names.add(top.split(".", 1)[0])  # a package, `module.py` or `module.<abi>.so`
    return names
