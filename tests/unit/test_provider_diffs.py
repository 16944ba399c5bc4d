"""What the dynamic providers' diff reports (called directly, as the engine would)."""

from __future__ import annotations

from agentform.resources._provider import UNKNOWN
from agentform.resources.deployment import DeploymentProvider
from agentform.resources.workloads import ModelApiProvider

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
