"""`agentform.Policy`: a rule of one type (location, flavor or max_tokens)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from pulumi.dynamic import CheckFailure

from agentform.resources._provider import (
    AgentformProvider,
    is_unknown,
    name_failures,
    typed_options,
)
from agentform.settings import connection_inputs
from agentform_runtime.specs import PolicySpec

if TYPE_CHECKING:
    from agentform.platforms import Platform

_SPEC_FIELDS = ("type", "values", "budgets", "resource_types")


def _spec(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: inputs[k] for k in _SPEC_FIELDS if inputs.get(k) is not None}


class PolicyProvider(AgentformProvider):
    label = "Policy"
    fields: ClassVar[tuple[str, ...]] = ("name", *_SPEC_FIELDS)

    def validate(self, inputs: dict[str, Any]) -> list[CheckFailure]:
        failures = name_failures(self.label, inputs)
        spec = _spec(inputs)
        if not any(is_unknown(v) for v in spec.values()):
            failures += self.model_failures(
                PolicySpec, spec, f"{self.label} '{inputs.get('name')}'"
            )
        return failures

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        result = super().check(olds, news)
        if not result.failures and not is_unknown(_spec(news)):
            result.inputs["spec"] = PolicySpec.model_validate(_spec(news)).model_dump(mode="json")
        return result

    def apply(self, platform: Platform, inputs: dict[str, Any]) -> dict[str, Any]:
        platform.put_policy(inputs["name"], inputs["spec"])
        return {}

    def fetch(self, platform: Platform, state: dict[str, Any]) -> dict[str, Any] | None:
        current = platform.get_policy(state["name"])
        if current is None:
            return None
        return {"spec": {k: current[k] for k in ("type", "values", "budgets", "resource_types")}}

    def remove(self, platform: Platform, state: dict[str, Any]) -> None:
        platform.delete_policy(state["name"])


class Policy(pulumi.dynamic.Resource, module="agentform", name="Policy"):
    """A policy: where workloads may run (`location`), on what hardware (`flavor`), or how many
    tokens they may use (`max_tokens`). Attach it to an Environment or a Deployment.

    Same-type policies on one level are OR-ed, different types AND-ed; a deployment can only
    narrow what its environment allows."""

    name: pulumi.Output[str]
    spec: pulumi.Output[dict[str, Any]]
    """The validated policy as the platform stores it."""

    def __init__(
        self,
        resource_name: str,
        *,
        type: pulumi.Input[str],
        values: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        budgets: pulumi.Input[Sequence[pulumi.Input[Mapping[str, Any]]]] | None = None,
        resource_types: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param type: `location`, `flavor` or `max_tokens`.
        :param values: For `location`: countries (`us`, `fr`, ...) or continents (`europe`,
            `north-america`, ...). For `flavor`: `cpu`, `gpu`, or a GPU kind (`t4`, `a100`, ...).
        :param budgets: For `max_tokens`: `[{"window": "minute"|"hour"|"day"|"month",
            "input"|"output"|"total": <limit>}]`.
        :param resource_types: Limit the policy to workload kinds: `agents`, `functions`, `models`.
        :param name: The policy's name on the platform (DNS-safe); defaults to `resource_name`.
        :param opts: Pulumi resource options.
        """
        super().__init__(
            PolicyProvider(resource_name),
            resource_name,
            {
                "name": name if name is not None else resource_name,
                "type": type,
                "values": values or [],
                "budgets": budgets or [],
                "resource_types": resource_types or [],
                "spec": None,
                **connection_inputs(),
            },
            typed_options(opts),
        )
