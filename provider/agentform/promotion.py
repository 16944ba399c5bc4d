"""`agentform promote FROM TO`: release one stack's exact versions to another, through the
Pulumi Automation API (local workspace, the project's own backend).

FROM's bundle is read from its stack state, written into TO's config as a pin (a reviewable
diff of `Pulumi.TO.yaml`), TO is previewed, the plan is shown, and TO is updated blue-green.
FROM is only read. Every check that can fail runs before TO's config is touched, and a failed
or declined preview puts TO's config back as it was.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from agentform.platforms.base import PlatformSettings
from agentform.release import (
    HISTORY_LIMIT,
    PIN_REMEDY,
    RELEASE_KEY,
    Bundle,
    Pin,
    ReleaseError,
    bundle_from_state,
    differing_policy_types,
    environment_policies,
    parse_pin,
)
from agentform.settings import resolve_endpoint, resolve_token
from agentform_runtime.specs import digest_of


class PromotionError(Exception):
    """A promotion that cannot go ahead; nothing was changed. `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class Timings:
    """Where a promotion's wall time went: the engine's preview and update, the other Pulumi
    CLI calls (stack selection, state export, config), and the rest (ours)."""

    started: float = field(default_factory=time.perf_counter)
    engine: float = 0.0
    pulumi_cli: float = 0.0
    waiting: float = 0.0  # for the user's answer: nobody's time

    @contextmanager
    def track(self, what: str) -> Iterator[None]:
        begun = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - begun
            if what == "engine":
                self.engine += spent
            elif what == "user":
                self.waiting += spent
            else:
                self.pulumi_cli += spent

    def summary(self) -> dict[str, float]:
        total = time.perf_counter() - self.started - self.waiting
        return {
            "total_s": round(total, 3),
            "engine_s": round(self.engine, 3),
            "pulumi_cli_s": round(self.pulumi_cli, 3),
            "agentform_s": round(total - self.engine - self.pulumi_cli, 3),
        }


@dataclass(frozen=True)
class Change:
    """One deployment of TO whose version the promotion changes."""

    key: str
    op: str
    old_artifact: str | None
    new_artifact: str | None
    old_version: str | None
    new_version: str | None
    old_policies: list[str]
    new_policies: list[str]


@dataclass
class Plan:
    """What the preview of TO says the promotion will do."""

    changes: list[Change]
    counts: dict[str, int]
    policy_types_differ: list[str]
    destination_policies: list[dict[str, Any]]


def _short(value: str | None) -> str:
    if not value:
        return "-"
    return value.removeprefix("sha256:")[:12]


def describe(change: Change) -> str:
    """One line of the plan: what changes from what to what."""
    line = f"{change.op:<7} {change.key}: version {_short(change.old_version)} -> "
    line += f"{_short(change.new_version)} (artifact {_short(change.old_artifact)} -> "
    line += f"{_short(change.new_artifact)})"
    if change.old_policies != change.new_policies:
        line += f", policies {change.old_policies or '[]'} -> {change.new_policies or '[]'}"
    return line


class _Workspace(auto.LocalWorkspace):
    """A local workspace that never changes the user's selected stack. `Stack.select` runs
    `pulumi stack select` (the project's selection, in PULUMI_HOME), yet every command a Stack
    runs passes `--stack` anyway: so selecting only checks that the stack exists, as
    `pulumi stack --stack NAME` does, and the selection stays the user's own."""

    def select_stack(self, stack_name: str) -> None:
        self._run_pulumi_cmd_sync(["stack", "--stack", stack_name])


def local_workspace(work_dir: str) -> auto.LocalWorkspace:
    """The project's workspace; its stacks' preview, up and history leave the selected stack
    as it was."""
    return _Workspace(work_dir=work_dir)


@dataclass
class Workspace:
    """The project in a directory, and its stacks."""

    work_dir: str
    timings: Timings

    def __post_init__(self) -> None:
        if not any(Path(self.work_dir, f"Pulumi.{ext}").is_file() for ext in ("yaml", "yml")):
            raise PromotionError(
                f"no Pulumi project in {self.work_dir} (no Pulumi.yaml)",
                "run it in the project's directory, or pass --cwd DIR",
            )
        with self.timings.track("cli"):
            self.ws = local_workspace(self.work_dir)
            self.project = self.ws.project_settings().name
            self._stacks = {s.name for s in self.ws.list_stacks()}

    def name(self, stack: str) -> str:
        """The stack's short name; a fully qualified name must be in this project."""
        parts = stack.split("/")
        if len(parts) == 3 and parts[1] != self.project:
            raise PromotionError(
                f"stack '{stack}' is in project '{parts[1]}', not in '{self.project}' "
                f"({self.work_dir}/Pulumi.yaml)",
                "promote between stacks of one project; pass --cwd to choose the project",
            )
        if len(parts) not in (1, 3) or not parts[-1]:
            raise PromotionError(f"'{stack}' is not a stack name", "e.g. `dev` or `prod`")
        return parts[-1]

    def known(self, stack: str) -> str:
        """The short name of an existing stack of this project."""
        name = self.name(stack)
        if name not in self._stacks:
            known = ", ".join(sorted(self._stacks)) or "none"
            raise PromotionError(
                f"no stack '{name}' in project '{self.project}' (stacks: {known})",
                f"create it with `pulumi stack init {name}` in {self.work_dir}",
            )
        return name

    def select(self, name: str) -> auto.Stack:
        """The stack, for preview, up and history; the user's selected stack stays as it was
        (see `_Workspace`). Reading state and config does not need it."""
        with self.timings.track("cli"):
            return auto.Stack.select(name, self.ws)

    def state(self, name: str) -> dict[str, Any]:
        with self.timings.track("cli"):
            return dict(self.ws.export_stack(name).deployment or {})

    def config(self, name: str) -> dict[str, auto.ConfigValue]:
        with self.timings.track("cli"):
            return dict(self.ws.get_all_config(name))

    def set_config(self, name: str, key: str, value: auto.ConfigValue) -> None:
        with self.timings.track("cli"):
            self.ws.set_config(name, key, value)

    def remove_config(self, name: str, key: str) -> None:
        with self.timings.track("cli"):
            self.ws.remove_config(name, key)


def current_pin(config: dict[str, auto.ConfigValue], stack: str) -> Pin | None:
    value = config.get(RELEASE_KEY)
    try:
        return parse_pin(value.value if value is not None else None)
    except ReleaseError as exc:
        raise PromotionError(
            f"Pulumi.{stack}.yaml: {exc}", f"`agentform release unpin {stack}` removes it"
        ) from None


@dataclass(frozen=True)
class ArtifactStore:
    """Where a stack's artifacts live, from its `agentform:*` configuration: the local host
    (`agentform:endpoint`, `agentform:token`) or AWS (`agentform:region`,
    `agentform:awsEndpointUrl`: the S3 bucket its deployments read, one object per digest)."""

    label: str
    settings: PlatformSettings
    token: str

    @classmethod
    def of(cls, config: dict[str, auto.ConfigValue]) -> ArtifactStore:
        values = {k: v.value for k, v in config.items() if k.startswith("agentform:")}
        try:
            settings = PlatformSettings.from_config(values)
        except ValueError as exc:
            raise PromotionError(str(exc), "fix the stack's configuration") from None
        if settings.platform == "aws":
            where = settings.region or "the AWS SDK's region"
            via = f", {settings.aws_endpoint_url}" if settings.aws_endpoint_url else ""
            label = f"AWS ({where}{via})"
            return cls(label, settings, "")
        endpoint = resolve_endpoint(settings.endpoint)
        return cls(endpoint, settings, resolve_token(settings.token))

    def open(self) -> Any:
        from agentform.platforms import open_platform

        return open_platform(self.settings, self.token)


def _download(platform: Any, digest: str) -> bytes:
    """The artifact's bytes from a local host or AWS (unverified: the caller checks)."""
    if hasattr(platform, "download_artifact"):
        return bytes(platform.download_artifact(digest))
    from agentform.platforms.aws import catalog
    from agentform.platforms.aws.session import aws_errors

    return aws_errors(catalog.read_artifact)(platform.aws, digest)


def copy_artifacts(
    bundle: Bundle,
    origin: ArtifactStore,
    destination: ArtifactStore,
    say: Callable[[str], None],
) -> int:
    """Make every artifact of the bundle present in the destination's store (a local host or
    AWS), copied from the origin's when missing and verified by digest both ways. Returns how
    many were copied."""
    from agentform_runtime.errors import AgentformError

    copied = 0
    try:
        with destination.open() as target, origin.open() as source:
            for digest in bundle.artifacts():
                if target.has_artifact(digest):
                    continue
                if origin.label == destination.label:
                    raise PromotionError(
                        f"artifact {digest} of the release is not on {destination.label}",
                        "run `pulumi up` on the origin stack again",
                    )
                data = _download(source, digest)
                if digest_of(data) != digest:
                    raise PromotionError(
                        f"artifact {digest} from {origin.label} does not match its digest",
                        "the origin's artifact store is damaged; redeploy the origin",
                    )
                if target.upload_artifact(data) != digest:
                    raise PromotionError(
                        f"{destination.label} stored {digest} under another digest"
                    )
                copied += 1
                say(f"copied artifact {_short(digest)} to {destination.label} (digest verified)")
    except AgentformError as exc:
        raise PromotionError(
            exc.message,
            "check agentform:endpoint and agentform:token (local), or the AWS credentials, "
            "agentform:region and agentform:awsEndpointUrl (aws)",
        ) from None
    return copied


def _steps(events: list[auto.EngineEvent]) -> list[auto.events.StepEventMetadata]:
    return [
        e.resource_pre_event.metadata
        for e in events
        if e.resource_pre_event is not None and e.resource_pre_event.metadata is not None
    ]


def _deployment_fields(state: Any) -> dict[str, Any] | None:
    if state is None:
        return None
    props = dict(state.outputs or {}) or dict(state.inputs or {})
    if {"environment", "kind", "artifact"} <= props.keys():
        return props
    return None


def plan_of(events: list[auto.EngineEvent], origin_policies: list[dict[str, Any]] | None) -> Plan:
    """The plan in a preview's events; `origin_policies` None: nothing to compare with."""
    changes: list[Change] = []
    destination_policies: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for step in _steps(events):
        if step.type == "pulumi:pulumi:Stack":
            continue  # the stack itself is not one of its resources
        op = str(step.op.value if hasattr(step.op, "value") else step.op)
        counts[op] = counts.get(op, 0) + 1
        new = _deployment_fields(step.new) if step.new is not None else None
        if new is not None and step.new is not None:
            new = {**new, **dict(step.new.inputs or {})}
            destination_policies = list(new.get("environment_policy_specs") or [])
        old = _deployment_fields(step.old)
        if new is None and old is None:
            continue
        current = new or old or {}
        previous = old or {}
        if op == "same" or (
            previous.get("version") == current.get("version")
            and previous.get("policies") == current.get("policies")
        ):
            continue
        changes.append(
            Change(
                key=f"{current.get('kind')}/{current.get('name')}",
                op=op,
                old_artifact=previous.get("artifact"),
                new_artifact=(new or {}).get("artifact"),
                old_version=previous.get("version"),
                new_version=(new or {}).get("version"),
                old_policies=list(previous.get("policies") or []),
                new_policies=list((new or {}).get("policies") or []),
            )
        )
    return Plan(
        changes=sorted(changes, key=lambda c: c.key),
        counts=counts,
        policy_types_differ=(
            differing_policy_types(origin_policies, destination_policies)
            if origin_policies is not None
            else []
        ),
        destination_policies=destination_policies,
    )


def engine_error(exc: auto.errors.CommandError) -> str:
    """The engine's own error lines, without the Automation API's wrapping."""
    text = str(getattr(exc, "stderr", "") or "") + "\n" + str(getattr(exc, "stdout", "") or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("error:")]
    reasons = [ln for ln in lines if "preview failed" not in ln and "update failed" not in ln]
    return "; ".join(dict.fromkeys(reasons or lines)) or str(exc).strip().splitlines()[-1]


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass
class Promotion:
    """One run of `agentform promote`, step by step, so the CLI can talk between steps."""

    work_dir: str
    destination: str
    origin: str | None = None
    with_policies: bool = False
    say: Callable[[str], None] = print
    timings: Timings = field(default_factory=Timings)
    origin_policies: list[dict[str, Any]] | None = None

    def prepare(self, rollback: bool = False) -> Pin:
        """Every check, the artifact copy, then the pin written into TO's config."""
        self.workspace = Workspace(self.work_dir, self.timings)
        self.to_name = self.workspace.known(self.destination)
        self.to_config = self.workspace.config(self.to_name)
        unusable = None
        try:
            self.previous_pin = current_pin(self.to_config, self.to_name)
        except PromotionError as exc:
            if rollback:  # which release runs, and so which one came before, is unknown
                raise
            # A promotion writes a whole new pin: one edited by hand is simply replaced.
            self.previous_pin, unusable = None, exc.message.removesuffix(f"; {PIN_REMEDY}")
        pin = self._rollback_pin() if rollback else self._promotion_pin()
        self.pin = pin
        self._copy(pin)
        if unusable is not None:
            self.say(f"replacing the unusable pin: {unusable}")
        self.workspace.set_config(self.to_name, RELEASE_KEY, auto.ConfigValue(pin.to_config()))
        return pin

    def _promotion_pin(self) -> Pin:
        assert self.origin is not None
        from_name = self.workspace.name(self.origin)
        if from_name == self.to_name:
            raise PromotionError(
                f"cannot promote stack '{from_name}' onto itself",
                "name two stacks, e.g. `agentform promote dev prod`",
            )
        self.workspace.known(from_name)
        state = self.workspace.state(from_name)
        self.from_config = self.workspace.config(from_name)
        try:
            bundle = bundle_from_state(state)
        except ReleaseError as exc:
            raise PromotionError(f"stack '{from_name}': {exc}") from None
        if not bundle.deployments:
            raise PromotionError(
                f"stack '{from_name}' has no deployments to promote",
                f"run `pulumi up --stack {from_name}` first",
            )
        self.origin_policies = environment_policies(state)
        return self._pin(bundle, from_name, self.with_policies)

    def _pin(self, bundle: Bundle, origin: str, with_policies: bool) -> Pin:
        return Pin(
            digest=bundle.digest,
            deployments=bundle.deployments,
            origin=origin,
            promoted_at=datetime.now(UTC).isoformat(timespec="seconds"),
            promoted_by=who(),
            with_policies=with_policies,
        )

    def _rollback_pin(self) -> Pin:
        releases = history(self.workspace.select(self.to_name), self.timings)
        current = self.previous_pin
        running = (
            bool(releases)
            and current is not None
            and (
                (releases[0].digest, releases[0].promoted_at)
                == (current.digest, current.promoted_at)
            )
        )
        # The release before the one running; when none runs (unpinned), the last one.
        earlier = releases[1:] if running else releases
        if not earlier:
            raise PromotionError(
                f"stack '{self.to_name}' has no earlier release to roll back to",
                f"`agentform release list {self.to_name}` shows its releases",
            )
        target = earlier[0]
        self.origin = target.origin
        self.with_policies = target.with_policies
        self.from_config = self.to_config  # the artifacts are already on TO's host
        self.origin_policies = None  # a rollback compares with nothing
        return self._pin(Bundle.of(target.deployments), target.origin, target.with_policies)

    def _copy(self, pin: Pin) -> None:
        copy_artifacts(
            pin, ArtifactStore.of(self.from_config), ArtifactStore.of(self.to_config), self.say
        )

    def restore(self) -> None:
        """Put TO's pin back as it was before `prepare` (an unusable one too)."""
        if RELEASE_KEY not in self.to_config:
            self.workspace.remove_config(self.to_name, RELEASE_KEY)
        else:
            self.workspace.set_config(self.to_name, RELEASE_KEY, self.to_config[RELEASE_KEY])

    def preview(self) -> Plan:
        self.to_stack = self.workspace.select(self.to_name)
        events: list[auto.EngineEvent] = []
        try:
            with self.timings.track("engine"):
                self.to_stack.preview(on_event=events.append)
        except auto.errors.CommandError as exc:
            self.restore()
            raise PromotionError(
                f"preview of '{self.to_name}' failed: {engine_error(exc)}",
                f"Pulumi.{self.to_name}.yaml is unchanged",
            ) from None
        return plan_of(events, self.origin_policies)

    def up(self, on_output: Callable[[str], None]) -> dict[str, int]:
        try:
            with self.timings.track("engine"):
                result = self.to_stack.up(on_output=on_output)
        except auto.errors.CommandError as exc:
            raise PromotionError(
                f"update of '{self.to_name}' failed: {engine_error(exc)}",
                f"fix it and rerun, or `agentform promote --rollback {self.to_name}`",
            ) from None
        changes = result.summary.resource_changes or {}
        return {str(getattr(op, "value", op)): n for op, n in changes.items()}


def history(stack: auto.Stack, timings: Timings | None = None) -> list[Pin]:
    """The releases a stack ran, newest first (at most HISTORY_LIMIT), from the backend's own
    update history: each update records the config it ran with, pin included."""
    timings = timings or Timings()
    releases: list[Pin] = []
    page = 1
    while len(releases) < HISTORY_LIMIT:
        with timings.track("cli"):
            updates = stack.history(page_size=50, page=page)
        for update in updates:
            value = update.config.get(RELEASE_KEY)
            if update.kind != "update" or update.result != "succeeded" or value is None:
                continue
            try:
                pin = parse_pin(value.value)
            except ReleaseError:
                continue  # a hand-edited pin never deployed anything: not a release
            if pin is None:
                continue
            last = releases[-1] if releases else None
            if last is None or (last.digest, last.promoted_at) != (pin.digest, pin.promoted_at):
                releases.append(pin)
        if len(updates) < 50:
            break
        page += 1
    return releases[:HISTORY_LIMIT]
