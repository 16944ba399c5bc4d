"""The plumbing every Agentform dynamic provider shares.

A subclass declares its fields (`model`: the pydantic spec its inputs must satisfy), which
input changes force a replacement, and how to apply, fetch and remove itself on the
platform. Validation runs in `check`, so bad inputs fail at `pulumi preview` with the
resource, field and reason. Providers hold no clients: each call builds its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

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
    for k in ("platform", "endpoint", "token", "region", "awsEndpointUrl", "awsReadiness")
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


class AgentformProvider(ResourceProvider):
    label: ClassVar[str] = "resource"
    #: Inputs (besides `name`) whose change means a different object, not an update.
    replace_on: ClassVar[tuple[str, ...]] = ("name",)
    #: Inputs compared by diff (everything the user sets).
    fields: ClassVar[tuple[str, ...]] = ("name",)

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
                f"{self.label}: no admin token: set `pulumi config set agentform:token --secret` "
                "or start the local host with `agentform serve`"
            )
        try:
            platform = open_platform(settings, token)
        except AgentformError as exc:
            raise ProviderError(f"{self.label} '{props.get('name')}': {exc.message}") from None
        try:
            yield platform
        except AgentformError as exc:
            raise ProviderError(f"{self.label} '{props.get('name')}': {exc.message}") from None
        finally:
            platform.close()

    # --- ResourceProvider -----------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, self.validate(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [f for f in self.fields if is_unknown(news.get(f)) or olds.get(f) != news.get(f)]
        replaces = [f for f in changed if f in self.replace_on]
        return DiffResult(
            changes=bool(changed),
            replaces=replaces,
            stables=[f for f in self.fields if f not in changed],
            delete_before_replace=True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        with self.platform(props) as platform:
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
