"""What only exists on Lambda: end-user JWTs checked against a JWKS URL, and hop tokens that
are valid only for the target they were signed for."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from agentform.scripted_model import ScriptedModelServer
from agentform_runtime.aws_contract import (
    AUTH_VAR,
    LIVE_ALIAS,
    connection_secret_name,
    function_name,
    hop_key_secret_name,
    jwt_secret_name,
)
from agentform_runtime.specs import DeploymentKey
from agentform_runtime.workload.aws import clients
from agentform_runtime.workload.aws.hop_token import HopClaims, sign
from tests.aws_runtime.platforms import JWT_SECRET, AwsPlatform, jwt_for
from tests.aws_runtime.router import LambdaRouter

WHOAMI = """
def run(inputs, ctx):
    return {"identity": ctx.identity}
"""


@pytest.fixture
def jwks() -> Iterator[tuple[str, Any]]:
    """A JWKS URL on loopback serving one RSA public key; yields (url, private key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    document = json.dumps({"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = document.encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", key
    finally:
        server.shutdown()
        server.server_close()


def test_end_user_jwts_from_a_jwks_url(
    router: LambdaRouter,
    pulumi_bin: Path,
    tmp_path: Path,
    model_server: ScriptedModelServer,
    jwks: tuple[str, Any],
) -> None:
    url, key = jwks
    # `agentform:jwksUrl` alone: no HS256 secret.
    aws_platform = AwsPlatform(router, tmp_path / "aws", pulumi_bin, jwt_secret=None, jwks_url=url)
    aws_platform.model(model_server)
    aws_platform.agent("whoami", code=WHOAMI)

    def token(signing_key: Any, kid: str = "k1", **claims: Any) -> str:
        payload = {"sub": "dana", "exp": int(time.time()) + 600, **claims}
        return jwt.encode(payload, signing_key, "RS256", headers={"kid": kid})

    good = aws_platform.ask("whoami", token(key), {})
    assert good.status_code == 200, good.text
    assert good.json()["output"] == json.dumps({"identity": "dana"})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert aws_platform.ask("whoami", token(other), {}).status_code == 401
    unknown_kid = aws_platform.ask("whoami", token(key, kid="k9"), {})
    assert unknown_kid.status_code == 401 and unknown_kid.json()["error"]["code"] == "Unauthorized"
    elsewhere = aws_platform.ask("whoami", token(key, environments=["production"]), {})
    assert elsewhere.status_code == 403 and elsewhere.json()["error"]["code"] == "Forbidden"


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    """This process's boto3 clients and secrets, made anew for this test's router."""
    clients.client.cache_clear()
    clients.forget_secrets()
    try:
        yield
    finally:
        clients.client.cache_clear()
        clients.forget_secrets()


@pytest.mark.usefixtures("fresh_clients")
def test_a_hop_token_is_valid_only_for_its_target(
    aws_platform: AwsPlatform, model_server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_platform.model(model_server)
    aws_platform.agent("whoami", code=WHOAMI)
    # Sign as the environment's functions do, with the real hop key, for another target.
    aws_platform.up()
    hop_key = aws_platform.router.client("secretsmanager").describe_secret(
        SecretId=hop_key_secret_name("development")
    )["ARN"]
    monkeypatch.setenv("AGENTFORM_HOP_KEY_SECRET", hop_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_platform.router.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    caller = DeploymentKey("development", "agents", "triage")
    claims = HopClaims(caller, "0" * 32, "1" * 32, "erin", (caller,))

    def hop(target: DeploymentKey) -> httpx.Response:
        token = sign(claims, target, time.time() + 60)
        return aws_platform.post(
            "agents", "whoami", "", {"inputs": {}}, {"x-agentform-hop-token": token}
        )

    misaddressed = hop(DeploymentKey("development", "agents", "billing"))
    assert misaddressed.status_code == 401, misaddressed.text
    assert "hop token is not valid" in misaddressed.json()["error"]["message"]
    addressed = hop(DeploymentKey("development", "agents", "whoami"))
    assert addressed.status_code == 200, addressed.text
    assert addressed.json()["output"] == json.dumps({"identity": "erin"})
    assert addressed.headers["x-agentform-trace-id"] == "1" * 32


def _live_variables(platform: AwsPlatform, function: str) -> dict[str, str]:
    lam = platform.router.client("lambda")
    version = lam.get_alias(FunctionName=function, Name=LIVE_ALIAS)["FunctionVersion"]
    configuration = lam.get_function_configuration(FunctionName=function, Qualifier=version)
    return dict(configuration["Environment"]["Variables"])


def _readable_secrets(platform: AwsPlatform, function: str) -> list[str]:
    document = platform.router.client("iam").get_role_policy(
        RoleName=function, PolicyName="agentform"
    )["PolicyDocument"]
    document = document if isinstance(document, dict) else json.loads(document)
    statement = next(s for s in document["Statement"] if s.get("Sid") == "Secrets")
    return list(statement["Resource"])


def test_jwt_settings_come_from_the_stack_configuration(
    aws_platform: AwsPlatform, model_server: ScriptedModelServer
) -> None:
    aws_platform.model(model_server)
    aws_platform.function("echo", "def main() -> dict:\n    return {}\n")
    aws_platform.agent("whoami", code=WHOAMI)
    answer = aws_platform.ask("whoami", jwt_for("alice"), {})
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == json.dumps({"identity": "alice"})

    # The key is in Secrets Manager, readable by the deployments' roles (a connection's secret
    # by its model's only), and nowhere in the stack's state.
    secrets = aws_platform.router.client("secretsmanager")
    stored = secrets.get_secret_value(SecretId=jwt_secret_name("development"))
    assert stored["SecretString"] == JWT_SECRET
    agent = function_name(DeploymentKey("development", "agents", "whoami"))
    tool = function_name(DeploymentKey("development", "functions", "echo"))
    auth = json.loads(_live_variables(aws_platform, agent)[AUTH_VAR])
    assert auth["jwt_secret_arn"] == stored["ARN"]
    assert json.loads(_live_variables(aws_platform, tool)[AUTH_VAR]) == auth
    assert stored["ARN"] in _readable_secrets(aws_platform, agent)
    assert stored["ARN"] in _readable_secrets(aws_platform, tool)
    connection = secrets.describe_secret(SecretId=connection_secret_name("chat-key"))["ARN"]
    assert connection not in _readable_secrets(aws_platform, agent)
    # A function's URL takes the same JWTs as an agent's (as every /run path locally).
    direct = aws_platform.post("functions", "echo", jwt_for("carol"), {})
    assert direct.status_code == 200, direct.text
    assert JWT_SECRET not in json.dumps(aws_platform.project.export())

    # A new key in the configuration reaches the agent at the next `up`; the old one stops.
    rotated = "a-rotated-jwt-secret-of-32-bytes-or-more"
    aws_platform.project.config("agentform:jwtSecret", rotated, secret=True)
    aws_platform.project.up()
    assert aws_platform.ask("whoami", jwt_for("bob", secret=rotated), {}).status_code == 200
    assert aws_platform.ask("whoami", jwt_for("alice"), {}).status_code == 401
