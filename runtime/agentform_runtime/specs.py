"""The shapes exchanged between the provider, the host and the workload.

Every body the control plane accepts is one of these pydantic models, so a bad field is
rejected with its name and reason wherever it enters: at `pulumi preview` (the provider
validates with the same models) or as a 400 from the host.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, ValidationError

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"

MEMORY_MB_RANGE = (128, 10240)
TIMEOUT_S_RANGE = (1, 900)
# A token budget above this is no budget (and would overflow the counters' integers).
MAX_TOKEN_BUDGET = 10**12


def check_name(value: str) -> str:
    """Return `value` when it is a DNS-safe name; raise ValueError naming the rule otherwise."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name: {NAME_RULE}")
    return value


Name = Annotated[str, Field(pattern=NAME_PATTERN, description=NAME_RULE)]


class WorkloadKind(StrEnum):
    """The three kinds of workload; the values are the URL path segments."""

    AGENTS = "agents"
    FUNCTIONS = "functions"
    MODELS = "models"


class DeploymentKey(NamedTuple):
    """Which deployment: one workload (kind and name) on one environment."""

    environment: str
    kind: str  # a WorkloadKind value
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} on '{self.environment}'"


# --- Headers the host and the workload exchange ------------------------------------------

REQUEST_ID_HEADER = "x-agentform-request-id"
TRACE_ID_HEADER = "x-agentform-trace-id"
IDENTITY_HEADER = "x-agentform-identity"  # the end user the request acts for
HOP_TOKEN_HEADER = "x-agentform-hop-token"  # what the workload presents for its own calls
VERSION_HEADER = "x-agentform-version"  # the version that answered
USAGE_HEADER = "x-agentform-usage"  # model tokens used, {"input": n, "output": n}
ERROR_CLASS_HEADER = "x-agentform-error-class"  # a workload's structured error code


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- Policies ---------------------------------------------------------------------------

LOCATIONS: dict[str, set[str]] = {
    # continent -> countries we route to (ISO 3166-1 alpha-2, lowercase)
    "north-america": {"us", "ca", "mx"},
    "europe": {"fr", "de", "gb", "ie", "nl", "es", "it", "se", "pl", "ch"},
    "asia": {"jp", "sg", "in", "kr"},
    "oceania": {"au", "nz"},
    "south-america": {"br", "cl"},
}
COUNTRIES: set[str] = set().union(*LOCATIONS.values())
FLAVORS: dict[str, set[str]] = {
    # A CPU architecture narrows `cpu`; the AWS platform maps it to the function's architecture.
    "cpu": {"cpu", "x86_64", "arm64"},
    "gpu": {"t4", "l4", "a10g", "a100", "h100"},
}
FLAVOR_VALUES: set[str] = set().union(*FLAVORS.values())


class PolicyType(StrEnum):
    LOCATION = "location"
    FLAVOR = "flavor"
    MAX_TOKENS = "max_tokens"


class TokenBudget(Strict):
    """A token budget for one window; each limit is optional, at least one is required."""

    window: Literal["minute", "hour", "day", "month"]
    input: int | None = Field(default=None, gt=0, le=MAX_TOKEN_BUDGET)
    output: int | None = Field(default=None, gt=0, le=MAX_TOKEN_BUDGET)
    total: int | None = Field(default=None, gt=0, le=MAX_TOKEN_BUDGET)

    @model_validator(mode="after")
    def _one_limit(self) -> TokenBudget:
        if self.input is None and self.output is None and self.total is None:
            raise ValueError("a token budget needs at least one of input, output, total")
        return self


class PolicySpec(Strict):
    """One policy. `values` are locations (countries or continents) or flavors; a
    `max_tokens` policy carries `budgets` instead."""

    type: PolicyType
    values: list[str] = Field(default_factory=list)
    budgets: list[TokenBudget] = Field(default_factory=list)
    resource_types: list[WorkloadKind] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> PolicySpec:
        if self.type is PolicyType.MAX_TOKENS:
            if not self.budgets:
                raise ValueError("a max_tokens policy needs at least one entry in budgets")
            if self.values:
                raise ValueError("a max_tokens policy takes budgets, not values")
            return self
        if not self.values:
            raise ValueError(f"a {self.type.value} policy needs at least one value")
        if self.budgets:
            raise ValueError(f"a {self.type.value} policy takes values, not budgets")
        known = (
            (set(LOCATIONS) | COUNTRIES)
            if self.type is PolicyType.LOCATION
            else (set(FLAVORS) | FLAVOR_VALUES)
        )
        unknown = sorted(set(self.values) - known)
        if unknown:
            raise ValueError(
                f"unknown {self.type.value} value(s) {unknown}; allowed: {sorted(known)}"
            )
        return self


# --- Control-plane bodies ---------------------------------------------------------------


class EnvironmentSpec(Strict):
    """An environment: a stage with environment-level policies (by policy name)."""

    description: str = ""
    policies: list[Name] = Field(default_factory=list)


class ConnectionSpec(Strict):
    """Credentials and configuration for one provider. `secrets` are write-only."""

    provider: Literal["openai", "anthropic", "openai-compatible", "generic"]
    config: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)


class ScalingSpec(Strict):
    min_instances: int = Field(default=0, ge=0, le=100)
    max_instances: int = Field(default=4, ge=1, le=100)
    idle_timeout_s: float = Field(default=300.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _ordered(self) -> ScalingSpec:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) exceeds max_instances ({self.max_instances})"
            )
        return self


class DeploymentSpec(Strict):
    """What PUT .../deployments/{kind}/{name} accepts."""

    artifact: str = Field(description="digest of an uploaded artifact, sha256:<hex>")
    memory_mb: int = Field(default=512, ge=MEMORY_MB_RANGE[0], le=MEMORY_MB_RANGE[1])
    timeout_s: int = Field(default=60, ge=TIMEOUT_S_RANGE[0], le=TIMEOUT_S_RANGE[1])
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    policies: list[Name] = Field(default_factory=list)
    enabled: StrictBool = True  # "yes" or 1 is a mistake to report, not a truth to guess
    connection: Name | None = Field(
        default=None, description="integration connection whose secrets a model API gets"
    )
    connections: list[Name] = Field(
        default_factory=list,
        description="integration connections a function reads (ctx.connections[name])",
    )
    config: dict[str, str] = Field(default_factory=dict)

    @field_validator("connections")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"lists {repeated} more than once")
        return value

    @field_validator("artifact")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
            raise ValueError("must be an artifact digest of the form sha256:<64 hex digits>")
        return value


class ReleaseRequest(Strict):
    target_environment: Name
    copy_policies: StrictBool = False


class RollbackRequest(Strict):
    version: str | None = Field(
        default=None, description="a kept version; default: the one before the current"
    )


# --- Lineage ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """Where one execution sits in its trace, and for whom it runs: what the host and a
    workload on Lambda record alike."""

    request_id: str
    trace_id: str
    parent_id: str | None
    identity: str
    path: str


def execution_status(http_status: int) -> str:
    """The status of a finished execution's record: `ok` below 400, else `error`."""
    return "ok" if http_status < 400 else "error"


# --- Artifacts and versions ---------------------------------------------------------------

MANIFEST_FILE = "agentform.json"
DEFAULT_HANDLER = "agentform_runtime.workload.handler.handle"
HEALTH_PATH = "/_agentform/health"  # the readiness probe every handler answers


def health_event() -> bytes:
    """The readiness probe as a Lambda function-URL event (payload format 2.0): what the host
    and the AWS deployer both send a new version before routing requests to it."""
    import json

    return json.dumps(
        {
            "version": "2.0",
            "rawPath": HEALTH_PATH,
            "rawQueryString": "",
            "headers": {},
            "body": "",
            "isBase64Encoded": False,
            "requestContext": {"http": {"method": "GET", "path": HEALTH_PATH}},
        }
    ).encode()


class Manifest(BaseModel):
    """`agentform.json` at the root of every artifact: what the workload is and may call."""

    model_config = ConfigDict(extra="forbid")

    kind: WorkloadKind
    name: Name
    handler: str = Field(default=DEFAULT_HANDLER, description="module.function for awslambdaric")
    entrypoint: str | None = Field(default=None, description="user code, module:function")
    functions: list[Name] = Field(default_factory=list, description="functions it may call")
    models: list[Name] = Field(default_factory=list, description="model APIs it may call")
    agents: list[Name] = Field(default_factory=list, description="agents it may hand over to")
    spec: dict[str, object] = Field(default_factory=dict, description="kind-specific settings")


def version_of(spec: DeploymentSpec) -> str:
    """A version id: the digest of the artifact plus the configuration that shapes the code's
    behaviour. Scaling, policies and `enabled` are deployment settings, not part of it."""
    import json

    resolved = {
        "artifact": spec.artifact,
        "memory_mb": spec.memory_mb,
        "timeout_s": spec.timeout_s,
        "config": dict(sorted(spec.config.items())),
        "connection": spec.connection,
    }
    if spec.connections:  # only when set, so versions without any keep their ids
        resolved["connections"] = sorted(spec.connections)
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return "v" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def digest_of(data: bytes) -> str:
    """The content address of an artifact: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- Workload specs: the `spec` of a manifest, per kind --------------------------------------

ModelProvider = Literal["openai", "anthropic", "openai-compatible"]


class ModelSpec(Strict):
    """`spec` of a model API's manifest."""

    provider: ModelProvider
    model: str = Field(min_length=1, description="the provider's model name")
    base_url: str | None = Field(default=None, description="required for openai-compatible")
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0, le=30)
    timeout_s: float = Field(default=120.0, gt=0, le=TIMEOUT_S_RANGE[1])

    @model_validator(mode="after")
    def _base_url_when_compatible(self) -> ModelSpec:
        if self.provider == "openai-compatible" and not self.base_url:
            # Raised with its location, so that the error names `base_url`, not the model.
            reason = PydanticCustomError(
                "base_url_required", "an openai-compatible provider needs the server's URL"
            )
            raise ValidationError.from_exception_data(
                type(self).__name__, [{"type": reason, "loc": ("base_url",), "input": None}]
            )
        return self


class AgentSpec(Strict):
    """`spec` of a declarative agent's manifest."""

    instructions: str = ""
    description: str = ""
    max_steps: int = Field(default=10, ge=1, le=100)
    handoffs: dict[str, str] = Field(default_factory=dict, description="agent -> when to transfer")
