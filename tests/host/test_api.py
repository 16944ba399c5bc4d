"""The control plane and gateway contracts: auth, bad input, secrets, OpenAPI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.hosts import RunningHost
from tests.support.workloads import deploy, function_artifact, setup_environment


def _expiry() -> int:
    """An `exp` claim an hour ahead: the host refuses JWTs without one."""
    return int(time.time()) + 3600


WHOAMI = """
from agentform_runtime.workload.context import current

def main() -> dict:
    return {"identity": current().identity}
"""


def test_run_requires_a_key_of_the_same_environment(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    dev_key = setup_environment(admin, "development")
    prod_key = setup_environment(admin, "production")
    deploy(admin, function_artifact(tmp_path, "who", WHOAMI), "who").raise_for_status()
    url = "/run/development/functions/who"

    assert httpx.post(host.url + url, json={}).status_code == 401
    other = host.client(prod_key).post(url, json={})
    assert other.status_code == 403 and "production" in other.json()["error"]["message"]
    assert host.client("afk_made-up").post(url, json={}).status_code == 401
    assert host.client(dev_key).post(url, json={}).status_code == 200

    [listed] = admin.get("/v1/environments/development/api-keys").json()
    assert "key" not in listed and listed["revoked"] is None
    assert admin.delete(f"/v1/environments/development/api-keys/{listed['id']}").status_code == 204
    revoked = host.client(dev_key).post(url, json={})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


def test_jwt_sub_is_the_end_user(tmp_path: Path) -> None:
    host = RunningHost(
        tmp_path / "state", ("--jwt-secret", "test-secret-of-32-bytes-or-more!!")
    ).start()
    try:
        admin = host.admin()
        setup_environment(admin)
        deploy(admin, function_artifact(tmp_path, "who", WHOAMI), "who").raise_for_status()
        url = "/run/development/functions/who"
        token = jwt.encode(
            {"exp": _expiry(), "sub": "alice@example.com"},
            "test-secret-of-32-bytes-or-more!!",
            algorithm="HS256",
        )
        response = host.client(token).post(url, json={})
        assert response.status_code == 200 and response.json() == {"identity": "alice@example.com"}
        record = admin.get(f"/v1/executions/{response.headers['x-agentform-request-id']}").json()
        assert record["identity"] == "alice@example.com"

        forged = jwt.encode(
            {"exp": _expiry(), "sub": "mallory"},
            "another-secret-of-32-bytes-or-more",
            algorithm="HS256",
        )
        assert host.client(forged).post(url, json={}).status_code == 401
        scoped = jwt.encode(
            {"exp": _expiry(), "sub": "bob", "environments": ["production"]},
            "test-secret-of-32-bytes-or-more!!",
            algorithm="HS256",
        )
        assert host.client(scoped).post(url, json={}).status_code == 403
        for claim in ("development-archive", 5):  # a string is not a list (nor a substring match)
            odd = jwt.encode(
                {"exp": _expiry(), "sub": "eve", "environments": claim},
                "test-secret-of-32-bytes-or-more!!",
                algorithm="HS256",
            )
            refused = host.client(odd).post(url, json={})
            assert refused.status_code == 401, refused.text
            assert "must be a list" in refused.json()["error"]["message"]
    finally:
        host.stop()


def test_bad_requests_get_specific_4xx_json(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "who", WHOAMI), "who").raise_for_status()
    run = host.client(key)

    malformed = run.post(
        "/run/development/functions/who",
        content=b'{"a": ',
        headers={"content-type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "MalformedJson"
    too_big = run.post(
        "/run/development/functions/who", content=b"[" + b"1," * (3 * 1024 * 1024) + b"1]"
    )
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "PayloadTooLarge"
    assert run.post("/run/nowhere/functions/who", json={}).status_code == 403  # not this key's env
    unknown = run.post("/run/development/functions/nobody", json={})
    assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]["message"]
    assert run.post("/run/development/widgets/who", json={}).status_code == 404

    digest = admin.post("/v1/artifacts", content=function_artifact(tmp_path, "who", WHOAMI)).json()[
        "digest"
    ]
    path = "/v1/environments/development/deployments/functions/who"
    for settings, field in (
        ({"memory_mb": 64}, "memory_mb"),
        ({"memory_mb": 20000}, "memory_mb"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": 901}, "timeout_s"),
        ({"scaling": {"min_instances": 3, "max_instances": 1}}, "scaling"),
        ({"policies": ["Not_A_Name"]}, "policies.0"),
    ):
        response = admin.put(path, json={"artifact": digest, **settings})
        assert response.status_code == 400, (settings, response.text)
        assert field in response.json()["error"]["fields"], response.json()
        assert response.json()["error"]["message"].startswith(field)
    bad_name = admin.put(
        "/v1/environments/development/deployments/functions/Bad_Name", json={"artifact": digest}
    )
    assert bad_name.status_code == 400 and "name" in bad_name.json()["error"]["fields"]
    missing_artifact = admin.put(path, json={"artifact": "sha256:" + "0" * 64})
    assert (
        missing_artifact.status_code == 400
        and "has not been uploaded" in missing_artifact.json()["error"]["message"]
    )
    not_a_zip = admin.post("/v1/artifacts", content=b"plain text")
    assert not_a_zip.status_code == 400 and not_a_zip.json()["error"]["code"] == "InvalidArtifact"
    assert (
        admin.put(
            "/v1/environments/nowhere/deployments/functions/who", json={"artifact": digest}
        ).status_code
        == 404
    )
    wrong_kind = admin.put(
        "/v1/environments/development/deployments/agents/who", json={"artifact": digest}
    )
    assert (
        wrong_kind.status_code == 400
        and "describes functions/who" in wrong_kind.json()["error"]["message"]
    )


def test_policy_conflicts_are_refused(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    admin.put("/v1/policies/us", json={"type": "location", "values": ["us"]}).raise_for_status()
    admin.put("/v1/policies/eu", json={"type": "location", "values": ["europe"]}).raise_for_status()
    admin.put("/v1/environments/development", json={"policies": ["us"]}).raise_for_status()
    digest = admin.post("/v1/artifacts", content=function_artifact(tmp_path, "who", WHOAMI)).json()[
        "digest"
    ]
    response = admin.put(
        "/v1/environments/development/deployments/functions/who",
        json={"artifact": digest, "policies": ["eu"]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "PolicyConflict"
    bad_policy = admin.put("/v1/policies/odd", json={"type": "location", "values": ["atlantis"]})
    assert bad_policy.status_code == 400 and "atlantis" in bad_policy.json()["error"]["message"]
    in_use = admin.delete("/v1/policies/us")
    assert in_use.status_code == 409


def test_connection_secrets_are_write_only_and_encrypted_at_rest(host: RunningHost) -> None:
    admin = host.admin()
    secret = "sk-live-0123456789abcdef"
    created = admin.put(
        "/v1/connections/openai", json={"provider": "openai", "secrets": {"api_key": secret}}
    )
    assert created.status_code == 201
    assert secret not in created.text
    fetched = admin.get("/v1/connections/openai")
    assert fetched.json() == {
        "name": "openai",
        "provider": "openai",
        "config": {},
        "secret_keys": ["api_key"],
    }
    for path in host.state_dir.rglob("*"):
        if path.is_file() and path.name != "host.log":
            assert secret.encode() not in path.read_bytes(), path


def test_openapi_document_describes_the_api(host: RunningHost) -> None:
    document = httpx.get(f"{host.url}/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/v1/artifacts",
        "/v1/environments/{env}",
        "/v1/policies/{name}",
        "/v1/connections/{name}",
        "/v1/environments/{env}/api-keys",
        "/v1/environments/{env}/deployments/{kind}/{name}",
        "/v1/environments/{env}/deployments/{kind}/{name}/rollback",
        "/v1/environments/{env}/deployments/{kind}/{name}/release",
        "/v1/traces/{trace_id}",
        "/run/{env}/{kind}/{name}",
    ):
        assert path in paths, path
    assert "DeploymentSpec" in document["components"]["schemas"]


@pytest.mark.parametrize("route", ["/nope", "/v1/nope"])
def test_unknown_routes_are_json_404(host: RunningHost, route: str) -> None:
    response = host.admin().get(route)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


def test_jwts_signed_with_a_key_from_the_jwks_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    host = RunningHost(tmp_path / "state", ("--jwks-file", str(jwks))).start()
    try:
        admin = host.admin()
        setup_environment(admin)
        deploy(admin, function_artifact(tmp_path, "who", WHOAMI), "who").raise_for_status()
        token = jwt.encode(
            {"exp": _expiry(), "sub": "carol"},
            private_key,
            algorithm="RS256",
            headers={"kid": "k1"},
        )
        response = host.client(token).post("/run/development/functions/who", json={})
        assert response.status_code == 200 and response.json() == {"identity": "carol"}
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(
            {"exp": _expiry(), "sub": "mallory"},
            other_key,
            algorithm="RS256",
            headers={"kid": "k1"},
        )
        assert (
            host.client(forged).post("/run/development/functions/who", json={}).status_code == 401
        )
    finally:
        host.stop()


HUGE = """
def main() -> str:
    return "x" * (7 * 1024 * 1024)
"""


def test_responses_over_six_megabytes_are_refused(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    deploy(admin, function_artifact(tmp_path, "huge", HUGE), "huge").raise_for_status()
    response = host.client(key).post("/run/development/functions/huge", json={})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "ResponseTooLarge"


def test_rule_changes_apply_to_live_deployments(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    admin.put(
        "/v1/policies/region", json={"type": "location", "values": ["europe"]}
    ).raise_for_status()
    admin.put("/v1/policies/france", json={"type": "location", "values": ["fr"]}).raise_for_status()
    admin.put("/v1/environments/development", json={"policies": ["region"]}).raise_for_status()
    artifact = function_artifact(tmp_path, "who", WHOAMI)
    deploy(admin, artifact, "who", policies=["france"]).raise_for_status()
    path = "/v1/environments/development/deployments/functions/who"

    # A compatible change reaches the live deployment at once.
    admin.put(
        "/v1/policies/region", json={"type": "location", "values": ["fr", "de"]}
    ).raise_for_status()
    budget = {"type": "max_tokens", "budgets": [{"window": "day", "total": 9}]}
    admin.put("/v1/policies/budget", json=budget).raise_for_status()
    admin.put(
        "/v1/environments/development", json={"policies": ["region", "budget"]}
    ).raise_for_status()
    effective = admin.get(path).json()["effective_policies"]
    assert effective["locations"] == ["fr"]
    assert effective["token_budgets"] == [
        {"window": "day", "input": None, "output": None, "total": 9}
    ]

    # A change that leaves nothing allowed stops the deployment until its own update fixes it
    # (as in one `pulumi up` that moves an environment and its deployments together).
    admin.put("/v1/policies/region", json={"type": "location", "values": ["us"]}).raise_for_status()
    assert admin.get(path).json()["status"] == "conflict"
    refused = host.client(key).post("/run/development/functions/who", json={})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "PolicyConflict"
    admin.put("/v1/policies/usa", json={"type": "location", "values": ["us"]}).raise_for_status()
    deploy(admin, artifact, "who", policies=["usa"]).raise_for_status()
    assert admin.get(path).json()["status"] == "live"
    assert host.client(key).post("/run/development/functions/who", json={}).status_code == 200

    # After a restart a stranded deployment reports its conflict (not a silent 404).
    admin.put(
        "/v1/policies/region", json={"type": "location", "values": ["europe"]}
    ).raise_for_status()
    host.stop()
    host.start()
    assert host.admin().get(path).json()["status"] == "conflict"
    assert host.client(key).post("/run/development/functions/who", json={}).status_code == 409
