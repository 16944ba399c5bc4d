"""The pin of the stack a program runs for, as the hidden inputs of its resources.

A pinned stack (`agentform:release` in its config, written by `agentform promote`) deploys
exactly the pinned artifacts and configuration: workloads take their artifact from the pin
instead of packaging the working tree, and deployments take the pinned configuration."""

from __future__ import annotations

import functools
from typing import Any

import pulumi

from agentform.release import Pin, ReleaseError, parse_pin


@functools.cache
def current_pin() -> tuple[Pin | None, str | None]:
    """(pin, None), (None, why it is unusable), or (None, None) when the stack is not pinned."""
    try:
        return parse_pin(pulumi.Config("agentform").get("release")), None
    except ReleaseError as exc:
        return None, str(exc)


def pin_inputs(kind: pulumi.Input[str], name: pulumi.Input[str]) -> dict[str, Any]:
    """The hidden inputs telling a workload's or deployment's provider what the pin says about
    it; none at all on an unpinned stack, so its resources stay as they were."""
    pin, error = current_pin()
    if error is not None:
        return {"release": "invalid", "pin_error": error}
    if pin is None:
        return {}

    def lookup(args: list[Any]) -> dict[str, Any] | None:
        entry = pin.entry(str(args[0]), str(args[1]))
        return entry.model_dump(mode="json") if entry is not None else None

    return {
        "release": pin.digest,
        "release_origin": pin.origin,
        "with_policies": pin.with_policies,
        "pinned": pulumi.Output.all(kind, name).apply(lookup),
    }


def pin_failure(inputs: dict[str, Any], label: str) -> str | None:
    """Why a pinned resource cannot be deployed, or None."""
    from agentform.release import pin_message_missing

    if inputs.get("pin_error"):
        return f"{label}: {inputs['pin_error']}"
    if inputs.get("release") and inputs.get("pinned") is None:
        key = f"{inputs.get('kind')}/{inputs.get('name')}"
        return f"{label}: " + pin_message_missing(
            str(inputs["release"]), str(inputs.get("release_origin")), key
        )
    return None
