"""What the dynamic providers' diff reports (called directly, as the engine would)."""

from __future__ import annotations

import hashlib
import json

from agentform.resources._provider import UNKNOWN
from agentform.resources.deployment import DeploymentProvider
from agentform.resources.workloads import FunctionProvider, ModelApiProvider
from agentform_runtime.specs import DeploymentSpec, version_of

MODEL = {
    "name": "chat",
    "artifact": "sha256:" + "a" * 64,
    "connection": "key-a",
    "provider": "openai",
}


def test_switching_a_model_apis_connection_is_an_update() -> None:
    diff = ModelApiProvider().diff("chat", MODEL, {**MODEL, "connection": "key-b"})
    assert diff.changes is True and diff.replaces == []


def test_same_inputs_are_no_change_and_unknowns_are_a_change() -> None:
    assert ModelApiProvider().diff("chat", MODEL, dict(MODEL)).changes is False
    assert ModelApiProvider().diff("chat", MODEL, {**MODEL, "artifact": UNKNOWN}).changes is True


def test_a_deployment_is_replaced_only_when_its_identity_changes() -> None:
    deployment = {"name": "chat", "kind": "models", "environment": "dev", "memory_mb": 512}
    provider = DeploymentProvider()
    assert provider.diff("x", deployment, {**deployment, "memory_mb": 1024}).replaces == []
    assert provider.diff("x", deployment, {**deployment, "environment": "prod"}).replaces == [
        "environment"
    ]


def test_changing_a_functions_connections_is_an_update_and_a_new_version() -> None:
    function = {"name": "lookup", "artifact": "sha256:" + "b" * 64, "connections": ["db"]}
    diff = FunctionProvider().diff("lookup", function, {**function, "connections": ["db", "crm"]})
    assert diff.changes is True and diff.replaces == []
    assert FunctionProvider().diff("lookup", function, dict(function)).changes is False
    base = DeploymentSpec(artifact=str(function["artifact"]))
    with_db = base.model_copy(update={"connections": ["db"]})
    assert version_of(with_db) != version_of(base)
    # A deployment without connections keeps the version id it had before they existed.
    before = {
        "artifact": base.artifact,
        "memory_mb": 512,
        "timeout_s": 60,
        "config": {},
        "connection": None,
    }
    canonical = json.dumps(before, sort_keys=True, separators=(",", ":"))
    assert version_of(base) == "v" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_the_detailed_diff_names_each_property_with_its_kind() -> None:
    from agentform.resources._provider import DiffKind
    from agentform.resources.workloads import AgentProvider

    old = {"name": "triage", "agents": [], "functions": ["a"], "instructions": "x", "model": "m"}
    new = {
        "name": "triage",
        "agents": ["billing"],
        "functions": [],
        "instructions": "y",
        "model": "m",
    }
    changed = ["agents", "functions", "instructions"]
    assert AgentProvider().detailed_diff(old, new, changed) == {
        "agents": DiffKind.ADD,
        "functions": DiffKind.DELETE,
        "instructions": DiffKind.UPDATE,
    }
    renamed = DeploymentProvider().detailed_diff({"name": "a"}, {"name": "b"}, ["name"])
    assert renamed == {"name": DiffKind.UPDATE_REPLACE}
    unknown = DeploymentProvider().detailed_diff(
        {"environment": "a"}, {"environment": UNKNOWN}, ["environment"]
    )
    assert unknown == {"environment": DiffKind.UPDATE_REPLACE}


def test_read_back_settings_keep_unset_defaults_unset() -> None:
    from agentform.resources.deployment import read_settings

    platform = {
        "artifact": "sha256:" + "b" * 64,
        "memory_mb": 512,
        "timeout_s": 90,
        "scaling": {"min_instances": 0, "max_instances": 4, "idle_timeout_s": 300.0},
        "enabled": True,
        "config": {},
    }
    state: dict[str, object] = {"memory_mb": None, "timeout_s": None, "config": {}, "enabled": True}
    current = read_settings(platform, state)
    assert current["memory_mb"] is None  # the default, as the program left it
    assert current["timeout_s"] == 90  # changed out of band
    assert current["config"] == {} and current["enabled"] is True
