"""Release bundles: the versions a stack runs, as one reviewable document.

A bundle lists, for each deployment of a stack, its workload (kind, name), artifact digest,
configuration and deployment-level policies, with one digest over all of them (`rel-<hex>`):
the same deployments always give the same digest, on any stack. Each entry also says the
version its stack ran, for reading only: a version also covers what stays each stack's own
(its connections, ...), so it is not part of the digest. A *pin* is a bundle written
into another stack's config (`agentform:release` in `Pulumi.<stack>.yaml`) with where it came
from; a pinned stack deploys exactly the pinned artifacts and never builds its working tree.

This module imports neither Pulumi nor httpx: the program, the providers and the CLI share it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentform_runtime.specs import DeploymentSpec

#: The stack config key that holds a pin (namespace `agentform`, key `release`).
RELEASE_KEY = "agentform:release"
#: What to do about a pin that cannot be used (`agentform promote` replaces it).
PIN_REMEDY = "promote again or `agentform release unpin`"
#: How many releases `agentform release list` shows and `--rollback` can go back through.
HISTORY_LIMIT = 10

_DEFAULTS = DeploymentSpec.model_fields
# A Pulumi secret in exported state: {"4dabf18193072939515e22adb298388d": <sig>, ...}.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"


class ReleaseError(ValueError):
    """A bundle or pin that cannot be used; the message says which and what to do."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PinnedPolicy(_Strict):
    """A deployment-level policy as its origin stack declared it."""

    name: str
    spec: dict[str, Any]


class Configuration(_Strict):
    """The configuration that shapes a version's behaviour (defaults filled in)."""

    memory_mb: int
    timeout_s: int
    config: dict[str, str] = Field(default_factory=dict)


class BundleEntry(_Strict):
    """One deployment of a release."""

    kind: str
    name: str
    artifact: str
    configuration: Configuration
    policies: list[PinnedPolicy] = Field(default_factory=list)
    version: str = Field(
        description="the version its stack ran (for reading; not part of the bundle's digest)"
    )

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def promoted(self) -> dict[str, Any]:
        """What a promotion carries over, in canonical form: what the digest covers."""
        return self.model_dump(mode="json", exclude={"version"})


def _digest(items: list[Any]) -> str:
    canonical = json.dumps(items, sort_keys=True, separators=(",", ":"))
    return "rel-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def bundle_digest(entries: Iterable[BundleEntry]) -> str:
    """`rel-<hex>`: sha256 over the canonical JSON of what the entries promote, in key order:
    workload, artifact, configuration and policies. Not the versions: those differ between
    stacks running the same release (each stack's connections, ...)."""
    return _digest([e.promoted() for e in sorted(entries, key=lambda e: e.key)])


def legacy_bundle_digest(entries: Iterable[BundleEntry]) -> str:
    """The digest pins written before it left the versions out had: over the whole entries."""
    ordered = sorted(entries, key=lambda e: e.key)
    return _digest([e.model_dump(mode="json") for e in ordered])


class Bundle(_Strict):
    """The deployments of one stack, and the digest over them."""

    digest: str
    deployments: list[BundleEntry]

    @classmethod
    def of(cls, entries: Iterable[BundleEntry]) -> Bundle:
        ordered = sorted(entries, key=lambda e: e.key)
        return cls(digest=bundle_digest(ordered), deployments=ordered)

    def entry(self, kind: str, name: str) -> BundleEntry | None:
        return next((e for e in self.deployments if e.kind == kind and e.name == name), None)

    def artifacts(self) -> list[str]:
        return sorted({e.artifact for e in self.deployments})


class Pin(Bundle):
    """A bundle pinned in a destination stack's config, with its provenance."""

    origin: str = Field(description="the stack it was promoted from")
    promoted_at: str = Field(description="UTC, ISO 8601")
    promoted_by: str = Field(description="user@host that ran `agentform promote`")
    with_policies: bool = False

    def verified(self) -> Pin:
        """Self, when the digest still matches the deployments (not edited by hand). A pin
        written before the digest left the versions out is accepted when its old digest
        matches, and comes back with today's digest, the one `release show` prints."""
        actual = bundle_digest(self.deployments)
        if actual != self.digest and legacy_bundle_digest(self.deployments) == self.digest:
            return self.model_copy(update={"digest": actual})
        if actual != self.digest:
            raise ReleaseError(
                f"{RELEASE_KEY} says {self.digest} but its deployments digest to {actual}: "
                f"the pin was edited by hand; {PIN_REMEDY}"
            )
        return self

    def to_config(self) -> str:
        """The config value: indented JSON, so `Pulumi.<stack>.yaml` shows one line per field
        and a promotion is a readable diff."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)


def parse_pin(text: str | None) -> Pin | None:
    """The pin in a config value (None when there is none), verified against its digest."""
    if text is None or not text.strip():
        return None
    try:
        pin = Pin.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        raise ReleaseError(
            f"{RELEASE_KEY} is not a release pin ({where}: {first['msg']}); {PIN_REMEDY}"
        ) from None
    return pin.verified()


# --- bundles from a stack's state ---------------------------------------------------------------

_DEPLOYMENT_KEYS = {"environment", "kind", "artifact", "version", "url"}


def _is_deployment(resource: Mapping[str, Any]) -> bool:
    outputs = resource.get("outputs") or {}
    token = str(resource.get("type", ""))
    return token.endswith("Deployment") or (
        token == "pulumi-python:dynamic:Resource" and outputs.keys() >= _DEPLOYMENT_KEYS
    )


def _plain(value: Any, what: str) -> Any:
    if isinstance(value, dict) and _SECRET_SIG in value:
        raise ReleaseError(f"{what} is a secret; a release carries plain configuration only")
    return value


def entry_from_outputs(outputs: Mapping[str, Any]) -> BundleEntry:
    """A bundle entry from a Deployment's outputs in stack state."""
    label = f"{outputs.get('kind')}/{outputs.get('name')}"
    names = list(outputs.get("policies") or [])
    specs = list(outputs.get("policy_specs") or [])
    default_memory = _DEFAULTS["memory_mb"].default
    default_timeout = _DEFAULTS["timeout_s"].default
    return BundleEntry(
        kind=str(outputs["kind"]),
        name=str(outputs["name"]),
        artifact=str(outputs["artifact"]),
        version=str(outputs.get("version") or ""),
        configuration=Configuration(
            memory_mb=int(outputs.get("memory_mb") or default_memory),
            timeout_s=int(outputs.get("timeout_s") or default_timeout),
            config=_plain(outputs.get("config") or {}, f"config of {label}"),
        ),
        policies=[
            PinnedPolicy(name=n, spec=_plain(s, f"policy {n} of {label}"))
            for n, s in zip(names, specs, strict=False)
        ],
    )


def bundle_from_state(deployment: Mapping[str, Any]) -> Bundle:
    """The bundle of an exported stack state (`pulumi stack export`'s `deployment`)."""
    resources = deployment.get("resources") or []
    entries = [entry_from_outputs(r["outputs"]) for r in resources if _is_deployment(r)]
    return Bundle.of(entries)


def environment_policies(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The environment-level policy specs the stack's deployments run under."""
    for resource in deployment.get("resources") or []:
        if _is_deployment(resource):
            return list(resource["outputs"].get("environment_policy_specs") or [])
    return []


def policy_types(specs: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Specs grouped by policy type, each group in a canonical order, for comparison."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for spec in specs:
        grouped.setdefault(str(spec.get("type")), []).append(spec)
    return {
        t: sorted(group, key=lambda s: json.dumps(s, sort_keys=True))
        for t, group in grouped.items()
    }


def differing_policy_types(
    origin: Iterable[Mapping[str, Any]], destination: Iterable[Mapping[str, Any]]
) -> list[str]:
    """The policy types set differently (or only on one side) at the two environments."""
    a, b = policy_types(origin), policy_types(destination)
    return sorted(t for t in a.keys() | b.keys() if a.get(t) != b.get(t))


def pin_message_missing(pin_digest: str, origin: str, key: str) -> str:
    """Why a pinned stack cannot deploy a workload its program declares."""
    return (
        f"{key} is not in the pinned release {pin_digest} (promoted from '{origin}'): deploy it "
        f"on '{origin}' and promote again, or `agentform release unpin` to build from code"
    )
