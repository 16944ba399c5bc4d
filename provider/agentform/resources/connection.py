"""`agentform.IntegrationConnection`: credentials and configuration for one provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from pulumi.dynamic import CheckFailure

from agentform.resources._provider import AgentformProvider, name_failures, typed_options
from agentform.settings import connection_inputs
from agentform_runtime.specs import ConnectionSpec

if TYPE_CHECKING:
    from agentform.platforms import Platform


class IntegrationConnectionProvider(AgentformProvider):
    label = "IntegrationConnection"
    fields: ClassVar[tuple[str, ...]] = ("name", "provider", "config", "secrets")

    def validate(self, inputs: dict[str, Any]) -> list[CheckFailure]:
        body = {
            k: inputs.get(k) for k in ("provider", "config", "secrets") if inputs.get(k) is not None
        }
        return name_failures(self.label, inputs) + self.model_failures(
            ConnectionSpec, body, f"{self.label} '{inputs.get('name')}'"
        )

    def apply(self, platform: Platform, inputs: dict[str, Any]) -> dict[str, Any]:
        spec = ConnectionSpec(
            provider=inputs["provider"],
            config=inputs.get("config") or {},
            secrets=inputs.get("secrets") or {},
        )
        platform.put_connection(inputs["name"], spec)
        return {"secret_keys": sorted(spec.secrets)}

    def fetch(self, platform: Platform, state: dict[str, Any]) -> dict[str, Any] | None:
        current = platform.get_connection(state["name"])
        if current is None:
            return None
        return {
            "provider": current["provider"],
            "config": current["config"],
            "secret_keys": current["secret_keys"],
        }

    def remove(self, platform: Platform, state: dict[str, Any]) -> None:
        platform.delete_connection(state["name"])


class IntegrationConnection(
    pulumi.dynamic.Resource, module="agentform", name="IntegrationConnection"
):
    """Named credentials and configuration for a provider (OpenAI, Anthropic, any
    OpenAI-compatible server). Secret values are write-only on the platform (encrypted at rest,
    never returned) and always Pulumi secrets here: the engine keeps them encrypted in state
    and in outputs, because the input they come from is secret."""

    name: pulumi.Output[str]
    provider: pulumi.Output[str]
    config: pulumi.Output[dict[str, str]]
    secret_keys: pulumi.Output[list[str]]
    """The names of the secrets the connection holds (never their values)."""

    def __init__(
        self,
        resource_name: str,
        *,
        provider: pulumi.Input[str],
        secrets: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        config: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param provider: `openai`, `anthropic`, `openai-compatible` or `generic`.
        :param secrets: Secret values, e.g. `{"api_key": config.require_secret("openai_api_key")}`.
            Always stored as Pulumi secrets.
        :param config: Non-secret settings, e.g. `{"base_url": "http://localhost:11434/v1"}`.
        :param name: The connection's name on the platform (DNS-safe); defaults to `resource_name`.
        :param opts: Pulumi resource options.
        """
        super().__init__(
            IntegrationConnectionProvider(resource_name),
            resource_name,
            {
                "name": name if name is not None else resource_name,
                "provider": provider,
                "config": config or {},
                "secrets": pulumi.Output.secret(secrets or {}),
                "secret_keys": None,
                **connection_inputs(),
            },
            typed_options(opts),
        )
