"""`agentform.Environment`: a stage such as `development` or `production`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from pulumi.dynamic import CheckFailure

from agentform.resources._provider import (
    AgentformProvider,
    ProviderError,
    name_failures,
    typed_options,
)
from agentform.resources.policy import Policy
from agentform.settings import connection_inputs
from agentform_runtime.specs import EnvironmentSpec

if TYPE_CHECKING:
    from agentform.platforms import Platform


class EnvironmentProvider(AgentformProvider):
    label = "Environment"
    fields: ClassVar[tuple[str, ...]] = ("name", "description", "policies")

    def validate(self, inputs: dict[str, Any]) -> list[CheckFailure]:
        failures = name_failures(self.label, inputs)
        body: dict[str, Any] = {k: inputs[k] for k in ("description", "policies") if k in inputs}
        return failures + self.model_failures(EnvironmentSpec, body, self.label)

    @staticmethod
    def spec(inputs: dict[str, Any]) -> EnvironmentSpec:
        return EnvironmentSpec(
            description=inputs.get("description", ""), policies=inputs.get("policies", [])
        )

    def claim(self, platform: Platform, inputs: dict[str, Any]) -> None:
        """Refuse to take over an environment another stack or project manages: one with the
        same name and other settings. One with the same settings is adopted, so a create
        retried after a failure, or after the stack's state was lost, still works."""
        current = platform.get_environment(inputs["name"])
        if current is None:
            return
        found = EnvironmentSpec(
            description=current.get("description") or "",
            policies=current.get("policies") or [],
        )
        if found == self.spec(inputs):
            return
        where = "on AWS" if self.settings.platform == "aws" else "on the host"
        raise ProviderError(
            f"{self.describe(inputs)}: environment '{inputs['name']}' already exists {where} "
            "with other settings (another stack or project manages it); give this Environment "
            "another name= (or use another stack name), or delete that environment first"
        )

    def apply(self, platform: Platform, inputs: dict[str, Any]) -> dict[str, Any]:
        return platform.put_environment(inputs["name"], self.spec(inputs))

    def fetch(self, platform: Platform, state: dict[str, Any]) -> dict[str, Any] | None:
        current = platform.get_environment(state["name"])
        if current is None:
            return None
        return {"description": current["description"], "policies": current["policies"]}

    def remove(self, platform: Platform, state: dict[str, Any]) -> None:
        platform.delete_environment(state["name"])


class Environment(pulumi.dynamic.Resource, module="agentform", name="Environment"):
    """A named stage (`development`, `production`, ...) with environment-level policies.

    One Pulumi stack manages one environment, named after the stack unless `name=` is given.
    Creating it never takes over another stack's: it fails when the platform already has an
    environment of that name with another description or other policies, and adopts one with
    the same settings."""

    name: pulumi.Output[str]
    """The environment's name on the platform."""
    description: pulumi.Output[str]
    policies: pulumi.Output[list[str]]
    """Names of the environment-level policies."""
    policy_specs: pulumi.Output[list[dict[str, Any]]]
    """The policies themselves, which deployments check theirs against at preview."""
    run_url: pulumi.Output[str]
    """Base URL of the run gateway for this environment."""

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str] | None = None,
        description: pulumi.Input[str] = "",
        policies: Sequence[Policy] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param name: The environment's name on the platform (DNS-safe); defaults to the stack's
            name (`pulumi.get_stack()`), so one program serves every stage. Pass `name=` to fix
            it, e.g. to keep the name an existing stack's environment already has.
        :param description: Free text shown in listings.
        :param policies: Policies every deployment in this environment inherits.
        :param opts: Pulumi resource options.
        """
        super().__init__(
            EnvironmentProvider(resource_name),
            resource_name,
            {
                "name": name if name is not None else pulumi.get_stack(),
                "description": description,
                "policies": [p.name for p in policies],
                "policy_specs": [p.spec for p in policies],
                "run_url": None,
                **connection_inputs(),
            },
            # Replacements delete the old environment first, even forced ones (`pulumi up
            # --replace`, create-before-delete by default): old and new have the same name on
            # the platform, so deleting the old one last would delete the new one.
            typed_options(
                pulumi.ResourceOptions.merge(
                    pulumi.ResourceOptions(delete_before_replace=True), opts
                )
            ),
        )
