"""The policy pack's entry point: the engine runs this file (`python -m pulumi.policy`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from agentform.policypack import rules

Check = Callable[[ResourceValidationArgs], list[str]]


def _schema(rule: rules.Rule) -> PolicyConfigSchema | None:
    return (
        PolicyConfigSchema(properties={k: dict(v) for k, v in rule.schema.items()})
        if rule.schema
        else None
    )


def _level(rule: rules.Rule) -> EnforcementLevel:
    return EnforcementLevel(rule.enforcement)


def _resource_policy(name: str, types: tuple[str, ...], check: Check) -> ResourceValidationPolicy:
    rule = rules.RULES[name]

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type in types:
            for message in check(args):
                report(message, None)

    return ResourceValidationPolicy(
        name, rule.description, validate, _level(rule), config_schema=_schema(rule)
    )


def _plain(value: Any) -> Any:
    """The policy SDK's read-only proxies as dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def _props(args: Any) -> dict[str, Any]:
    """A resource's inputs; one the engine does not know yet (preview) is `rules.UNKNOWN`,
    which every rule skips (the engine checks again at `pulumi up`)."""
    props: dict[str, Any] = {}
    for key in args.props:
        try:
            props[key] = _plain(args.props[key])
        except UnknownValueError:
            props[key] = rules.UNKNOWN
    return props


def _handoffs(args: StackValidationArgs, report: ReportViolation) -> None:
    graph = rules.agent_graph([(r.resource_type, _props(r)) for r in args.resources])
    for message in rules.handoff_depth(graph, args.get_config()):
        report(message, None)


depth = rules.RULES["handoff-depth"]
PolicyPack(
    "agentform",
    [
        _resource_policy(
            "prod-token-budget",
            (rules.DEPLOYMENT,),
            lambda a: rules.token_budget(a.name, _props(a), a.get_config()),
        ),
        _resource_policy(
            "model-allow-list",
            (rules.MODEL_API,),
            lambda a: rules.model_allow_list(a.name, _props(a), a.get_config()),
        ),
        _resource_policy(
            "capacity-caps",
            (rules.DEPLOYMENT,),
            lambda a: rules.capacity_caps(a.name, _props(a), a.get_config()),
        ),
        _resource_policy(
            "no-secret-values",
            (rules.DEPLOYMENT, rules.MODEL_API),
            lambda a: rules.no_secret_values(a.name, a.resource_type, _props(a), a.get_config()),
        ),
        _resource_policy(
            "prod-min-instances",
            (rules.DEPLOYMENT,),
            lambda a: rules.min_instances(a.name, _props(a), a.get_config()),
        ),
        StackValidationPolicy(
            "handoff-depth",
            depth.description,
            _handoffs,
            _level(depth),
            config_schema=_schema(depth),
        ),
    ],
)
