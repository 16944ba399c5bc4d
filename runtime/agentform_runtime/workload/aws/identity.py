"""End users on Lambda, verified in the handler with the local host's rules and answers.

`Authorization: Bearer <token>` holds an environment API key (`afk_...`, found by its
SHA-256 in the environment's DynamoDB table, else in the account's API-key index: 403 when it
belongs to another environment) or a JWT whose `sub` names the end user, checked
with the HS256 secret or the JWKS URL of `AGENTFORM_AUTH`. A JWT may restrict itself to
environments with an `environments` claim (403 elsewhere)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from typing import Any

import jwt
from botocore.exceptions import ClientError

from agentform_runtime.aws_contract import API_KEY_INDEX_TABLE, AUTH_VAR
from agentform_runtime.end_users import JWT_OPTIONS, subject_granted
from agentform_runtime.errors import AgentformError
from agentform_runtime.workload.aws import clients

API_KEY_PREFIX = "afk_"
API_KEY_LISTING = "apikeys"  # pk of the items that list an environment's keys by id
_JWKS_CACHE_S = 300
_NO_INDEX = ("ResourceNotFoundException", "AccessDeniedException")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_key(key_hash: str) -> dict[str, Any]:
    """The DynamoDB key of an API key's item, in its environment's table and in the index."""
    return {"pk": {"S": f"apikey#{key_hash}"}, "sk": {"S": "apikey"}}


def api_key_item(key_id: str, key_hash: str, environment: str) -> dict[str, Any]:
    """The table item of an API key (the deployer or CLI writes it; only the hash is kept)."""
    return {
        **api_key_key(key_hash),
        "key_id": {"S": key_id},
        "environment": {"S": environment},
    }


def api_key_listing_key(key_id: str) -> dict[str, Any]:
    """The DynamoDB key of the item that lists an API key by id."""
    return {"pk": {"S": API_KEY_LISTING}, "sk": {"S": key_id}}


def api_key_listing_item(key_id: str, key_hash: str, created: float) -> dict[str, Any]:
    """The item that lists a key by id in its environment's table (`revoked` is added when it
    is revoked): keys are listed and revoked by id without reading execution records."""
    return {
        **api_key_listing_key(key_id),
        "key_hash": {"S": key_hash},
        "created": {"N": repr(created)},
    }


def put_api_key(
    table: str, key_id: str, key: str, environment: str, dynamodb: Any | None = None
) -> None:
    """Store the key's hash in the environment's table and in the account's API-key index, and
    list it by id in the environment's table."""
    dynamodb = dynamodb or clients.client("dynamodb")
    key_hash = hash_key(key)
    item = api_key_item(key_id, key_hash, environment)
    for name in (table, API_KEY_INDEX_TABLE):
        dynamodb.put_item(TableName=name, Item=item)
    dynamodb.put_item(TableName=table, Item=api_key_listing_item(key_id, key_hash, time.time()))


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _auth_settings() -> dict[str, str]:
    raw = os.environ.get(AUTH_VAR, "")
    settings = json.loads(raw) if raw else {}
    return {k: str(v) for k, v in settings.items() if v}


@functools.cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=_JWKS_CACHE_S)


def _verify_jwt(token: str, settings: dict[str, str]) -> dict[str, Any]:
    options = JWT_OPTIONS
    secret_arn, jwks_url = settings.get("jwt_secret_arn"), settings.get("jwks_url")
    if secret_arn:
        try:
            return dict(
                jwt.decode(token, clients.secret(secret_arn), algorithms=["HS256"], options=options)
            )
        except jwt.InvalidTokenError:
            if not jwks_url:
                raise
    if not jwks_url:
        raise jwt.InvalidTokenError("JWTs are not configured")
    try:
        signing_key = _jwks_client(jwks_url).get_signing_key_from_jwt(token)
    except jwt.PyJWKClientError as exc:
        raise jwt.InvalidTokenError(str(exc)) from None
    algorithm = signing_key.algorithm_name
    return dict(jwt.decode(token, signing_key.key, algorithms=[algorithm], options=options))


def _key_item(table: str, token: str) -> dict[str, Any] | None:
    key = api_key_key(hash_key(token))
    item = clients.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)
    return item.get("Item")  # type: ignore[no-any-return]


def _indexed_item(token: str) -> dict[str, Any] | None:
    """The key's item in the account's API-key index, if any."""
    try:
        return _key_item(API_KEY_INDEX_TABLE, token)
    except ClientError as exc:
        # No index (a stack deployed before it) or no grant on it: the key is unknown here.
        if exc.response.get("Error", {}).get("Code") in _NO_INDEX:
            return None
        raise


def _api_key(token: str, table: str, environment: str) -> str:
    item = _key_item(table, token)
    if item is None:
        # Not this environment's: another environment's key is a 403, as on the local host.
        indexed = _indexed_item(token)
        if indexed is not None and indexed["environment"]["S"] != environment:
            item = indexed
    if item is None:
        raise AgentformError(401, "Unauthorized", "the API key is not valid or was revoked")
    key_environment = item["environment"]["S"]
    if key_environment != environment:
        raise AgentformError(
            403,
            "Forbidden",
            f"this API key belongs to environment '{key_environment}', not '{environment}'",
        )
    return f"api-key:{item['key_id']['S']}"


def end_user(headers: dict[str, str], environment: str) -> str:
    """The end user (`sub`) a function-URL request acts for; AgentformError 401/403 otherwise."""
    token = _bearer(headers)
    if token is None:
        raise AgentformError(
            401,
            "Unauthorized",
            "send an environment API key or a JWT as 'Authorization: Bearer <token>'",
        )
    if token.startswith(API_KEY_PREFIX):
        return _api_key(token, clients.table(), environment)
    settings = _auth_settings()
    if not settings:
        raise AgentformError(
            401, "Unauthorized", "the token is not an API key and JWTs are not configured"
        )
    try:
        claims = _verify_jwt(token, settings)
    except jwt.InvalidTokenError as exc:
        raise AgentformError(401, "Unauthorized", f"the JWT is not valid: {exc}") from None
    return subject_granted(claims, environment)
