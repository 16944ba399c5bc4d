"""`agentform.Deployment`: one workload version on one environment, at one endpoint."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult

from agentform.resources._provider import AgentformProvider, is_unknown, typed_options
from agentform.resources.environment import Environment
from agentform.resources.pinning import pin_failure, pin_inputs
from agentform.resources.policy import Policy
from agentform.resources.workloads import Agent, Function, ModelApi
from agentform.settings import connection_inputs
from agentform_runtime.policies import PolicyConflict, combine
from agentform_runtime.specs import (
    DeploymentKey,
    DeploymentSpec,
    PolicySpec,
    WorkloadKind,
    version_of,
)

if TYPE_CHECKING:
    from agentform.platforms import Platform

_SETTINGS = (
    "memory_mb",
    "timeout_s",
    "min_instances",
    "max_instances",
    "idle_timeout_s",
    "enabled",
    "config",
)


def deployment_spec(inputs: dict[str, Any]) -> dict[str, Any]:
    """The control-plane body for these inputs (unvalidated)."""
    spec: dict[str, Any] = {
        "artifact": inputs.get("artifact"),
        "policies": inputs.get("policies") or [],
        "enabled": inputs.get("enabled", True),
        "config": inputs.get("config") or {},
        "connection": inputs.get("connection"),
        "connections": inputs.get("connections") or [],
        "scaling": {
            k: inputs[k]
            for k in ("min_instances", "max_instances", "idle_timeout_s")
            if inputs.get(k) is not None
        },
    }
    for key in ("memory_mb", "timeout_s"):
        if inputs.get(key) is not None:
            spec[key] = inputs[key]
    return spec


def with_pin(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs with the pinned artifact and configuration (and, when promoted with
    `--with-policies`, the pinned deployment-level policies) in place of the program's.
    Scaling, `enabled` and the connection stay the destination's own."""
    pinned = inputs["pinned"]
    configuration = pinned["configuration"]
    result = {
        **inputs,
        "artifact": pinned["artifact"],
        "memory_mb": configuration["memory_mb"],
        "timeout_s": configuration["timeout_s"],
        "config": configuration["config"],
    }
    if inputs.get("with_policies"):
        result["policies"] = [p["name"] for p in pinned["policies"]]
        result["policy_specs"] = [p["spec"] for p in pinned["policies"]]
    return result


def end_user_auth(workload: Function | ModelApi | Agent) -> dict[str, Any]:
    """`{"end_user_auth": <fingerprint>}` on `aws` with `agentform:jwtSecret` or
    `agentform:jwksUrl` set (the deployer puts them in every function), else nothing, so
    stacks without JWT settings see no new input."""
    config = pulumi.Config("agentform")
    if (config.get("platform") or "local") != "aws":
        return {}
    secret, jwks_url = config.get_secret("jwtSecret"), config.get("jwksUrl")
    if secret is None and not jwks_url:
        return {}

    def fingerprint(values: list[Any]) -> str:
        return hashlib.sha256("\0".join(str(v) for v in values).encode()).hexdigest()[:16]

    return {
        "end_user_auth": pulumi.Output.secret(
            pulumi.Output.all(secret or "", jwks_url or "").apply(fingerprint)
        )
    }


def read_settings(settings: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """Every setting a program can give, as the platform has it now, in input form, so that
    refresh reports an out-of-band change to any of them. A setting the program left unset
    stays unset while the platform still has its default, so defaults are no drift."""
    defaults = DeploymentSpec(artifact="sha256:" + "0" * 64).model_dump(mode="json")
    flat = {**settings, **(settings.get("scaling") or {})}
    flat_defaults = {**defaults, **defaults["scaling"]}
    current: dict[str, Any] = {"artifact": settings["artifact"]}
    for key in _SETTINGS:
        value = flat.get(key, flat_defaults[key])
        unset = state.get(key) is None or state.get(key) == {}
        current[key] = state.get(key) if unset and value == flat_defaults[key] else value
    return current


class DeploymentProvider(AgentformProvider):
    label = "Deployment"
    replace_on: ClassVar[tuple[str, ...]] = ("name", "kind", "environment")
    fields: ClassVar[tuple[str, ...]] = (
        "name",
        "kind",
        "environment",
        "artifact",
        "connection",
        "connections",
        "policies",
        "policy_specs",
        "environment_policy_specs",
        *_SETTINGS,
        # A fingerprint of the stack's end-user JWT settings (on aws): a new key updates the
        # deployments.
        "end_user_auth",
        # The version `check` computes from the inputs against the live one read back: after
        # `refresh` sees `live` moved out of band, the next `up` moves it back.
        "version",
    )
    defaults: ClassVar[dict[str, Any]] = {
        key: DeploymentSpec.model_fields[key].default for key in ("memory_mb", "timeout_s")
    }

    def _label(self, inputs: dict[str, Any]) -> str:
        return self.describe(inputs)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        label = self._label(news)
        if news.get("release") and not is_unknown(news.get("pinned")):
            why = pin_failure(news, label)
            if why is not None:
                return CheckResult(dict(news), [CheckFailure("artifact", why)])
            news = with_pin(news)
        spec = deployment_spec(news)
        inputs = dict(news)
        if is_unknown(spec) or is_unknown(news.get("kind")):
            return CheckResult(inputs, [])
        failures = []
        for failure in self.model_failures(DeploymentSpec, spec, label):
            # Report scaling.min_instances as the argument the user wrote: min_instances.
            field = failure.property.removeprefix("scaling.")
            failures.append(CheckFailure(field, failure.reason.replace("scaling.", "")))
        specs = (news.get("environment_policy_specs"), news.get("policy_specs"))
        if not failures and not any(is_unknown(s) for s in specs):
            try:
                effective = combine(
                    [PolicySpec.model_validate(p) for p in specs[0] or []],
                    [PolicySpec.model_validate(p) for p in specs[1] or []],
                    WorkloadKind(news["kind"]),
                )
                inputs["effective_policies"] = effective.model_dump(mode="json")
            except PolicyConflict as exc:
                failures.append(CheckFailure("policies", f"{label}: policies: {exc}"))
            else:
                failures += self.placement_failures(label, inputs["effective_policies"])
        if not failures:
            inputs["version"] = version_of(DeploymentSpec.model_validate(spec))
        return CheckResult(inputs, failures)

    def identity(self, props: dict[str, Any]) -> str:
        return f"{props['environment']}/{props['kind']}/{props['name']}"

    @staticmethod
    def _key(props: dict[str, Any]) -> DeploymentKey:
        return DeploymentKey(props["environment"], props["kind"], props["name"])

    @staticmethod
    def _outputs(view: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": view["url"],
            "version": view["version"],
            "previous_version": view["previous_version"],
            "status": view["status"],
            "effective_policies": view["effective_policies"],
        }

    def apply(self, platform: Platform, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs.get("with_policies") and inputs.get("pinned"):
            # The origin's policies may not exist on this platform (another host, or removed).
            for policy in inputs["pinned"]["policies"]:
                if platform.get_policy(policy["name"]) is None:
                    platform.put_policy(policy["name"], policy["spec"])
        spec = deployment_spec(inputs)
        effective = inputs.get("effective_policies")
        return self._outputs(platform.put_deployment(self._key(inputs), spec, effective))

    def fetch(self, platform: Platform, state: dict[str, Any]) -> dict[str, Any] | None:
        view = platform.get_deployment(self._key(state))
        if view is None:
            return None
        return {**self._outputs(view), **read_settings(view["settings"], state)}

    def remove(self, platform: Platform, state: dict[str, Any]) -> None:
        platform.delete_deployment(self._key(state))


class Deployment(pulumi.dynamic.Resource, module="agentform", name="Deployment"):
    """One version of a workload (Function, ModelApi or Agent) on one Environment, reachable
    at `url`. Changing its code or configuration deploys a new version blue-green: the new one
    must pass its readiness check before any request reaches it. `enabled=False` deactivates it
    (unreachable, consuming nothing)."""

    url: pulumi.Output[str]
    """Where to invoke it: `<host>/run/<environment>/<kind>/<name>`."""
    version: pulumi.Output[str]
    """The live version: the digest of the artifact and the resolved configuration."""
    previous_version: pulumi.Output[str | None]
    status: pulumi.Output[str]
    """`live` or `disabled`."""
    effective_policies: pulumi.Output[dict[str, Any]]
    """The environment's and the deployment's policies combined."""

    def __init__(
        self,
        resource_name: str,
        *,
        workload: Function | ModelApi | Agent,
        environment: Environment,
        memory_mb: pulumi.Input[int] | None = None,
        timeout_s: pulumi.Input[int] | None = None,
        min_instances: pulumi.Input[int] | None = None,
        max_instances: pulumi.Input[int] | None = None,
        idle_timeout_s: pulumi.Input[float] | None = None,
        policies: Sequence[Policy] = (),
        enabled: pulumi.Input[bool] = True,
        config: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param workload: The Function, ModelApi or Agent to deploy.
        :param environment: The Environment to deploy it on.
        :param memory_mb: Memory per instance, 128-10240 MB (default 512).
        :param timeout_s: Timeout of one request, 1-900 s (default 60).
        :param min_instances: Instances kept warm (default 0: scale to zero).
        :param max_instances: Most concurrent instances (default 4).
        :param idle_timeout_s: Seconds an idle instance stays warm (default 300).
        :param policies: Deployment-level policies; they can only narrow the environment's.
        :param enabled: False deactivates the deployment.
        :param config: Plain configuration given to the workload (`AGENTFORM_CONFIG`).
        :param opts: Pulumi resource options.
        """
        connection = workload.connection if isinstance(workload, ModelApi) else None
        connections: pulumi.Input[list[str]] = (
            workload.connections if isinstance(workload, Function) else []
        )
        super().__init__(
            DeploymentProvider(resource_name),
            resource_name,
            {
                "name": workload.name,
                "kind": workload.kind,
                "artifact": workload.artifact,
                "connection": connection,
                "connections": connections,
                "environment": environment.name,
                "environment_policy_specs": environment.policy_specs,
                "policies": [p.name for p in policies],
                "policy_specs": [p.spec for p in policies],
                "memory_mb": memory_mb,
                "timeout_s": timeout_s,
                "min_instances": min_instances,
                "max_instances": max_instances,
                "idle_timeout_s": idle_timeout_s,
                "enabled": enabled,
                "config": config or {},
                "url": None,
                "version": None,
                "previous_version": None,
                "status": None,
                "effective_policies": None,
                **pin_inputs(workload.kind, workload.name),
                **connection_inputs(),
                **end_user_auth(workload),
            },
            typed_options(opts),
        )
