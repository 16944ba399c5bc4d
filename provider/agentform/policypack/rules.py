"""The rules of Agentform's policy pack, as plain functions over resource inputs.

Each rule has a name (its key in Pulumi policy config), a default enforcement level and a
config with defaults; a check returns one message per violation. Messages name the resource
as the program does and say what to change; they never repeat a secret-looking value.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TYPE_PREFIX = "pulumi-python:dynamic/agentform:"
DEPLOYMENT = TYPE_PREFIX + "Deployment"
MODEL_API = TYPE_PREFIX + "ModelApi"
AGENT = TYPE_PREFIX + "Agent"

#: Defaults the platform applies when a program leaves a setting unset (agentform_runtime.specs).
DEFAULT_MEMORY_MB = 512
DEFAULT_MAX_INSTANCES = 4
DEFAULT_MIN_INSTANCES = 0

#: Shapes of API keys and tokens that must never be plain configuration.
SECRET_SHAPES = {
    "an OpenAI-style key (sk-...)": re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
    "an AWS access key id (AKIA...)": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a GitHub token (ghp_...)": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    "a Slack token (xox...-)": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "a Google API key (AIza...)": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "a private key block": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a bearer token": re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{20,}"),
}


class Unknown:
    """A value the engine does not know before the update (a preview of a new resource)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    enforcement: str  # "mandatory" or "advisory"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: JSON schema of each config property (for `pulumi policy` tooling and validation).
    schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


PROD = {"type": "string", "description": "glob of the environment names the rule applies to"}
RULES = {
    rule.name: rule
    for rule in (
        Rule(
            "prod-token-budget",
            "Agent and model deployments in matching environments have a max_tokens budget.",
            "mandatory",
            {"environments": "prod*"},
            {"environments": PROD},
        ),
        Rule(
            "model-allow-list",
            "Model APIs use allowed providers and models only.",
            "mandatory",
            {"providers": ["openai", "anthropic", "openai-compatible"], "models": ["*"]},
            {
                "providers": {"type": "array", "items": {"type": "string"}},
                "models": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "globs of allowed model names",
                },
            },
        ),
        Rule(
            "capacity-caps",
            "Deployments stay under a memory and a max_instances cap.",
            "mandatory",
            {"max_memory_mb": 4096, "max_instances": 20},
            {"max_memory_mb": {"type": "integer"}, "max_instances": {"type": "integer"}},
        ),
        Rule(
            "handoff-depth",
            "Chains of agent handoffs (agents=) stay within a depth.",
            "advisory",
            {"max_depth": 3},
            {"max_depth": {"type": "integer", "minimum": 0}},
        ),
        Rule(
            "no-secret-values",
            "No API-key-shaped value in Deployment.config or in a ModelApi's plain inputs.",
            "mandatory",
        ),
        Rule(
            "prod-min-instances",
            "Deployments in matching environments keep at least N instances warm.",
            "advisory",
            {"environments": "prod*", "min_instances": 1},
            {"environments": PROD, "min_instances": {"type": "integer", "minimum": 0}},
        ),
    )
}


def settings(rule: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's defaults overlaid with the policy config given to the pack."""
    return {**RULES[rule].defaults, **{k: v for k, v in config.items() if k != "enforcementLevel"}}


def _number(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _where(name: str, props: Mapping[str, Any]) -> str:
    workload = f"{props.get('kind')}/{props.get('name')}"
    return f"Deployment '{name}' ({workload} on {props.get('environment')})"


def _in_environments(props: Mapping[str, Any], pattern: str) -> bool:
    environment = props.get("environment")
    return isinstance(environment, str) and fnmatch.fnmatchcase(environment, pattern)


def token_budget(name: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    conf = settings("prod-token-budget", config)
    kind = props.get("kind")
    if kind not in ("agents", "models") or not _in_environments(props, conf["environments"]):
        return []
    levels = [props.get("environment_policy_specs") or [], props.get("policy_specs") or []]
    specs = [spec for level in levels if isinstance(level, list) for spec in level]
    if not all(isinstance(level, list) for level in levels) or not all(
        isinstance(s, dict) for s in specs
    ):
        return []  # not known before the update: checked then
    budgeted = any(
        s.get("type") == "max_tokens"
        and s.get("budgets")
        and (not s.get("resource_types") or kind in s["resource_types"])
        for s in specs
    )
    if budgeted:
        return []
    return [
        f"{_where(name, props)} has no max_tokens budget: environments matching "
        f"'{conf['environments']}' require one on every agent and model deployment; attach a "
        'Policy(type="max_tokens", budgets=[...]) to the deployment or its environment'
    ]


def model_allow_list(name: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    conf = settings("model-allow-list", config)
    messages = []
    provider, model = props.get("provider"), props.get("model")
    if isinstance(provider, str) and provider not in conf["providers"]:
        messages.append(
            f"ModelApi '{name}': provider '{provider}' is not allowed; allowed: "
            f"{', '.join(conf['providers'])}"
        )
    if isinstance(model, str) and not any(fnmatch.fnmatchcase(model, p) for p in conf["models"]):
        messages.append(
            f"ModelApi '{name}': model '{model}' is not allowed; allowed: "
            f"{', '.join(conf['models'])}"
        )
    return messages


def capacity_caps(name: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    conf = settings("capacity-caps", config)
    messages = []
    memory = _number(props.get("memory_mb"), DEFAULT_MEMORY_MB)
    if memory > conf["max_memory_mb"]:
        messages.append(
            f"{_where(name, props)}: memory_mb {memory} is above the cap of "
            f"{int(conf['max_memory_mb'])}"
        )
    instances = _number(props.get("max_instances"), DEFAULT_MAX_INSTANCES)
    if instances > conf["max_instances"]:
        messages.append(
            f"{_where(name, props)}: max_instances {instances} is above the cap of "
            f"{int(conf['max_instances'])}"
        )
    return messages


def no_secret_values(
    name: str, resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    if resource_type == DEPLOYMENT:
        config_values = props.get("config")
        values = (
            {f"config.{k}": v for k, v in (config_values or {}).items() if isinstance(v, str)}
            if isinstance(config_values, dict)
            else {}
        )
        label, hint = _where(name, props), "pass it as a secret through an IntegrationConnection"
    elif resource_type == MODEL_API:
        values = {
            k: props[k]
            for k in ("name", "provider", "model", "base_url")
            if isinstance(props.get(k), str)
        }
        label, hint = f"ModelApi '{name}'", "put it in the IntegrationConnection's secrets"
    else:
        return []
    messages = []
    for where, value in sorted(values.items()):
        for shape, pattern in SECRET_SHAPES.items():
            if pattern.search(value):
                messages.append(f"{label}: {where} looks like {shape}; {hint}")
                break
    return messages


def min_instances(name: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    conf = settings("prod-min-instances", config)
    if not _in_environments(props, conf["environments"]):
        return []
    warm = _number(props.get("min_instances"), DEFAULT_MIN_INSTANCES)
    wanted = int(conf["min_instances"])
    if warm >= wanted:
        return []
    return [
        f"{_where(name, props)}: min_instances {warm} is below {wanted}, the minimum for "
        f"environments matching '{conf['environments']}'"
    ]


def handoff_depth(agents: Mapping[str, Sequence[str]], config: Mapping[str, Any]) -> list[str]:
    """`agents`: each agent's platform name -> the agents it hands over to."""
    limit = int(settings("handoff-depth", config)["max_depth"])
    messages = []
    for start in sorted(agents):
        chain = _longest_chain(start, agents, ())
        depth = len(chain) - 1
        looped = len(chain) != len(set(chain))
        if looped:
            messages.append(
                f"Agent '{start}': handoffs loop ({' -> '.join(chain)}); a request can be "
                "handed over without end"
            )
        elif depth > limit:
            messages.append(
                f"Agent '{start}': a handoff chain of depth {depth} ({' -> '.join(chain)}) is "
                f"deeper than max_depth {limit}"
            )
    return messages


def _longest_chain(
    agent: str, agents: Mapping[str, Sequence[str]], seen: tuple[str, ...]
) -> tuple[str, ...]:
    """The longest handoff chain from `agent`; it ends at the first agent seen twice."""
    path = (*seen, agent)
    if agent in seen:
        return path
    best = path
    for target in sorted(agents.get(agent, ())):
        chain = _longest_chain(target, agents, path)
        if len(chain) > len(best) or (chain[-1] in chain[:-1] and best[-1] not in best[:-1]):
            best = chain
    return best


def agent_graph(resources: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, list[str]]:
    """(type, props) of a stack's resources -> each agent's handoff targets."""
    graph: dict[str, list[str]] = {}
    for resource_type, props in resources:
        if resource_type == AGENT and isinstance(props.get("name"), str):
            targets = props.get("agents")
            graph[props["name"]] = (
                [t for t in targets if isinstance(t, str)] if isinstance(targets, list) else []
            )
    return graph
