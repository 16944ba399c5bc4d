"""What an end-user JWT must carry, for the local host and for workloads on Lambda alike:
one rule, so that both platforms accept and refuse the same tokens."""

from __future__ import annotations

from typing import Any

from jwt.types import Options

from agentform_runtime.errors import AgentformError

# A token without `exp` would never expire: refused, as one without a subject.
JWT_OPTIONS: Options = {"require": ["sub", "exp"]}


def subject_granted(claims: dict[str, Any], environment: str) -> str:
    """The end user (`sub`) of verified `claims`, when they grant `environment`: a JWT may
    restrict itself with an `environments` claim (a list of names)."""
    allowed = claims.get("environments")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(e, str) for e in allowed):
            raise AgentformError(
                401, "Unauthorized", "the JWT's environments claim must be a list of names"
            )
        if environment not in allowed:
            raise AgentformError(
                403, "Forbidden", f"the JWT does not grant environment '{environment}'"
            )
    return str(claims["sub"])
