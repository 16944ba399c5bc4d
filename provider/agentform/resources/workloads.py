"""`Function`, `ModelApi` and `Agent`: what a workload is, independent of where it runs.

Each is packaged into a deterministic artifact (code + runtime + manifest). `check` builds it
and records its digest, so `pulumi preview` shows a code or configuration change as a change
of `artifact`, and the same code and configuration give no diff at all. `create`/`update`
upload it (content-addressed). A `Deployment` puts one on an `Environment`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult
from pydantic import BaseModel

from agentform.packaging import PackagingError, build_artifact
from agentform.resources._provider import (
    AgentformProvider,
    ProviderError,
    is_unknown,
    name_failures,
    typed_options,
)
from agentform.resources.connection import IntegrationConnection
from agentform.resources.pinning import pin_failure, pin_inputs
from agentform.settings import connection_inputs
from agentform_runtime.specs import AgentSpec, Manifest, ModelSpec, WorkloadKind, digest_of

if TYPE_CHECKING:
    from agentform.platforms import Platform

CodeInput = str | os.PathLike[str] | pulumi.asset.FileArchive


def code_path(code: CodeInput | None) -> str | None:
    """A directory path or a `pulumi.FileArchive` (directory or .zip) as an absolute path."""
    if code is None:
        return None
    if isinstance(code, pulumi.asset.FileArchive):
        code = code.path
    elif isinstance(code, pulumi.asset.Archive | pulumi.asset.Asset):
        raise TypeError(
            "code must be a directory path or a pulumi.FileArchive (a directory or a .zip file)"
        )
    return str(Path(code).expanduser().resolve())


class WorkloadProvider(AgentformProvider):
    kind: ClassVar[WorkloadKind]
    #: The artifact digest covers code and manifest, so it alone decides whether anything
    #: changed; the manifest's inputs are compared as well so that a diff names them.
    fields: ClassVar[tuple[str, ...]] = ("name", "artifact")
    #: The model of the manifest's `spec`, filled from the inputs of the same names.
    spec_model: ClassVar[type[BaseModel] | None] = None

    def _label(self, inputs: dict[str, Any]) -> str:
        return self.describe(inputs)

    def _spec_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs named like the spec's fields; unset ones take the spec's defaults."""
        fields = self.spec_model.model_fields if self.spec_model is not None else {}
        return {k: inputs[k] for k in fields if inputs.get(k) is not None}

    def spec(self, inputs: dict[str, Any]) -> dict[str, object]:
        """The manifest's `spec`, validated by the model the workload reads it with."""
        if self.spec_model is None:
            return {}
        return self.spec_model.model_validate(self._spec_inputs(inputs)).model_dump(mode="json")

    def validate(self, inputs: dict[str, Any]) -> list[CheckFailure]:
        failures = name_failures(self.label, inputs)
        if self.spec_model is not None:
            spec = self._spec_inputs(inputs)
            failures += self.model_failures(self.spec_model, spec, self._label(inputs))
        return failures

    def manifest(self, inputs: dict[str, Any]) -> Manifest:
        raise NotImplementedError

    def package(self, inputs: dict[str, Any]) -> bytes:
        code = inputs.get("code")
        return build_artifact(self.manifest(inputs), Path(code) if code else None)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = self.validate(news)
        inputs = dict(news)
        if news.get("release"):
            # A pinned stack runs the promoted artifact: the working tree is not packaged.
            if is_unknown(news.get("pinned")):
                return CheckResult(inputs, failures)
            why = pin_failure(news, self._label(news))
            if why is not None:
                return CheckResult(inputs, [*failures, CheckFailure("artifact", why)])
            inputs["artifact"] = news["pinned"]["artifact"]
            return CheckResult(inputs, failures)
        if not failures and not any(
            is_unknown(v) for k, v in news.items() if k not in ("artifact",)
        ):
            try:
                inputs["artifact"] = digest_of(self.package(news))
            except (PackagingError, OSError, ValueError) as exc:
                failures.append(CheckFailure("code", f"{self._label(news)}: code: {exc}"))
        return CheckResult(inputs, failures)

    def apply(self, platform: Platform, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs.get("release"):
            if not platform.has_artifact(inputs["artifact"]):
                raise ProviderError(
                    f"{self._label(inputs)}: pinned artifact {inputs['artifact']} is not on "
                    f"this platform; `agentform promote` copies it before it updates the stack"
                )
            return {"kind": self.kind.value}
        digest = platform.upload_artifact(self.package(inputs))
        if digest != inputs["artifact"]:
            raise ProviderError(
                f"{self._label(inputs)}: its code changed during `pulumi up`; rerun it"
            )
        return {"kind": self.kind.value}

    def fetch(self, platform: Platform, state: dict[str, Any]) -> dict[str, Any] | None:
        return {} if platform.has_artifact(state["artifact"]) else None

    def remove(self, platform: Platform, state: dict[str, Any]) -> None:
        """Artifacts are content-addressed and kept for the versions that may roll back to them."""


class FunctionProvider(WorkloadProvider):
    label = "Function"
    kind = WorkloadKind.FUNCTIONS
    #: Connections are not in the artifact (deployments carry them), so diff compares them too.
    fields: ClassVar[tuple[str, ...]] = (
        "name",
        "artifact",
        "entrypoint",
        "parameters",
        "connections",
    )

    def validate(self, inputs: dict[str, Any]) -> list[CheckFailure]:
        failures = super().validate(inputs)
        entrypoint = inputs.get("entrypoint")
        if not is_unknown(entrypoint) and (
            not isinstance(entrypoint, str) or ":" not in entrypoint
        ):
            failures.append(
                CheckFailure(
                    "entrypoint",
                    f"{self._label(inputs)}: entrypoint: must be module:function, "
                    f"got {entrypoint!r}",
                )
            )
        return failures

    def manifest(self, inputs: dict[str, Any]) -> Manifest:
        spec = {"parameters": inputs["parameters"]} if inputs.get("parameters") else {}
        return Manifest(
            kind=self.kind, name=inputs["name"], entrypoint=inputs["entrypoint"], spec=spec
        )


class ModelApiProvider(WorkloadProvider):
    label = "ModelApi"
    kind = WorkloadKind.MODELS
    #: The connection is not in the artifact (deployments carry it), so diff compares it too.
    fields: ClassVar[tuple[str, ...]] = (
        "name",
        "artifact",
        "connection",
        "provider",
        "model",
        "base_url",
        "max_retries",
        "timeout_s",
    )
    spec_model = ModelSpec

    def manifest(self, inputs: dict[str, Any]) -> Manifest:
        return Manifest(kind=self.kind, name=inputs["name"], spec=self.spec(inputs))


class AgentProvider(WorkloadProvider):
    label = "Agent"
    kind = WorkloadKind.AGENTS
    #: `functions` are its tools and `agents` its handoffs: each a property of its own in a diff.
    fields: ClassVar[tuple[str, ...]] = (
        "name",
        "artifact",
        "model",
        "functions",
        "agents",
        "instructions",
        "description",
        "max_steps",
        "entrypoint",
    )
    spec_model = AgentSpec

    def validate(self, inputs: dict[str, Any]) -> list[CheckFailure]:
        # The spec's own rules come from AgentSpec; these relate the agent to other inputs.
        label = self._label(inputs)
        failures = super().validate(inputs)
        agents = inputs.get("agents") or []
        if not is_unknown(agents) and inputs.get("name") in agents:
            failures.append(
                CheckFailure("agents", f"{label}: agents: an agent cannot be chained to itself")
            )
        if inputs.get("code") and not inputs.get("entrypoint"):
            failures.append(
                CheckFailure(
                    "entrypoint", f"{label}: entrypoint: custom code needs module:function"
                )
            )
        if not inputs.get("code") and not inputs.get("model"):
            failures.append(
                CheckFailure("model", f"{label}: model: a declarative agent needs a model API")
            )
        return failures

    def manifest(self, inputs: dict[str, Any]) -> Manifest:
        return Manifest(
            kind=self.kind,
            name=inputs["name"],
            entrypoint=inputs.get("entrypoint"),
            models=[inputs["model"]] if inputs.get("model") else [],
            functions=list(inputs.get("functions") or []),
            agents=list(inputs.get("agents") or []),
            spec=self.spec(inputs) if not inputs.get("code") else {},
        )


class _Workload(pulumi.dynamic.Resource):
    name: pulumi.Output[str]
    """The workload's name on the platform."""
    kind: pulumi.Output[str]
    """`functions`, `models` or `agents`."""
    artifact: pulumi.Output[str]
    """The digest of the deterministic artifact (code + runtime + manifest)."""

    def _start(
        self,
        provider: WorkloadProvider,
        resource_name: str,
        name: pulumi.Input[str] | None,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        platform_name = name if name is not None else resource_name
        super().__init__(
            provider,
            resource_name,
            {
                "name": platform_name,
                "artifact": None,
                "kind": provider.kind.value,
                **props,
                **pin_inputs(provider.kind.value, platform_name),
                **connection_inputs(),
            },
            typed_options(opts),
        )


class Function(_Workload, module="agentform", name="Function"):
    """Custom code that agents call as a tool: JSON arguments in, JSON out, run sandboxed in its
    own worker process. Arguments are validated against a JSON schema derived from the type
    hints (or `parameters`) before the code runs. It reads the integration connections it
    declares (`ctx.connections["db"]`), and no other."""

    connections: pulumi.Output[list[str]]

    def __init__(
        self,
        resource_name: str,
        *,
        code: CodeInput,
        entrypoint: pulumi.Input[str],
        parameters: pulumi.Input[Mapping[str, Any]] | None = None,
        connections: Sequence[IntegrationConnection] = (),
        name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param code: A directory (or `pulumi.FileArchive` of a directory or .zip) with the code.
        :param entrypoint: `module:function`, e.g. `weather:get_weather`.
        :param parameters: An explicit JSON schema for the arguments (default: from type hints).
        :param connections: IntegrationConnections the code reads through
            `ctx.connections[name]` (config and secret values); a changed secret reaches it
            without a redeploy.
        :param name: The function's name on the platform (DNS-safe); defaults to `resource_name`.
        :param opts: Pulumi resource options.
        """
        self._start(
            FunctionProvider(resource_name),
            resource_name,
            name,
            {
                "code": code_path(code),
                "entrypoint": entrypoint,
                "parameters": parameters,
                "connections": [c.name for c in connections],
            },
            opts,
        )


class ModelApi(_Workload, module="agentform", name="ModelApi"):
    """A unified, OpenAI-compatible endpoint to one model of one provider. It holds no
    credentials itself: it names an IntegrationConnection."""

    connection: pulumi.Output[str | None]

    def __init__(
        self,
        resource_name: str,
        *,
        provider: pulumi.Input[str],
        model: pulumi.Input[str],
        connection: IntegrationConnection | None = None,
        base_url: pulumi.Input[str] | None = None,
        max_retries: pulumi.Input[int] | None = None,
        timeout_s: pulumi.Input[float] | None = None,
        name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param provider: `openai`, `anthropic` or `openai-compatible` (vLLM, Ollama, ...).
        :param model: The provider's model name, e.g. `gpt-4o-mini`.
        :param connection: The IntegrationConnection whose `api_key` the gateway uses.
        :param base_url: The provider's URL (required for `openai-compatible`).
        :param max_retries: Retries on rate limits and server errors (default 3).
        :param timeout_s: Timeout of one provider call in seconds (default 120).
        :param name: The model API's name on the platform (DNS-safe); defaults to `resource_name`.
        :param opts: Pulumi resource options.
        """
        self._start(
            ModelApiProvider(resource_name),
            resource_name,
            name,
            {
                "provider": provider,
                "model": model,
                "base_url": base_url,
                "max_retries": max_retries,
                "timeout_s": timeout_s,
                "connection": connection.name if connection is not None else None,
            },
            opts,
        )


class Agent(_Workload, module="agentform", name="Agent"):
    """An agent: an action model, the functions it may call, the agents it may hand a request
    over to, and instructions; or custom code (`code` + `entrypoint`) using them through the
    runtime SDK. The host enforces that it calls nothing else."""

    description: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        model: ModelApi | None = None,
        functions: Sequence[Function] = (),
        agents: Sequence[Agent] = (),
        instructions: pulumi.Input[str] = "",
        description: pulumi.Input[str] = "",
        max_steps: pulumi.Input[int] = 10,
        code: CodeInput | None = None,
        entrypoint: pulumi.Input[str] | None = None,
        name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param model: The ModelApi that reasons and talks for the agent.
        :param functions: Functions the model may call as tools.
        :param agents: Chained agents it may hand the conversation over to (a
            `transfer_to_<name>` tool each, described by that agent's `description`).
        :param instructions: The system prompt of a declarative agent.
        :param description: When other agents should hand over to this one.
        :param max_steps: Model turns before the run fails with MaxStepsExceeded (1-100).
        :param code: Custom code (a directory or `pulumi.FileArchive`), instead of the loop.
        :param entrypoint: `module:function(inputs, ctx)` of the custom code.
        :param name: The agent's name on the platform (DNS-safe); defaults to `resource_name`.
        :param opts: Pulumi resource options.
        """
        chained = list(agents)
        self._start(
            AgentProvider(resource_name),
            resource_name,
            name,
            {
                "model": model.name if model is not None else None,
                "functions": [f.name for f in functions],
                "agents": [a.name for a in chained],
                "handoffs": pulumi.Output.all(
                    *[pulumi.Output.all(a.name, a.description) for a in chained]
                ).apply(dict),
                "instructions": instructions,
                "description": description,
                "max_steps": max_steps,
                "code": code_path(code),
                "entrypoint": entrypoint,
            },
            opts,
        )
