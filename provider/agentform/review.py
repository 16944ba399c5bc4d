"""`agentform review`: what a preview changes in what each agent can do, for pull requests.

A preview through the Automation API yields, for every resource, its inputs before and after.
From those this module derives, per agent: model and provider, an instructions diff, tools and
handoffs added and removed, and the reach that follows (agents and tools reachable through
chains of handoffs); per deployment: policies and budgets widened or narrowed, scaling,
memory, timeout and deactivation. `build_report` and the renderers are pure, so the report is
tested apart from the engine.
"""

from __future__ import annotations

import difflib
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TYPE_PREFIX = "pulumi-python:dynamic/agentform:"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's sentinel for unknown values
#: Settings a deployment falls back to when the program leaves them unset (specs.py).
DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    "memory_mb": 512,
    "timeout_s": 60,
    "min_instances": 0,
    "max_instances": 4,
    "idle_timeout_s": 300,
}

EXIT_NO_CHANGE, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2


class ReviewError(Exception):
    """The preview could not run; the message says why."""


@dataclass(frozen=True)
class Step:
    """One resource of the preview: its operation and its inputs before and after."""

    op: str
    kind: str  # the class: Agent, Deployment, ... ("" for anything not Agentform's)
    resource: str  # the Pulumi resource name
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None


@dataclass
class Reach:
    target: str
    via: list[str]

    def sentence(self, agent: str, now: bool) -> str:
        verb = "can now reach" if now else "can no longer reach"
        via = f" via {' → '.join(f'`{v}`' for v in self.via)}" if self.via else ""
        return f"`{agent}` {verb} `{self.target}`{via}"


@dataclass
class AgentChange:
    name: str
    status: str  # added, removed, changed
    model: dict[str, str | None] | None = None
    instructions_diff: list[str] = field(default_factory=list)
    tools_added: list[str] = field(default_factory=list)
    tools_removed: list[str] = field(default_factory=list)
    handoffs_added: list[str] = field(default_factory=list)
    handoffs_removed: list[str] = field(default_factory=list)
    reach_added: list[Reach] = field(default_factory=list)
    reach_removed: list[Reach] = field(default_factory=list)

    def empty(self) -> bool:
        return self.status == "changed" and not any(
            (
                self.model,
                self.instructions_diff,
                self.tools_added,
                self.tools_removed,
                self.handoffs_added,
                self.handoffs_removed,
                self.reach_added,
                self.reach_removed,
            )
        )


@dataclass
class DeploymentChange:
    resource: str
    workload: str  # kind/name
    environment: str
    status: str  # added, removed, changed
    changes: list[str] = field(default_factory=list)


@dataclass
class Report:
    stack: str
    operations: dict[str, int]
    agents: list[AgentChange]
    deployments: list[DeploymentChange]

    @property
    def changed(self) -> bool:
        return any(op != "same" for op in self.operations)

    def to_json(self) -> dict[str, Any]:
        return {"changed": self.changed, **asdict(self)}


# --- the preview ---------------------------------------------------------------------------


def preview_steps(stack_name: str | None, work_dir: Path) -> tuple[str, list[Step]]:
    """Run `pulumi preview` on the stack (default: the selected one) through the Automation
    API and return the stack's name and its steps. The selected stack stays as it was."""
    import shutil

    from pulumi import automation as auto

    from agentform.promotion import local_workspace

    if not any((work_dir / f"Pulumi.{ext}").is_file() for ext in ("yaml", "yml")):
        raise ReviewError(
            f"no Pulumi project in {work_dir} (no Pulumi.yaml); run it in the project's "
            "directory or pass --cwd"
        )
    if shutil.which("pulumi") is None:
        raise ReviewError("no `pulumi` on PATH; run `source scripts/setup.sh` first")
    try:
        workspace = local_workspace(str(work_dir))
        if stack_name is None:
            current = workspace.stack()
            if current is None:
                raise ReviewError(
                    f"no stack selected in {work_dir}; pass --stack or `pulumi stack select`"
                )
            stack_name = current.name
        stack = auto.Stack.select(stack_name, workspace)
        events: list[Any] = []
        stack.preview(on_event=events.append)
    except auto.CommandError as exc:
        raise ReviewError(_command_error(exc)) from None
    steps = []
    for event in events:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None:
            continue
        meta = pre.metadata
        kind = meta.type.removeprefix(TYPE_PREFIX) if meta.type.startswith(TYPE_PREFIX) else ""
        steps.append(
            Step(
                op=str(getattr(meta.op, "value", meta.op)),
                kind=kind,
                resource=meta.urn.rsplit("::", 1)[-1],
                old=dict(meta.old.inputs or {}) if meta.old is not None else None,
                new=dict(meta.new.inputs or {}) if meta.new is not None else None,
            )
        )
    return stack_name, steps


def _command_error(exc: Exception) -> str:
    """The useful lines of a failed `pulumi` command (its diagnostics), not the whole log."""
    lines = [line.strip().removeprefix("stderr:").strip() for line in str(exc).splitlines()]
    useful = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line]
    return "; ".join(dict.fromkeys(u for u in useful if u)) or "pulumi preview failed"


# --- the report ------------------------------------------------------------------------------


def _known(value: Any) -> bool:
    if value == UNKNOWN:
        return False
    if isinstance(value, list):
        return all(_known(v) for v in value)
    return True


def _names(value: Any) -> list[str]:
    return (
        sorted(v for v in value if isinstance(v, str) and v != UNKNOWN)
        if isinstance(value, list)
        else []
    )


Graph = dict[str, tuple[list[str], list[str]]]  # agent -> (handoffs, tools)


def _graph(steps: Iterable[Step], side: str) -> Graph:
    graph: Graph = {}
    for step in steps:
        props = step.old if side == "old" else step.new
        if step.kind == "Agent" and props is not None and isinstance(props.get("name"), str):
            graph[props["name"]] = (_names(props.get("agents")), _names(props.get("functions")))
    return graph


def reach(graph: Graph, agent: str) -> dict[str, list[str]]:
    """Every agent and tool `agent` can reach through handoffs, with the agents in between
    on a shortest chain (breadth first, names in order, so the result is stable)."""
    found: dict[str, list[str]] = {}
    queue: deque[tuple[str, list[str]]] = deque([(agent, [])])
    seen = {agent}
    while queue:
        current, via = queue.popleft()
        handoffs, tools = graph.get(current, ([], []))
        for tool in tools:
            found.setdefault(tool, via)
        for target in handoffs:
            if target not in seen:
                seen.add(target)
                found.setdefault(target, via)
                queue.append((target, [*via, target]))
    return found


def _models(steps: Iterable[Step], side: str) -> dict[str, str]:
    models = {}
    for step in steps:
        props = step.old if side == "old" else step.new
        if step.kind == "ModelApi" and props is not None and isinstance(props.get("name"), str):
            models[props["name"]] = f"{props.get('provider')}/{props.get('model')}"
    return models


def _model_label(name: Any, models: Mapping[str, str]) -> str | None:
    if not isinstance(name, str) or not name:
        return None
    return f"{name} ({models[name]})" if name in models else name


def _instructions_diff(old: Any, new: Any) -> list[str]:
    before = str(old or "").splitlines()
    after = str(new or "").splitlines()
    if before == after:
        return []
    diff = difflib.unified_diff(before, after, lineterm="", n=1)
    return [line for line in diff if not line.startswith(("---", "+++", "@@"))]


def _agent_change(
    step: Step, graphs: tuple[Graph, Graph], models: tuple[dict[str, str], dict[str, str]]
) -> AgentChange | None:
    old, new = step.old if step.op != "create" else None, step.new if step.op != "delete" else None
    name = str((new or old or {}).get("name") or step.resource)
    status = "added" if old is None else "removed" if new is None else "changed"
    change = AgentChange(name=name, status=status)
    old, new = old or {}, new or {}
    before = _model_label(old.get("model"), models[0])
    after = _model_label(new.get("model"), models[1])
    if before != after:
        change.model = {"before": before, "after": after}
    change.instructions_diff = _instructions_diff(old.get("instructions"), new.get("instructions"))
    old_tools, new_tools = set(_names(old.get("functions"))), set(_names(new.get("functions")))
    change.tools_added, change.tools_removed = (
        sorted(new_tools - old_tools),
        sorted(old_tools - new_tools),
    )
    old_agents, new_agents = set(_names(old.get("agents"))), set(_names(new.get("agents")))
    change.handoffs_added = sorted(new_agents - old_agents)
    change.handoffs_removed = sorted(old_agents - new_agents)
    if status == "changed":
        was, now = reach(graphs[0], name), reach(graphs[1], name)
        change.reach_added = [Reach(t, now[t]) for t in sorted(set(now) - set(was))]
        change.reach_removed = [Reach(t, was[t]) for t in sorted(set(was) - set(now))]
    return None if change.empty() else change


def _setting(props: Mapping[str, Any], key: str) -> Any:
    value = props.get(key)
    return DEPLOYMENT_DEFAULTS.get(key) if value is None else value


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _policy_changes(old: Any, new: Any) -> list[str]:
    old, new = old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}
    lines = []
    for key in ("locations", "flavors"):
        before, after = old.get(key), new.get(key)
        if before == after or not _known(after):
            continue
        if before is None:
            lines.append(f"{key} narrowed to {', '.join(after)} (was unrestricted)")
        elif after is None:
            lines.append(f"{key} widened to unrestricted (was {', '.join(before)})")
        else:
            added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
            parts = [
                f"+{', +'.join(added)}" if added else "",
                f"-{', -'.join(removed)}" if removed else "",
            ]
            verb = (
                "widened"
                if added and not removed
                else "narrowed"
                if removed and not added
                else "changed"
            )
            lines.append(f"{key} {verb}: {' '.join(p for p in parts if p)}")
    lines += _budget_changes(old.get("token_budgets") or [], new.get("token_budgets") or [])
    return lines


def _budget_changes(old: list[Any], new: list[Any]) -> list[str]:
    def limits(budgets: list[Any]) -> dict[tuple[str, str], int]:
        return {
            (b["window"], k): int(b[k])
            for b in budgets
            if isinstance(b, dict)
            for k in ("input", "output", "total")
            if isinstance(b.get(k), int | float)
        }

    before, after = limits(old), limits(new)
    lines = []
    for window, limit in sorted(set(before) | set(after)):
        was, now = before.get((window, limit)), after.get((window, limit))
        label = f"{limit} tokens per {window}"
        if was == now:
            continue
        if was is None:
            lines.append(f"budget narrowed: {label} capped at {now}")
        elif now is None:
            lines.append(f"budget widened: {label} no longer capped (was {was})")
        else:
            verb = "widened" if now > was else "narrowed"
            lines.append(f"budget {verb}: {label} {was} → {now}")
    return lines


def _deployment_change(step: Step) -> DeploymentChange | None:
    old = step.old if step.op != "create" else None
    new = step.new if step.op != "delete" else None
    props = new or old or {}
    status = "added" if old is None else "removed" if new is None else "changed"
    change = DeploymentChange(
        resource=step.resource,
        workload=f"{props.get('kind')}/{props.get('name')}",
        environment=str(props.get("environment")),
        status=status,
    )
    if old is None or new is None:
        return change
    if old.get("enabled", True) != new.get("enabled", True):
        change.changes.append("deactivated" if new.get("enabled") is False else "activated")
    for key in DEPLOYMENT_DEFAULTS:
        was, now = _number(_setting(old, key)), _number(_setting(new, key))
        if was != now and _known(now):
            change.changes.append(f"{key}: {was} → {now}")
    old_config, new_config = old.get("config") or {}, new.get("config") or {}
    if isinstance(old_config, dict) and isinstance(new_config, dict) and old_config != new_config:
        keys = sorted(
            k for k in set(old_config) | set(new_config) if old_config.get(k) != new_config.get(k)
        )
        change.changes.append(f"config changed: {', '.join(keys)}")
    change.changes += _policy_changes(old.get("effective_policies"), new.get("effective_policies"))
    if step.op in ("replace", "create-replacement"):
        change.changes.append("replaced (a new deployment, then the old one is removed)")
    return change if change.changes else None


def build_report(stack: str, steps: list[Step]) -> Report:
    operations = Counter(s.op for s in steps if s.kind)
    graphs = (_graph(steps, "old"), _graph(steps, "new"))
    models = (_models(steps, "old"), _models(steps, "new"))
    agents = [
        change
        for step in steps
        if step.kind == "Agent" and step.op not in ("create-replacement", "delete-replaced")
        for change in [_agent_change(step, graphs, models)]
        if change is not None
    ]
    deployments = [
        change
        for step in steps
        if step.kind == "Deployment" and step.op not in ("create-replacement", "delete-replaced")
        for change in [_deployment_change(step)]
        if change is not None
    ]
    return Report(
        stack=stack,
        operations=dict(sorted(operations.items())),
        agents=sorted(agents, key=lambda a: a.name),
        deployments=sorted(deployments, key=lambda d: d.resource),
    )


# --- rendering -------------------------------------------------------------------------------


def _list(items: list[str]) -> str:
    return ", ".join(f"`{i}`" for i in items)


def render_markdown(report: Report) -> str:
    ops = ", ".join(f"{n} {op}" for op, n in report.operations.items())
    lines = [f"# Agentform review of stack `{report.stack}`", "", f"Preview: {ops}.", ""]
    if not report.agents and not report.deployments:
        lines += ["No change in what any agent can do.", ""]
    for agent in report.agents:
        lines += [
            f"## Agent `{agent.name}`"
            + ("" if agent.status == "changed" else f" ({agent.status})"),
            "",
        ]
        if agent.model:
            before, after = agent.model["before"], agent.model["after"]
            lines.append(f"- Model: {before or 'none'} → {after or 'none'}")
        if agent.tools_added:
            lines.append(f"- Tools added: {_list(agent.tools_added)}")
        if agent.tools_removed:
            lines.append(f"- Tools removed: {_list(agent.tools_removed)}")
        if agent.handoffs_added:
            lines.append(f"- Handoffs added: {_list(agent.handoffs_added)}")
        if agent.handoffs_removed:
            lines.append(f"- Handoffs removed: {_list(agent.handoffs_removed)}")
        if agent.reach_added:
            lines.append("- Reach added:")
            lines += [f"  - {r.sentence(agent.name, now=True)}" for r in agent.reach_added]
        if agent.reach_removed:
            lines.append("- Reach removed:")
            lines += [f"  - {r.sentence(agent.name, now=False)}" for r in agent.reach_removed]
        if agent.instructions_diff:
            lines += ["- Instructions:", "", "  ```diff"]
            lines += [f"  {line}" for line in agent.instructions_diff]
            lines.append("  ```")
        lines.append("")
    for deployment in report.deployments:
        where = f"{deployment.workload} on {deployment.environment}"
        status = "" if deployment.status == "changed" else f", {deployment.status}"
        lines += [f"## Deployment `{deployment.resource}` ({where}{status})", ""]
        lines += [f"- {change}" for change in deployment.changes]
        if deployment.changes:
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def exit_code(report: Report) -> int:
    return EXIT_CHANGES if report.changed else EXIT_NO_CHANGE
