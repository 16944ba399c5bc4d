"""Who is calling: the admin (control plane), or an end user of one environment (run gateway).

Run requests carry `Authorization: Bearer <token>`, where the token is an environment API key
(`afk_...`, stored only as a hash) or a JWT whose `sub` names the end user (HS256 secret or a
JWKS file given to `agentform serve`). A JWT may restrict itself to environments with an
`environments` claim.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from agentform_runtime.end_users import JWT_OPTIONS, subject_granted
from agentform_runtime.errors import AgentformError
from agentform_runtime.host.state.store import Store

API_KEY_PREFIX = "afk_"


@dataclass(frozen=True)
class Identity:
    """The end user a request acts for."""

    sub: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """Return (id, key): the key is shown once and stored only as a hash."""
    return "key_" + secrets.token_hex(6), API_KEY_PREFIX + secrets.token_urlsafe(32)


def bearer(headers: Any) -> str | None:
    value: str = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class JwtVerifier:
    """Verifies end-user JWTs with an HS256 secret or the keys of a JWKS file."""

    def __init__(self, hs256_secret: str | None = None, jwks_file: Path | None = None) -> None:
        self._secret = hs256_secret
        self._jwks = (
            jwt.PyJWKSet.from_dict(json.loads(jwks_file.read_text())) if jwks_file else None
        )

    @property
    def enabled(self) -> bool:
        return self._secret is not None or self._jwks is not None

    def verify(self, token: str) -> dict[str, Any]:
        # A token without `exp` would never expire: it is refused, not trusted forever.
        options = JWT_OPTIONS
        if self._secret is not None:
            try:
                return dict(jwt.decode(token, self._secret, algorithms=["HS256"], options=options))
            except jwt.InvalidTokenError:
                if self._jwks is None:
                    raise
        if self._jwks is None:
            raise jwt.InvalidTokenError("JWTs are not configured")
        kid = jwt.get_unverified_header(token).get("kid")
        keys = [k for k in self._jwks.keys if kid is None or k.key_id == kid]
        if not keys:
            raise jwt.InvalidTokenError(f"no key with kid {kid!r} in the JWKS")
        return dict(
            jwt.decode(
                token,
                keys[0].key,
                algorithms=[keys[0].algorithm_name],
                options=options,
            )
        )


class Authenticator:
    def __init__(self, store: Store, admin_token: str, jwt_verifier: JwtVerifier) -> None:
        self.store = store
        self.admin_token = admin_token
        self.jwt = jwt_verifier

    def admin(self, headers: Any) -> None:
        token = bearer(headers)
        if token is None:
            raise AgentformError(
                401, "Unauthorized", "send the admin token as 'Authorization: Bearer <token>'"
            )
        # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
        if not hmac.compare_digest(token.encode(), self.admin_token.encode()):
            raise AgentformError(401, "Unauthorized", "the admin token is not valid")

    def end_user(self, headers: Any, environment: str) -> Identity:
        token = bearer(headers)
        if token is None:
            raise AgentformError(
                401,
                "Unauthorized",
                "send an environment API key or a JWT as 'Authorization: Bearer <token>'",
            )
        if token.startswith(API_KEY_PREFIX):
            found = self.store.find_api_key(hash_key(token))
            if found is None:
                raise AgentformError(401, "Unauthorized", "the API key is not valid or was revoked")
            key_id, key_environment = found
            if key_environment != environment:
                raise AgentformError(
                    403,
                    "Forbidden",
                    f"this API key belongs to environment '{key_environment}', not '{environment}'",
                )
            return Identity(sub=f"api-key:{key_id}")
        if not self.jwt.enabled:
            raise AgentformError(
                401, "Unauthorized", "the token is not an API key and JWTs are not configured"
            )
        try:
            claims = self.jwt.verify(token)
        except jwt.InvalidTokenError as exc:
            raise AgentformError(401, "Unauthorized", f"the JWT is not valid: {exc}") from None
        return Identity(sub=subject_granted(claims, environment))
