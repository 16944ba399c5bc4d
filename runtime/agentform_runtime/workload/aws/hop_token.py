"""Hop tokens on Lambda: what one workload hands the next so that the callee knows its caller,
the end user, the trace and its parent request, as the local host's hop registry knows them.

A token is an HS256 JWT signed with the environment's hop key (a Secrets Manager secret),
addressed (`aud`) to one target and valid until the caller's own deadline. An end user at a
function URL cannot make one; a callee rejects one addressed to another workload."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import jwt

from agentform_runtime.aws_contract import HOP_KEY_SECRET_VAR
from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import DeploymentKey
from agentform_runtime.workload.aws import clients

ISSUER = "agentform-hop"
_MAX_LIFETIME_S = 900  # Lambda's longest timeout


@dataclass(frozen=True)
class HopClaims:
    """The invocation a hop comes from."""

    caller: DeploymentKey
    parent_id: str  # the caller's request id
    trace_id: str
    identity: str
    chain: tuple[DeploymentKey, ...]  # the caller and every ancestor, nearest first


def _audience(key: DeploymentKey) -> str:
    return f"{key.environment}/{key.kind}/{key.name}"


def _key() -> str:
    arn = os.environ.get(HOP_KEY_SECRET_VAR, "")
    if not arn:
        raise AgentformError(
            500, "Misconfigured", f"{HOP_KEY_SECRET_VAR} is not set: hops cannot be signed"
        )
    return clients.secret(arn)


def sign(claims: HopClaims, target: DeploymentKey, expires: float) -> str:
    now = time.time()
    payload = {
        "iss": ISSUER,
        "aud": _audience(target),
        "sub": claims.identity,
        "caller": list(claims.caller),
        "parent": claims.parent_id,
        "trace": claims.trace_id,
        "chain": [list(key) for key in claims.chain],
        "iat": int(now),
        # Valid while the caller may still wait for the answer, never beyond Lambda's limit.
        "exp": int(min(expires, now + _MAX_LIFETIME_S) if expires > now else now + 1) + 1,
    }
    return jwt.encode(payload, _key(), algorithm="HS256")


def verify(token: str, me: DeploymentKey) -> HopClaims:
    """The claims of a hop addressed to `me`; 401 for anything else."""
    try:
        payload = jwt.decode(
            token,
            _key(),
            algorithms=["HS256"],
            audience=_audience(me),
            issuer=ISSUER,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
        chain = tuple(DeploymentKey(*key) for key in payload["chain"])
        return HopClaims(
            caller=DeploymentKey(*payload["caller"]),
            parent_id=str(payload["parent"]),
            trace_id=str(payload["trace"]),
            identity=str(payload["sub"]),
            chain=chain,
        )
    except (jwt.InvalidTokenError, KeyError, TypeError) as exc:
        raise AgentformError(
            401, "Unauthorized", f"the hop token is not valid for {me}: {exc}"
        ) from None
