"""The plumbing every Agentform dynamic provider shares.

A subclass declares its fields (`model`: the pydantic spec its inputs must satisfy), which
input changes force a replacement, and how to apply, fetch and remove itself on the
platform. Validation runs in `check`, so bad inputs fail at `pulumi preview` with the
resource, field and reason. Providers hold no clients: each call builds its own.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pydantic import BaseModel, ValidationError

from agentform.settings import resolve_token
from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import check_name

if TYPE_CHECKING:
    from agentform.platforms import Platform, PlatformSettings

#: The stack configuration a provider reads (`agentform.platforms.PlatformSettings`).
CONFIG_KEYS = tuple(
    f"agentform:{k}"
    for k in (
        "platform",
        "endpoint",
        "token",
        "region",
        "awsEndpointUrl",
        "awsReadiness",
        "jwtSecret",
        "jwksUrl",
    )
)
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's sentinel for unknown values


def is_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(is_unknown(v) for v in value)
    return False


def name_failures(label: str, inputs: dict[str, Any], field: str = "name") -> list[CheckFailure]:
    """A failure when inputs[field] is known and not a DNS-safe name."""
    value = inputs.get(field)
    if is_unknown(value):
        return []
    try:
        check_name(value)  # type: ignore[arg-type]
    except ValueError as exc:
        return [CheckFailure(field, f"{label}: {field}: {exc}")]
    return []


class ProviderError(Exception):
    """An error shown to the user as one line: resource, what failed, why."""


#: The type every dynamic resource had before each got its own (`dynamic/agentform:<Class>`).
UNTYPED = "pulumi-python:dynamic:Resource"


def typed_options(opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """`opts` plus an alias from the untyped token, so stacks created before resources had
    their own type update in place instead of being replaced."""
    alias = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=UNTYPED)])
    return pulumi.ResourceOptions.merge(opts, alias)


class DiffKind(IntEnum):
    """The engine's `PropertyDiff.Kind` values (provider.proto)."""

    ADD = 0
    ADD_REPLACE = 1
    DELETE = 2
    DELETE_REPLACE = 3
    UPDATE = 4
    UPDATE_REPLACE = 5


def property_kind(old: Any, new: Any, replaces: bool) -> DiffKind:
    if old is None or old == [] or old == {}:
        kind = DiffKind.ADD
    elif new is None or new == [] or new == {}:
        kind = DiffKind.DELETE
    else:
        kind = DiffKind.UPDATE
    return DiffKind(kind + 1) if replaces else kind


# The dynamic provider server of the pinned SDK (3.163) builds its DiffResponse from
# `changes`, `replaces` and `delete_before_replace` only, so `pulumi preview --diff --json`
# would show no detailed diff. It builds that response in the same thread, right after our
# `diff` returns, through `pulumi.runtime.proto.DiffResponse`: wrapping that constructor in
# the provider server process passes the property kinds our `diff` left for this thread.
_detail = threading.local()


class _DetailedDiffResponse:
    """Stands in for `proto.DiffResponse`: the class's constants (DIFF_SOME, ...) pass
    through; a response gets the property kinds this thread's `diff` left."""

    def __init__(self, original: Any) -> None:
        self.original = original

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)

    def __call__(self, **fields: Any) -> Any:
        from pulumi.runtime import proto

        kinds: dict[str, DiffKind] | None = getattr(_detail, "kinds", None)
        _detail.kinds = None
        if kinds is not None:
            fields["diffs"] = sorted(kinds)
            fields["detailedDiff"] = {
                name: proto.PropertyDiff(kind=int(kind), inputDiff=True)  # type: ignore[arg-type]
                for name, kind in kinds.items()
            }
            fields["hasDetailedDiff"] = True
        return self.original(**fields)


def _install_detailed_diffs() -> None:
    main = sys.modules.get("__main__")
    if getattr(main, "DynamicResourceProviderServicer", None) is None:
        return  # not inside the dynamic provider server (a unit test, the program)
    from pulumi.runtime import proto

    if not isinstance(proto.DiffResponse, _DetailedDiffResponse):
        proto.DiffResponse = _DetailedDiffResponse(proto.DiffResponse)  # type: ignore[misc,assignment]


class AgentformProvider(ResourceProvider):
    label: ClassVar[str] = "resource"
    #: The Pulumi resource name, kept in the (pickled) provider so that errors name the
    #: resource as the program does; empty in providers pickled by older versions.
    resource_name: str = ""
    #: Inputs (besides `name`) whose change means a different object, not an update.
    replace_on: ClassVar[tuple[str, ...]] = ("name",)
    #: Inputs compared by diff (everything the user sets).
    fields: ClassVar[tuple[str, ...]] = ("name",)
    #: What an unset input means, for inputs whose default diff must not tell from unset.
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, resource_name: str = "") -> None:
        super().__init__()
        self.resource_name = resource_name

    def describe(self, props: dict[str, Any]) -> str:
        """How errors name this resource: its Pulumi resource name, e.g. `Deployment
        'assistant-development'` (the platform name when an older provider kept none)."""
        return f"{self.label} '{getattr(self, 'resource_name', '') or props.get('name')}'"

    # --- what subclasses define -------------------------------------------------------------

    def validate(self, inputs: dict[str, Any]) -> list[CheckFailure]:
        return []

    def apply(self, platform: Platform, inputs: dict[str, Any]) -> dict[str, Any]:
        """Create or update on the platform; return the outputs it adds."""
        raise NotImplementedError

    def fetch(self, platform: Platform, state: dict[str, Any]) -> dict[str, Any] | None:
        """The current platform view as inputs+outputs, or None when it is gone."""
        raise NotImplementedError

    def remove(self, platform: Platform, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _given(self, props: dict[str, Any], field: str) -> Any:
        """An input's value, its default when unset: leaving an input unset and setting it to
        its default are the same (a pin, for one, writes the defaults out)."""
        value = props.get(field)
        return self.defaults.get(field) if value is None else value

    def claim(self, platform: Platform, inputs: dict[str, Any]) -> None:
        """Before `create` applies: raise `ProviderError` when the platform already has this
        object in a state this resource must not take over (by default it takes it)."""

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def model_failures(
        model: type[BaseModel], data: dict[str, Any], label: str
    ) -> list[CheckFailure]:
        """Validate the known part of `data` against `model`, one failure per bad field."""
        known = {k: v for k, v in data.items() if not is_unknown(v)}
        try:
            model.model_validate(known)
        except ValidationError as exc:
            failures = []
            for error in exc.errors():
                loc = [str(p) for p in error["loc"]]
                if loc and loc[0] in data and is_unknown(data[loc[0]]):
                    continue  # about a value the engine does not know yet
                field = ".".join(loc) or "inputs"
                reason = error["msg"].removeprefix("Value error, ")
                failures.append(CheckFailure(field, f"{label}: {field}: {reason}"))
            return failures
        return []

    def configure(self, req: ConfigureRequest) -> None:
        # The engine gives dynamic providers the stack's whole current configuration, so
        # destroy and refresh reach the platform where it is now, not where the state says.
        self._configured = {key: req.config.get(key) for key in CONFIG_KEYS}

    @property
    def settings(self) -> PlatformSettings:
        from agentform.platforms import PlatformSettings

        try:
            return PlatformSettings.from_config(getattr(self, "_configured", {}))
        except ValueError as exc:
            raise ProviderError(f"{self.label}: {exc}") from None

    def placement_failures(self, label: str, effective: dict[str, Any]) -> list[CheckFailure]:
        """Effective policies that the configured platform cannot honour (on AWS: no region
        in the allowed locations, or only GPU flavors)."""
        settings = self.settings
        if settings.platform != "aws":
            return []
        from agentform.platforms.aws.regions import placement_failure

        reason = placement_failure(effective, settings.region)
        return [CheckFailure("policies", f"{label}: policies: {reason}")] if reason else []

    @contextmanager
    def platform(self, props: dict[str, Any]) -> Iterator[Platform]:
        # Imported here: the program and `pulumi preview` load the providers but never call the
        # platform, and httpx or boto3 take a tenth of a second or more to import.
        from agentform.platforms import open_platform

        settings = self.settings
        token = resolve_token(settings.token) or props.get("agentform_token") or ""
        if settings.platform == "local" and not token:
            raise ProviderError(
                f"{self.describe(props)}: no admin token: set "
                "`pulumi config set agentform:token --secret` "
                "or start the local host with `agentform serve`"
            )
        try:
            platform = open_platform(settings, token)
        except AgentformError as exc:
            raise ProviderError(f"{self.describe(props)}: {exc.message}") from None
        try:
            yield platform
        except AgentformError as exc:
            raise ProviderError(f"{self.describe(props)}: {exc.message}") from None
        finally:
            platform.close()

    # --- ResourceProvider -----------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, self.validate(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [
            f
            for f in self.fields
            if is_unknown(news.get(f)) or self._given(olds, f) != self._given(news, f)
        ]
        replaces = [f for f in changed if f in self.replace_on]
        _install_detailed_diffs()
        _detail.kinds = self.detailed_diff(olds, news, changed)
        return DiffResult(
            changes=bool(changed),
            replaces=replaces,
            stables=[f for f in self.fields if f not in changed],
            delete_before_replace=True,
        )

    def detailed_diff(
        self, olds: dict[str, Any], news: dict[str, Any], changed: list[str]
    ) -> dict[str, DiffKind]:
        """Each changed input with its kind (add, delete, update; a replace when the input is
        in `replace_on`), as `pulumi preview --diff --json` shows them."""
        return {
            f: DiffKind.UPDATE_REPLACE
            if is_unknown(news.get(f)) and f in self.replace_on
            else DiffKind.UPDATE
            if is_unknown(news.get(f))
            else property_kind(olds.get(f), news.get(f), f in self.replace_on)
            for f in changed
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        with self.platform(props) as platform:
            self.claim(platform, props)
            outs = self.apply(platform, props)
        return CreateResult(self.identity(props), {**props, **outs})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with self.platform(news) as platform:
            outs = self.apply(platform, news)
        return UpdateResult({**news, **outs})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        with self.platform(props) as platform:
            self.remove(platform, props)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with self.platform(props) as platform:
            current = self.fetch(platform, props)
        if current is None:
            return ReadResult(None, {})  # gone: refresh drops it from the state
        return ReadResult(id_, {**props, **current})

    def identity(self, props: dict[str, Any]) -> str:
        return str(props["name"])
