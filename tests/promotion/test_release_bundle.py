"""Release bundles and pins without the engine: digests, state parsing, hand edits."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from agentform.release import (
    Pin,
    ReleaseError,
    bundle_from_state,
    differing_policy_types,
    parse_pin,
)

ARTIFACT = "sha256:" + "a" * 64


def _deployment(name: str, **outputs: Any) -> dict[str, Any]:
    return {
        "type": "pulumi-python:dynamic:Resource",
        "urn": f"urn:pulumi:dev::p::pulumi-python:dynamic:Resource::{name}-deployment",
        "outputs": {
            "environment": "dev",
            "kind": "functions",
            "name": name,
            "artifact": ARTIFACT,
            "version": "v1",
            "url": f"http://h/run/dev/functions/{name}",
            "policies": [],
            "policy_specs": [],
            **outputs,
        },
    }


def _state(*resources: dict[str, Any]) -> dict[str, Any]:
    other = {"type": "pulumi-python:dynamic:Resource", "outputs": {"name": "x", "artifact": "y"}}
    return {"resources": [other, *resources]}


def test_same_deployments_give_the_same_digest_in_any_order() -> None:
    a, b = _deployment("a"), _deployment("b", memory_mb=1024)
    first, second = bundle_from_state(_state(a, b)), bundle_from_state(_state(b, a))
    assert first.digest == second.digest and first.digest.startswith("rel-")
    assert [e.key for e in first.deployments] == ["functions/a", "functions/b"]
    assert first.deployments[0].configuration.memory_mb == 512  # the default, filled in
    changed = bundle_from_state(_state(a, _deployment("b", memory_mb=2048)))
    assert changed.digest != first.digest


def test_the_digest_covers_what_is_promoted_not_the_versions() -> None:
    # The same release on another stack runs other versions (its own connections, ...).
    dev = bundle_from_state(_state(_deployment("a", version="v-dev")))
    prod = bundle_from_state(_state(_deployment("a", version="v-prod")))
    assert dev.digest == prod.digest
    assert prod.deployments[0].version == "v-prod"  # still in the bundle, for reading
    # A default set explicitly is the same deployment as one left unset.
    explicit = bundle_from_state(_state(_deployment("a", memory_mb=512, timeout_s=60)))
    assert explicit.digest == dev.digest
    for other in (
        _deployment("a", artifact="sha256:" + "c" * 64),
        _deployment("a", config={"k": "v"}),
        _deployment("a", timeout_s=30),
        _deployment("a", policies=["eu"], policy_specs=[{"type": "location"}]),
    ):
        assert bundle_from_state(_state(other)).digest != dev.digest


def test_a_pin_written_before_versions_left_the_digest_is_accepted() -> None:
    # Then: defaults filled in, and the digest over the whole entries, versions included.
    entry = {
        "kind": "functions",
        "name": "a",
        "artifact": ARTIFACT,
        "configuration": {"memory_mb": 512, "timeout_s": 60, "config": {}},
        "policies": [],
        "version": "v1",
    }
    canonical = json.dumps([entry], sort_keys=True, separators=(",", ":"))
    old_digest = "rel-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    old = {
        "digest": old_digest,
        "deployments": [entry],
        "origin": "dev",
        "promoted_at": "2026-01-01T00:00:00+00:00",
        "promoted_by": "me@here",
        "with_policies": False,
    }
    pin = parse_pin(json.dumps(old))
    assert pin is not None
    # It comes back with today's digest: the one `release show` prints for these deployments.
    assert pin.digest == bundle_from_state(_state(_deployment("a"))).digest != old_digest
    old["deployments"][0]["artifact"] = "sha256:" + "b" * 64  # type: ignore[index]
    with pytest.raises(ReleaseError, match="edited by hand"):
        parse_pin(json.dumps(old))


def test_a_hand_edited_pin_is_refused_with_the_reason() -> None:
    bundle = bundle_from_state(_state(_deployment("a")))
    pin = Pin(
        digest=bundle.digest,
        deployments=bundle.deployments,
        origin="dev",
        promoted_at="2026-01-01T00:00:00+00:00",
        promoted_by="me@here",
    )
    assert parse_pin(pin.to_config()) == pin
    edited = json.loads(pin.to_config())
    edited["deployments"][0]["artifact"] = "sha256:" + "b" * 64
    with pytest.raises(ReleaseError, match="edited by hand"):
        parse_pin(json.dumps(edited))
    with pytest.raises(ReleaseError, match="is not a release pin"):
        parse_pin('{"digest": 3}')
    assert parse_pin(None) is None


def test_secret_configuration_cannot_be_released() -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
    with pytest.raises(ReleaseError, match="config of functions/a is a secret"):
        bundle_from_state(_state(_deployment("a", config=secret)))


def test_policy_types_that_differ_are_named() -> None:
    budget = {"type": "max_tokens", "budgets": [{"window": "hour", "total": 5}]}
    europe = {"type": "location", "values": ["europe"]}
    assert differing_policy_types([europe], [europe, budget]) == ["max_tokens"]
    assert differing_policy_types([europe], [{"type": "location", "values": ["us"]}]) == [
        "location"
    ]
    assert differing_policy_types([europe, budget], [budget, europe]) == []
