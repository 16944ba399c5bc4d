"""One interface over the two platforms, so the acceptance cases run unchanged on both:
`local` (the real local host) and `aws` (the real provider under the real Pulumi engine,
deploying onto moto behind the test-only Lambda router, which runs the zips under
aws-lambda-rie). `DeployerAwsPlatform` deploys with the test deployer instead, for what a
Pulumi program cannot declare (a cycle of chained agents)."""

from __future__ import annotations

import json
import secrets
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from agentform.packaging import build_artifact
from agentform.scripted_model import ScriptedModelServer
from agentform_runtime.aws_contract import function_name, table_name
from agentform_runtime.specs import DeploymentKey, Manifest, WorkloadKind
from agentform_runtime.workload.aws import lineage
from agentform_runtime.workload.aws.identity import put_api_key
from tests.aws.moto_server import CREDENTIALS
from tests.aws_runtime.deployer import AwsEnvironment
from tests.aws_runtime.router import REGION, LambdaRouter
from tests.support.agents import deploy_agent, deploy_model
from tests.support.engine import PulumiProject
from tests.support.hosts import RunningHost
from tests.support.workloads import deploy, function_artifact, setup_environment

ENV = "development"
OTHER_ENV = "production"
JWT_SECRET = "a-test-jwt-secret-of-32-bytes-or-more"


def jwt_for(sub: str, secret: str = JWT_SECRET, **claims: Any) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600, **claims}, secret, "HS256")


def _code(workdir: Path, name: str, source: str) -> Path:
    code = workdir / f"code-{name}"
    code.mkdir(parents=True, exist_ok=True)
    (code / f"{name.replace('-', '_')}.py").write_text(textwrap.dedent(source))
    return code


class Platform:
    name = ""

    def model(self, server: ScriptedModelServer, name: str = "chat") -> None:
        raise NotImplementedError

    def function(self, name: str, source: str) -> None:
        raise NotImplementedError

    def update_function(self, name: str, source: str) -> None:
        """Deploy new code for an existing function, blue-green."""
        raise NotImplementedError

    def agent(
        self,
        name: str,
        *,
        functions: tuple[str, ...] = (),
        agents: tuple[str, ...] = (),
        code: str | None = None,
        policies: list[dict[str, Any]] | None = None,
        **spec: Any,
    ) -> None:
        raise NotImplementedError

    def api_key(self) -> str:
        raise NotImplementedError

    def foreign_api_key(self) -> str:
        """An API key of another environment, `production`."""
        raise NotImplementedError

    def url(self, kind: str, name: str) -> str:
        raise NotImplementedError

    def post(
        self, kind: str, name: str, token: str, body: Any, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return httpx.post(
            self.url(kind, name),
            json=body,
            headers={**({"authorization": f"Bearer {token}"} if token else {}), **(headers or {})},
            timeout=120,
        )

    def trace(self, trace_or_request_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def ask(self, agent: str, token: str, inputs: Any) -> httpx.Response:
        return self.post("agents", agent, token, {"inputs": inputs})


class LocalPlatform(Platform):
    name = "local"

    def __init__(self, host: RunningHost, workdir: Path) -> None:
        self.host = host
        self.workdir = workdir
        self.admin = host.admin()
        self._key = setup_environment(self.admin, ENV)

    def model(self, server: ScriptedModelServer, name: str = "chat") -> None:
        deploy_model(self.admin, server, name, env=ENV).raise_for_status()

    def function(self, name: str, source: str) -> None:
        deploy(self.admin, function_artifact(self.workdir, name, source), name).raise_for_status()

    def update_function(self, name: str, source: str) -> None:
        self.function(name, source)

    def agent(
        self,
        name: str,
        *,
        functions: tuple[str, ...] = (),
        agents: tuple[str, ...] = (),
        code: str | None = None,
        policies: list[dict[str, Any]] | None = None,
        **spec: Any,
    ) -> None:
        settings: dict[str, Any] = {}
        if policies:
            names = []
            for index, policy in enumerate(policies):
                policy_name = f"{name}-policy-{index}"
                self.admin.put(f"/v1/policies/{policy_name}", json=policy).raise_for_status()
                names.append(policy_name)
            settings["policies"] = names
        deploy_agent(
            self.admin,
            name,
            functions=functions,
            agents=agents,
            code=_code(self.workdir, name, code) if code else None,
            entrypoint=f"{name.replace('-', '_')}:run" if code else None,
            settings=settings,
            **spec,
        ).raise_for_status()

    def api_key(self) -> str:
        return self._key

    def foreign_api_key(self) -> str:
        return setup_environment(self.admin, OTHER_ENV)

    def url(self, kind: str, name: str) -> str:
        return f"{self.host.url}/run/{ENV}/{kind}/{name}"

    def trace(self, trace_or_request_id: str) -> list[dict[str, Any]]:
        response = self.admin.get(f"/v1/traces/{trace_or_request_id}")
        response.raise_for_status()
        return list(response.json()["executions"])


class DeployerAwsPlatform(Platform):
    """TEST-ONLY: deploys with `tests/aws_runtime/deployer.py`, not the provider."""

    name = "aws-test-deployer"

    def __init__(self, router: LambdaRouter, workdir: Path) -> None:
        self.router = router
        self.workdir = workdir
        self.env = AwsEnvironment(router, ENV)
        self.env.use_jwt_secret(JWT_SECRET)
        self._key = self.env.api_key()

    def model(self, server: ScriptedModelServer, name: str = "chat") -> None:
        connection = self.env.connection(
            f"{name}-key",
            {"provider": "openai-compatible", "config": {}, "secrets": {"api_key": "sk-test-123"}},
        )
        manifest = Manifest(
            kind=WorkloadKind.MODELS,
            name=name,
            spec={
                "provider": "openai-compatible",
                "model": "scripted-1",
                "base_url": f"{server.url}/v1",
                "backoff_s": 0.01,
            },
        )
        self.env.deploy(manifest, build_artifact(manifest), connection_arn=connection)

    def function(self, name: str, source: str) -> None:
        manifest = Manifest(kind=WorkloadKind.FUNCTIONS, name=name, entrypoint="tool:main")
        self.env.deploy(manifest, function_artifact(self.workdir, name, source))

    def update_function(self, name: str, source: str) -> None:
        manifest = Manifest(kind=WorkloadKind.FUNCTIONS, name=name, entrypoint="tool:main")
        self.env.update(manifest, function_artifact(self.workdir, name, source))

    def agent(
        self,
        name: str,
        *,
        functions: tuple[str, ...] = (),
        agents: tuple[str, ...] = (),
        code: str | None = None,
        policies: list[dict[str, Any]] | None = None,
        **spec: Any,
    ) -> None:
        manifest = Manifest(
            kind=WorkloadKind.AGENTS,
            name=name,
            models=["chat"],
            functions=list(functions),
            agents=list(agents),
            entrypoint=f"{name.replace('-', '_')}:run" if code else None,
            spec=spec,
        )
        artifact = build_artifact(manifest, _code(self.workdir, name, code) if code else None)
        self.env.deploy(manifest, artifact, policies=policies)

    def api_key(self) -> str:
        return self._key

    def url(self, kind: str, name: str) -> str:
        """The function URL (served by the test-only router)."""
        function = function_name(DeploymentKey(ENV, kind, name))
        return f"{self.router.url}/lambda-url/{function}/"

    def trace(self, trace_or_request_id: str) -> list[dict[str, Any]]:
        return lineage.trace(table_name(ENV), trace_or_request_id, self.router.client("dynamodb"))


PROGRAM = Path(__file__).parent / "programs" / "acceptance"
MODEL_API_KEY = "sk-test-123"


class AwsPlatform(Platform):
    """`agentform:platform aws` through the real provider and Pulumi engine, against the
    test-only router (moto + aws-lambda-rie), with readiness invocations (the router runs
    code). Declarations accumulate; the first request (or `api_key`) runs `pulumi up`."""

    name = "aws"

    def __init__(
        self,
        router: LambdaRouter,
        workdir: Path,
        pulumi_bin: Path,
        *,
        jwt_secret: str | None = JWT_SECRET,
        jwks_url: str | None = None,
    ) -> None:
        self.router = router
        self.workdir = workdir
        self.project = PulumiProject(
            workdir / "project",
            PROGRAM,
            pulumi_bin,
            env={**CREDENTIALS, "AGENTFORM_STATE_DIR": str(workdir / "no-host")},
        )
        for key, value in {
            "agentform:platform": "aws",
            "agentform:region": REGION,
            "agentform:awsEndpointUrl": router.url,
            "agentform:awsReadiness": "invoke",
            **({"agentform:jwksUrl": jwks_url} if jwks_url else {}),
        }.items():
            self.project.config(key, value)
        if jwt_secret:
            self.project.config("agentform:jwtSecret", jwt_secret, secret=True)
        self.project.config("model_api_key", MODEL_API_KEY, secret=True)
        self.declared: dict[str, list[dict[str, Any]]] = {
            "models": [],
            "functions": [],
            "agents": [],
        }
        self._deployed = ""  # the declarations last deployed (JSON)
        self._key = ""

    def up(self) -> None:
        """`pulumi up` when the declarations changed since the last one."""
        workloads = json.dumps(self.declared, sort_keys=True)
        if workloads == self._deployed:
            return
        self.project.config("workloads", workloads)
        self.project.up()
        self._deployed = workloads

    def model(self, server: ScriptedModelServer, name: str = "chat") -> None:
        self.declared["models"].append({"name": name, "base_url": f"{server.url}/v1"})

    def function(self, name: str, source: str) -> None:
        code = _code(self.workdir, name, "")
        (code / f"{name.replace('-', '_')}.py").unlink()
        (code / "tool.py").write_text(textwrap.dedent(source))
        self.declared["functions"].append(
            {"name": name, "code": str(code), "entrypoint": "tool:main"}
        )

    def update_function(self, name: str, source: str) -> None:
        """New code in the function's directory, then `pulumi up`: a new version, blue-green."""
        (self.workdir / f"code-{name}" / "tool.py").write_text(textwrap.dedent(source))
        self.project.config("workloads", json.dumps(self.declared, sort_keys=True))
        self.project.up()

    def agent(
        self,
        name: str,
        *,
        functions: tuple[str, ...] = (),
        agents: tuple[str, ...] = (),
        code: str | None = None,
        policies: list[dict[str, Any]] | None = None,
        **spec: Any,
    ) -> None:
        # A handoff's description is the chained agent's own `description` in a program.
        for chained, description in (spec.get("handoffs") or {}).items():
            for declared in self.declared["agents"]:
                if declared["name"] == chained:
                    declared["description"] = description
        self.declared["agents"].append(
            {
                "name": name,
                "functions": list(functions),
                "agents": list(agents),
                "instructions": spec.get("instructions", ""),
                "description": "",
                "code": str(_code(self.workdir, name, code)) if code else None,
                "entrypoint": f"{name.replace('-', '_')}:run" if code else None,
                "policies": policies or [],
            }
        )

    def api_key(self) -> str:
        """An environment API key, written by `put_api_key` (only its hash is kept)."""
        self.up()
        if not self._key:
            self._key = self._put_key(ENV)
        return self._key

    def foreign_api_key(self) -> str:
        """A key of `production`, which the program declares beside `development`."""
        self.up()
        return self._put_key(OTHER_ENV)

    def _put_key(self, environment: str) -> str:
        key = "afk_" + secrets.token_urlsafe(32)
        dynamodb = self.router.client("dynamodb")
        put_api_key(table_name(environment), "key_test", key, environment, dynamodb)
        return key

    def url(self, kind: str, name: str) -> str:
        """The function URL (served by the test-only router)."""
        self.up()
        function = function_name(DeploymentKey(ENV, kind, name))
        return f"{self.router.url}/lambda-url/{function}/"

    def trace(self, trace_or_request_id: str) -> list[dict[str, Any]]:
        return lineage.trace(table_name(ENV), trace_or_request_id, self.router.client("dynamodb"))
