"""A deployment on AWS Lambda: one function per workload per environment, blue-green.

Every change that reaches the function publishes a version (frozen code + configuration);
the alias `live` is the deployment's endpoint and moves to a version only once it is Active
and, unless `agentform:awsReadiness` is `state`, has answered a readiness invocation. A
configuration identical to a kept version (a rollback) repoints the alias instead of
publishing. Each version's description is `agentform <version> <fingerprint>`, so the
deployment is read back from AWS alone."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from agentform.platforms.aws import auth, catalog, iam, layer
from agentform.platforms.aws.regions import architecture_for, region_for
from agentform.platforms.aws.session import AwsSession, error_code, is_missing
from agentform_runtime.aws_contract import (
    AUTH_VAR,
    CONNECTION_SECRET_VAR,
    CONNECTION_SECRETS_VAR,
    HOME_REGION_VAR,
    HOP_KEY_SECRET_VAR,
    LIVE_ALIAS,
    MAX_VARIABLES_BYTES,
    PLATFORM_VAR,
    POLICIES_VAR,
    TABLE_VAR,
    TARGETS_VAR,
    connection_secret_name,
    function_name,
    table_name,
)
from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import (
    MANIFEST_FILE,
    DeploymentKey,
    DeploymentSpec,
    Manifest,
    WorkloadKind,
    health_event,
    version_of,
)

MIN_INSTANCES_TAG = "agentform:min-instances"  # what provisioned concurrency was last set to
CONNECTIONS_TAG = "agentform:connections"  # a function's declared connections, for people
MAX_TAG_VALUE = 256  # AWS's limit on a tag value (Lambda and IAM)
KEEP_VERSIONS = 5  # published versions kept for rollback (besides live and previous)
# A public (auth NONE) function URL needs both statements: since October 2025 Lambda also
# checks lambda:InvokeFunction, which the second grants only for calls through the URL.
URL_PERMISSIONS: tuple[dict[str, Any], ...] = (
    {
        "StatementId": "agentform-function-url",
        "Action": "lambda:InvokeFunctionUrl",
        "FunctionUrlAuthType": "NONE",
    },
    {
        "StatementId": "agentform-function-url-invoke",
        "Action": "lambda:InvokeFunction",
        "InvokedViaFunctionUrl": True,
    },
)
_ROLE_PROPAGATION_TRIES = 12  # a new IAM role takes seconds before Lambda may assume it


def record_path(key: DeploymentKey) -> str:
    return f"deployments/{key.environment}/{key.kind}/{key.name}"


def _policies_var(effective: dict[str, Any]) -> list[dict[str, Any]]:
    """The effective policies as PolicySpec dicts (the contract's AGENTFORM_POLICIES)."""
    policies: list[dict[str, Any]] = []
    if effective.get("locations") is not None:
        policies.append({"type": "location", "values": effective["locations"]})
    if effective.get("flavors") is not None:
        policies.append({"type": "flavor", "values": effective["flavors"]})
    if effective.get("token_budgets"):
        policies.append({"type": "max_tokens", "budgets": effective["token_budgets"]})
    return policies


def _effective_from(policies: list[dict[str, Any]]) -> dict[str, Any]:
    effective: dict[str, Any] = {"locations": None, "flavors": None, "token_budgets": []}
    for policy in policies:
        if policy["type"] == "location":
            effective["locations"] = policy["values"]
        elif policy["type"] == "flavor":
            effective["flavors"] = policy["values"]
        else:
            effective["token_budgets"] = policy["budgets"]
    return effective


def _manifest(data: bytes) -> Manifest:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return Manifest.model_validate_json(archive.read(MANIFEST_FILE))


@dataclass(frozen=True)
class Placement:
    region: str
    architecture: str


@dataclass(frozen=True)
class Resolved:
    """What a deployment's role and variables name, looked up once per put."""

    targets: dict[str, str]  # "kind/name" -> live alias ARN
    table_arn: str
    hop_key_arn: str
    connection_arn: str | None
    # A function's declared connections: name -> its secret's ARN (CONNECTION_SECRETS_VAR).
    connections: dict[str, str] = field(default_factory=dict)
    jwt_secret_arn: str | None = None  # with agentform:jwtSecret
    auth: str = ""  # AGENTFORM_AUTH ("" when no JWT settings)


class Deployer:
    """Put, read and delete one deployment's function, alias, URL, concurrency and role."""

    def __init__(
        self, aws: AwsSession, readiness: str, jwt: auth.JwtSettings | None = None
    ) -> None:
        self.aws = aws
        self.readiness = readiness
        self.jwt = jwt or auth.JwtSettings()

    # --- where things are -----------------------------------------------------------------

    def region_of(self, key: DeploymentKey) -> str:
        record = catalog.get_record(self.aws, record_path(key))
        return str(record["region"]) if record else self.aws.home_region

    # --- put ------------------------------------------------------------------------------

    def put(
        self, key: DeploymentKey, body: dict[str, Any], effective: dict[str, Any] | None
    ) -> dict[str, Any]:
        spec = DeploymentSpec.model_validate(body)
        effective = effective or {}
        placement = Placement(
            region_for(effective.get("locations"), self.aws.home_region),
            architecture_for(effective.get("flavors")),
        )
        records = dict(catalog.list_records(self.aws, f"deployments/{key.environment}"))
        previous = records.get(f"{key.kind}/{key.name}")
        previous_region = str(previous["region"]) if previous else self.aws.home_region
        data = catalog.read_artifact(self.aws, spec.artifact)
        manifest = _manifest(data)
        resolved = self._resolve(key, spec, manifest, records)
        # Everything above only read: Lambda's 4 KB of variables is checked before anything
        # on AWS changes (the JWT secret, the role, the function), so a deployment too large
        # leaves nothing behind.
        planned = auth.planned(self.aws, key.environment, self.jwt)
        self._variables(key, spec, effective, replace(resolved, auth=planned))
        # End users reach every deployment at its function URL, as every /run path on the
        # local host: each verifies JWTs with the stack's current settings.
        jwt_secret_arn, auth_var = auth.resolve(self.aws, key.environment, self.jwt)
        resolved = replace(resolved, jwt_secret_arn=jwt_secret_arn, auth=auth_var)
        role_arn, new_role = self._put_role(key, spec, placement, resolved)
        variables = self._variables(key, spec, effective, resolved)
        name = function_name(key)
        lam = self.aws.client("lambda", placement.region)
        try:
            existing: dict[str, Any] | None = lam.get_function(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            existing = None
        provisioned_before = int((existing or {}).get("Tags", {}).get(MIN_INSTANCES_TAG, "0"))
        self._put_function(
            lam,
            key,
            spec,
            manifest,
            placement,
            (role_arn, new_role),
            data,
            variables,
            existing["Configuration"] if existing else None,
        )
        target = self._publish(lam, name, spec)
        self._make_ready(lam, name, target, version_of(spec))
        self._move_alias(lam, name, target)
        self._put_concurrency(lam, key, spec, provisioned_before)
        self._put_url(lam, name)
        self._prune(lam, name)
        catalog.put_record(
            self.aws,
            record_path(key),
            {"region": placement.region, "function": name, "targets": sorted(resolved.targets)},
        )
        if previous_region != placement.region:
            # Moved by a policy: the new region serves now, so the old function goes.
            self._delete_function(self.aws.client("lambda", previous_region), name)
        if previous is None or previous_region != placement.region:
            self._repoint_callers(key, placement.region, records)
        view = self.get(key)
        assert view is not None
        return view

    def _repoint_callers(
        self, key: DeploymentKey, region: str, records: dict[str, dict[str, Any]]
    ) -> None:
        """Deployments that may call this one and name another ARN for it (deployed before it,
        or before a policy moved it to another region) are put again with its ARN now."""
        target = f"{key.kind}/{key.name}"
        arn = self.aws.lambda_arn(region, function_name(key), LIVE_ALIAS)
        for caller, record in records.items():
            if target not in record.get("targets", []):
                continue
            caller_key = DeploymentKey(key.environment, *caller.split("/", 1))
            view = self.get(caller_key)
            if view is None or view["targets"].get(target) == arn:
                continue
            self.put(caller_key, view["settings"], view["effective_policies"])

    def _resolve(
        self,
        key: DeploymentKey,
        spec: DeploymentSpec,
        manifest: Manifest,
        records: dict[str, dict[str, Any]],
    ) -> Resolved:
        """The ARNs this deployment's role and variables name (reads only; the JWT secret,
        which `auth.resolve` may write, comes later)."""
        if spec.connections and key.kind != WorkloadKind.FUNCTIONS.value:
            raise AgentformError(
                400,
                "InvalidField",
                f"connections: only functions read connections; a {key.kind} deployment "
                "cannot declare them (a model API names its one `connection`)",
                field="connections",
            )
        table_arn, hop_key_arn = catalog.environment_arns(self.aws, key.environment)
        connection_arn = None
        if spec.connection and key.kind == WorkloadKind.MODELS.value:
            connection_arn = catalog.secret_arn(self.aws, connection_secret_name(spec.connection))
            if connection_arn is None:
                raise AgentformError(
                    409,
                    "ConnectionMissing",
                    f"connection '{spec.connection}' is not on AWS: declare its "
                    "IntegrationConnection in the same stack",
                )
        connections = {
            name: catalog.secret_arn(self.aws, connection_secret_name(name))
            for name in sorted(spec.connections)
        }
        missing = [name for name, arn in connections.items() if arn is None]
        if missing:
            raise AgentformError(
                409,
                "ConnectionMissing",
                f"connections {missing} are not on AWS: declare each IntegrationConnection "
                "in the same stack",
                field="connections",
            )
        declared = [
            *((WorkloadKind.FUNCTIONS, n) for n in manifest.functions),
            *((WorkloadKind.MODELS, n) for n in manifest.models),
            *((WorkloadKind.AGENTS, n) for n in manifest.agents),
        ]
        targets = {}
        for kind, target in declared:
            record = records.get(f"{kind.value}/{target}")
            # Not deployed yet: where the home region would put it (repointed if it lands
            # elsewhere).
            region = str(record["region"]) if record else self.aws.home_region
            target_key = DeploymentKey(key.environment, kind.value, target)
            targets[f"{kind.value}/{target}"] = self.aws.lambda_arn(
                region, function_name(target_key), LIVE_ALIAS
            )
        return Resolved(
            targets=targets,
            table_arn=table_arn,
            hop_key_arn=hop_key_arn,
            connection_arn=connection_arn,
            connections={name: arn for name, arn in connections.items() if arn},
        )

    def _put_role(
        self, key: DeploymentKey, spec: DeploymentSpec, placement: Placement, resolved: Resolved
    ) -> tuple[str, bool]:
        name = function_name(key)
        log_group = (
            f"arn:{self.aws.partition}:logs:{placement.region}:{self.aws.account}:"
            f"log-group:/aws/lambda/{name}"
        )
        policy = iam.role_policy(
            targets=list(resolved.targets.values()),
            table_arn=resolved.table_arn,
            hop_key_arn=resolved.hop_key_arn,
            connection_arn=resolved.connection_arn,
            jwt_secret_arn=resolved.jwt_secret_arn,
            log_group_arn=log_group,
            connection_arns=list(resolved.connections.values()),
        )
        return iam.put_role(self.aws, name, policy, self._tags(key, spec))

    def _variables(
        self,
        key: DeploymentKey,
        spec: DeploymentSpec,
        effective: dict[str, Any],
        resolved: Resolved,
    ) -> dict[str, str]:
        variables = {
            PLATFORM_VAR: "aws",
            "AGENTFORM_ENVIRONMENT": key.environment,
            "AGENTFORM_KIND": key.kind,
            "AGENTFORM_NAME": key.name,
            "AGENTFORM_VERSION": version_of(spec),
            "AGENTFORM_CONFIG": json.dumps(spec.config, sort_keys=True),
            TARGETS_VAR: json.dumps(
                {target: arn.split(":")[3] for target, arn in resolved.targets.items()},
                sort_keys=True,
            ),
            TABLE_VAR: table_name(key.environment),
            HOME_REGION_VAR: self.aws.home_region,
            HOP_KEY_SECRET_VAR: resolved.hop_key_arn,
            POLICIES_VAR: json.dumps(_policies_var(effective), sort_keys=True),
        }
        if resolved.connection_arn:
            variables[CONNECTION_SECRET_VAR] = resolved.connection_arn
        if resolved.connections:  # only when declared: other functions' versions stay the same
            variables[CONNECTION_SECRETS_VAR] = json.dumps(
                resolved.connections, sort_keys=True, separators=(",", ":")
            )
        if resolved.auth:
            variables[AUTH_VAR] = resolved.auth
        _check_variables_size(variables)
        return variables

    def _tags(self, key: DeploymentKey, spec: DeploymentSpec) -> dict[str, str]:
        return {
            "agentform:environment": key.environment,
            "agentform:kind": key.kind,
            "agentform:name": key.name,
            "agentform:version": version_of(spec),
            "agentform:policies": " ".join(spec.policies)[:256],
            MIN_INSTANCES_TAG: str(spec.scaling.min_instances),
            "agentform:idle-timeout": str(spec.scaling.idle_timeout_s),
            "agentform:connection": spec.connection or "",
            CONNECTIONS_TAG: _names_tag(spec.connections),
        }

    def _put_function(
        self,
        lam: Any,
        key: DeploymentKey,
        spec: DeploymentSpec,
        manifest: Manifest,
        placement: Placement,
        role: tuple[str, bool],
        data: bytes,
        variables: dict[str, str],
        current: dict[str, Any] | None,
    ) -> None:
        """Create the function, or update its code and configuration where they differ."""
        name = function_name(key)
        role_arn, new_role = role
        configuration = {
            "Role": role_arn,
            "Handler": manifest.handler,
            "Runtime": layer.RUNTIME,
            "MemorySize": spec.memory_mb,
            "Timeout": spec.timeout_s,
            "Environment": {"Variables": variables},
            # pydantic, jsonschema, httpx, PyJWT, cryptography: not in Lambda's runtime.
            "Layers": [layer.ensure_layer(self.aws, placement.region, placement.architecture)],
        }
        if current is None:
            self._assuming_role(
                new_role,
                lambda: lam.create_function(
                    FunctionName=name,
                    Code=catalog.code_location(self.aws, placement.region, data),
                    Architectures=[placement.architecture],
                    Tags=self._tags(key, spec),
                    Publish=False,
                    **configuration,
                ),
            )
            lam.get_waiter("function_active_v2").wait(FunctionName=name)
            return
        lam.tag_resource(Resource=current["FunctionArn"], Tags=self._tags(key, spec))
        if current["CodeSha256"] != catalog.code_sha256(spec.artifact) or current.get(
            "Architectures", ["x86_64"]
        ) != [placement.architecture]:
            lam.update_function_code(
                FunctionName=name,
                Architectures=[placement.architecture],
                **catalog.code_location(self.aws, placement.region, data),
            )
            lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        now = {
            "Role": current["Role"],
            "Handler": current.get("Handler"),
            "Runtime": current.get("Runtime"),
            "MemorySize": current.get("MemorySize"),
            "Timeout": current.get("Timeout"),
            "Environment": {"Variables": current.get("Environment", {}).get("Variables", {})},
            "Layers": _layer_arns(current),
        }
        if now != configuration:
            self._assuming_role(
                new_role,
                lambda: lam.update_function_configuration(FunctionName=name, **configuration),
            )
            lam.get_waiter("function_updated_v2").wait(FunctionName=name)

    @staticmethod
    def _assuming_role(new_role: bool, call: Callable[[], Any]) -> Any:
        """Run `call`; while a role made just now is not yet assumable by Lambda, retry."""
        for attempt in range(_ROLE_PROPAGATION_TRIES):
            try:
                return call()
            except ClientError as exc:
                propagating = (
                    new_role
                    and error_code(exc) == "InvalidParameterValueException"
                    and "cannot be assumed" in str(exc)
                )
                if not propagating or attempt == _ROLE_PROPAGATION_TRIES - 1:
                    raise
                time.sleep(min(2.0 * (attempt + 1), 10.0))
        return None

    @staticmethod
    def _fingerprint(configuration: dict[str, Any]) -> str:
        keys = ("CodeSha256", "Architectures", "Role", "Handler", "Runtime", "MemorySize")
        shaped = {k: configuration.get(k) for k in keys}
        shaped["Timeout"] = configuration.get("Timeout")
        shaped["Variables"] = configuration.get("Environment", {}).get("Variables", {})
        shaped["Layers"] = _layer_arns(configuration)
        canonical = json.dumps(shaped, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def _versions(self, lam: Any, name: str) -> list[dict[str, Any]]:
        """Published versions, oldest first ($LATEST left out)."""
        versions: list[dict[str, Any]] = []
        for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name):
            versions += [v for v in page["Versions"] if v["Version"] != "$LATEST"]
        return sorted(versions, key=lambda v: int(v["Version"]))

    def _publish(self, lam: Any, name: str, spec: DeploymentSpec) -> str:
        """The published version matching $LATEST now: a kept one, or a new one."""
        latest = lam.get_function_configuration(FunctionName=name)
        fingerprint = self._fingerprint(latest)
        for kept in reversed(self._versions(lam, name)):
            if str(kept.get("Description", "")).endswith(f" {fingerprint}"):
                return str(kept["Version"])
        published = lam.publish_version(
            FunctionName=name,
            CodeSha256=latest["CodeSha256"],
            Description=f"agentform {version_of(spec)} {fingerprint}",
        )
        version = str(published["Version"])
        lam.get_waiter("published_version_active").wait(FunctionName=name, Qualifier=version)
        return version

    def _make_ready(self, lam: Any, name: str, target: str, version: str) -> None:
        state = lam.get_function_configuration(FunctionName=name, Qualifier=target)
        if state.get("State", "Active") != "Active":
            raise AgentformError(
                422,
                "ReadinessFailed",
                f"version {version} (Lambda version {target}) is {state.get('State')}: "
                f"{state.get('StateReason', 'no reason given')}; `live` stays where it was",
            )
        if self.readiness == "state":
            return
        answer = lam.invoke(FunctionName=f"{name}:{target}", Payload=health_event())
        payload = answer["Payload"].read().decode(errors="replace")
        healthy = "FunctionError" not in answer
        if healthy:
            try:
                healthy = json.loads(payload).get("statusCode") == 200
            except (ValueError, AttributeError):
                healthy = False
        if not healthy:
            raise AgentformError(
                422,
                "ReadinessFailed",
                f"version {version} (Lambda version {target}) failed its health check: "
                f"{payload[:500]}; `live` stays where it was",
            )

    def _move_alias(self, lam: Any, name: str, target: str) -> None:
        try:
            alias = lam.get_alias(FunctionName=name, Name=LIVE_ALIAS)
        except lam.exceptions.ResourceNotFoundException:
            lam.create_alias(FunctionName=name, Name=LIVE_ALIAS, FunctionVersion=target)
            return
        if alias["FunctionVersion"] != target or alias.get("RoutingConfig"):
            lam.update_alias(
                FunctionName=name,
                Name=LIVE_ALIAS,
                FunctionVersion=target,
                RoutingConfig={"AdditionalVersionWeights": {}},
            )

    def _put_concurrency(
        self, lam: Any, key: DeploymentKey, spec: DeploymentSpec, provisioned_before: int
    ) -> None:
        """Disabled: reserved concurrency 0 (Lambda throttles every call); else max_instances.
        min_instances: provisioned concurrency on `live`, touched only when it is or was set."""
        name = function_name(key)
        reserved = spec.scaling.max_instances if spec.enabled else 0
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
        wanted = spec.scaling.min_instances if spec.enabled else 0
        if wanted or provisioned_before:
            put_provisioned_concurrency(lam, name, wanted)

    def _put_url(self, lam: Any, name: str) -> None:
        """A function URL on `live` that anyone may call: the workload authenticates end users
        itself (API keys, JWTs), as on the local host."""
        try:
            lam.get_function_url_config(FunctionName=name, Qualifier=LIVE_ALIAS)
        except lam.exceptions.ResourceNotFoundException:
            lam.create_function_url_config(FunctionName=name, Qualifier=LIVE_ALIAS, AuthType="NONE")
        try:
            policy = json.loads(lam.get_policy(FunctionName=name, Qualifier=LIVE_ALIAS)["Policy"])
            present = {statement.get("Sid") for statement in policy.get("Statement", [])}
        except lam.exceptions.ResourceNotFoundException:
            present = set()
        for statement in URL_PERMISSIONS:
            if statement["StatementId"] not in present:
                with contextlib.suppress(lam.exceptions.ResourceConflictException):
                    lam.add_permission(
                        FunctionName=name, Qualifier=LIVE_ALIAS, Principal="*", **statement
                    )

    def _prune(self, lam: Any, name: str) -> None:
        """Delete published versions beyond the newest KEEP_VERSIONS, never the live one."""
        live = lam.get_alias(FunctionName=name, Name=LIVE_ALIAS)["FunctionVersion"]
        versions = [v["Version"] for v in self._versions(lam, name)]
        for version in versions[:-KEEP_VERSIONS]:
            if version != live:
                lam.delete_function(FunctionName=name, Qualifier=version)

    # --- get ------------------------------------------------------------------------------

    def get(self, key: DeploymentKey) -> dict[str, Any] | None:
        region = self.region_of(key)
        lam = self.aws.client("lambda", region)
        name = function_name(key)
        try:
            function = lam.get_function(FunctionName=name)
            alias = lam.get_alias(FunctionName=name, Name=LIVE_ALIAS)
        except lam.exceptions.ResourceNotFoundException:
            return None  # absent, or interrupted before `live` existed: the next up repairs
        live = lam.get_function_configuration(FunctionName=name, Qualifier=alias["FunctionVersion"])
        reserved = lam.get_function_concurrency(FunctionName=name).get(
            "ReservedConcurrentExecutions"
        )
        tags = function.get("Tags", {})
        variables = live.get("Environment", {}).get("Variables", {})
        version = _agentform_version(live)
        older = [
            _agentform_version(v)
            for v in reversed(self._versions(lam, name))
            if _agentform_version(v) != version
        ]
        try:
            url = str(
                lam.get_function_url_config(FunctionName=name, Qualifier=LIVE_ALIAS)["FunctionUrl"]
            )
        except lam.exceptions.ResourceNotFoundException:
            url = ""
        enabled = reserved != 0
        settings = {
            "artifact": catalog.digest_from_code_sha256(live["CodeSha256"]),
            "memory_mb": live["MemorySize"],
            "timeout_s": live["Timeout"],
            "scaling": {
                "min_instances": int(tags.get(MIN_INSTANCES_TAG, "0")),
                "max_instances": reserved if reserved else 4,
                "idle_timeout_s": float(tags.get("agentform:idle-timeout", "300")),
            },
            "policies": tags.get("agentform:policies", "").split(),
            "enabled": enabled,
            "connection": tags.get("agentform:connection") or None,
            # From the live version's variables (its exact list, however long), not the tag.
            "connections": sorted(json.loads(variables.get(CONNECTION_SECRETS_VAR, "{}"))),
            "config": json.loads(variables.get("AGENTFORM_CONFIG", "{}")),
        }
        return {
            "environment": key.environment,
            "kind": key.kind,
            "name": key.name,
            "status": "live" if enabled else "disabled",
            "version": version,
            "previous_version": older[0] if older else None,
            "lambda_version": alias["FunctionVersion"],
            "region": region,
            "architecture": live.get("Architectures", ["x86_64"])[0],
            "settings": settings,
            "effective_policies": _effective_from(json.loads(variables.get(POLICIES_VAR, "[]"))),
            "targets": {
                target: self.aws.lambda_arn(
                    region,
                    function_name(DeploymentKey(key.environment, *target.split("/", 1))),
                    LIVE_ALIAS,
                )
                for target, region in json.loads(variables.get(TARGETS_VAR, "{}")).items()
            },
            "url": url,
        }

    # --- delete ---------------------------------------------------------------------------

    def delete(self, key: DeploymentKey) -> None:
        name = function_name(key)
        region = self.region_of(key)
        self._delete_function(self.aws.client("lambda", region), name)
        iam.delete_role(self.aws, name)
        logs = self.aws.client("logs", region)
        try:
            logs.delete_log_group(logGroupName=f"/aws/lambda/{name}")
        except ClientError as exc:
            if not is_missing(exc):
                raise
        catalog.delete_record(self.aws, record_path(key))

    def _delete_function(self, lam: Any, name: str) -> None:
        """The function with its versions, alias, URL and concurrency settings."""
        try:
            tags = lam.get_function(FunctionName=name).get("Tags", {})
        except lam.exceptions.ResourceNotFoundException:
            return
        if tags.get(MIN_INSTANCES_TAG, "0") != "0":
            put_provisioned_concurrency(lam, name, 0)
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
            lam.delete_function_url_config(FunctionName=name, Qualifier=LIVE_ALIAS)
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
            lam.delete_alias(FunctionName=name, Name=LIVE_ALIAS)
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
            lam.delete_function(FunctionName=name)  # with every version


def put_provisioned_concurrency(lam: Any, name: str, instances: int) -> None:
    """Keep `instances` warm on `live` (0: none). Called only when the count is or was set,
    so that a deployment without min_instances never needs this API (moto lacks it)."""
    if instances > 0:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier=LIVE_ALIAS, ProvisionedConcurrentExecutions=instances
        )
        return
    try:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=LIVE_ALIAS)
    except lam.exceptions.ProvisionedConcurrencyConfigNotFoundException:
        return
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=LIVE_ALIAS)


def _check_variables_size(variables: dict[str, str]) -> None:
    """Lambda refuses more than 4 KB of variables (measured as compact JSON): say which take
    the room before AWS says only that there are too many."""
    size = len(json.dumps(variables, separators=(",", ":")).encode())
    if size <= MAX_VARIABLES_BYTES:
        return
    largest = sorted(variables, key=lambda name: -len(variables[name].encode()))[:3]
    raise AgentformError(
        400,
        "VariablesTooLarge",
        f"the function's environment variables take {size} bytes; Lambda allows "
        f"{MAX_VARIABLES_BYTES}. Largest: "
        + ", ".join(f"{name} ({len(variables[name].encode())} bytes)" for name in largest)
        + ". Make the deployment's `config` smaller (or move it into the code), or declare "
        "fewer targets",
    )


def _names_tag(names: list[str]) -> str:
    """Names, space-separated and sorted, within a tag value's 256 characters: when they do
    not all fit, as many whole names as fit and `+N` for the rest (the deployment reads its
    connections back from its variables, never from this tag)."""
    ordered = sorted(names)
    for shown in range(len(ordered), -1, -1):
        rest = len(ordered) - shown
        value = " ".join(ordered[:shown] + ([f"+{rest}"] if rest else []))
        if len(value) <= MAX_TAG_VALUE:
            return value
    return ""


def _layer_arns(configuration: dict[str, Any]) -> list[str]:
    return [str(entry["Arn"]) for entry in configuration.get("Layers") or []]


def _agentform_version(configuration: dict[str, Any]) -> str:
    """`vXXXX` from a version's description `agentform <version> <fingerprint>`."""
    parts = str(configuration.get("Description", "")).split()
    return (
        parts[1] if len(parts) == 3 and parts[0] == "agentform" else str(configuration["Version"])
    )
