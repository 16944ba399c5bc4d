"""The hop client on Lambda: an agent's calls to its model, functions and chained agents are
`lambda:Invoke` on the targets' `live` aliases, carrying a signed hop token (end user, trace,
parent request, chain) in a function-URL-shaped event.

What the version may call is in `AGENTFORM_TARGETS`; the function's IAM role allows exactly
those. A call to anything else is still attempted (on the name the deployer would give it), so
that the refusal comes from IAM, not from the workload's own code: it surfaces as the local
host's `NotDeclared` 403 and is recorded as refused."""

from __future__ import annotations

import base64
import json
import os
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from agentform_runtime.aws_contract import LIVE_ALIAS, TARGETS_VAR, function_name
from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import DeploymentKey, Execution
from agentform_runtime.workload.aws import clients, hop_token, lineage
from agentform_runtime.workload.context import Context
from agentform_runtime.workload.host_client import HostClient

_THROTTLED = {"TooManyRequestsException", "ThrottlingException"}


def targets() -> dict[str, str]:
    raw = os.environ.get(TARGETS_VAR, "")
    value = json.loads(raw) if raw else {}
    return {str(k): str(v) for k, v in value.items()}


def _alias_arn(own_arn: str, target: DeploymentKey, region: str | None = None) -> str:
    """`arn:<partition>:lambda:<region>:<account>:function:<target's name>:live`: our own
    partition and account, in `region` (default: ours)."""
    parts = own_arn.split(":")
    return ":".join(
        [*parts[:3], region or parts[3], *parts[4:6], function_name(target), LIVE_ALIAS]
    )


def _event(path: str, body: Any, token: str, traceparent: str, request_id: str) -> bytes:
    text = json.dumps(body)
    return json.dumps(
        {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path or "/",
            "rawQueryString": "",
            "headers": {
                "content-type": "application/json",
                "x-agentform-hop-token": token,
                "traceparent": traceparent,
            },
            "requestContext": {
                "requestId": request_id,
                "http": {"method": "POST", "path": path or "/", "sourceIp": ""},
            },
            "body": text,
            "isBase64Encoded": False,
        }
    ).encode()


class LambdaHopClient(HostClient):
    """Hops of one invocation, as `lambda:Invoke` calls."""

    def __init__(
        self,
        context: Context,
        deadline: float,
        me: DeploymentKey,
        chain: tuple[DeploymentKey, ...],
        own_arn: str,
    ) -> None:
        super().__init__(context, deadline)
        self.me = me
        self.chain = chain  # me and every ancestor, nearest first
        self.own_arn = own_arn
        self.targets = targets()

    def _refuse(self, target: DeploymentKey, error: AgentformError, path: str) -> AgentformError:
        execution = Execution(
            uuid.uuid4().hex,
            self.context.trace_id,
            self.context.request_id,
            self.context.identity or "",
            path or "/",
        )
        lineage.refused(target, execution, error.status, error.code, error.message)
        return error

    def call(self, kind: str, name: str, body: Any, path: str = "") -> Any:
        """Invoke another deployment; return its JSON, raise AgentformError on failure."""
        target = DeploymentKey(self.environment, kind, name)
        caller = f"{self.me.kind}/{self.me.name}"
        if target in self.chain:
            loop = " > ".join(f"{k}/{n}" for _, k, n in reversed(self.chain))
            raise self._refuse(
                target,
                AgentformError(
                    508,
                    "LoopDetected",
                    f"{kind}/{name} is already handling this request ({loop}); "
                    "a handoff cycle was refused",
                ),
                path,
            )
        arn = _alias_arn(self.own_arn, target, self.targets.get(f"{kind}/{name}"))
        claims = hop_token.HopClaims(
            self.me,
            self.context.request_id,
            self.context.trace_id,
            self.context.identity or "",
            self.chain,
        )
        token = hop_token.sign(claims, target, self.deadline or 0.0)
        event = _event(path, body, token, self.context.traceparent, self.context.request_id)
        try:
            # Lambda answers only for functions of the client's own region.
            answer = clients.client("lambda", arn.split(":")[3]).invoke(
                FunctionName=arn, Payload=event
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            text = exc.response.get("Error", {}).get("Message", str(exc))
            if code == "AccessDeniedException":
                declared = sorted(
                    k.split("/", 1)[1] for k in self.targets if k.startswith(f"{kind}/")
                )
                raise self._refuse(
                    target,
                    AgentformError(
                        403,
                        "NotDeclared",
                        f"{caller} does not declare {kind}/{name}; it may call {kind} "
                        f"{declared} (its IAM role refused lambda:InvokeFunction)",
                    ),
                    path,
                ) from None
            if code == "ResourceNotFoundException":
                raise AgentformError(404, "NotFound", f"{target} does not exist: {text}") from None
            if code in _THROTTLED:
                raise AgentformError(429, "Throttled", f"{kind}/{name}: {text}") from None
            raise AgentformError(502, "HopFailed", f"{kind}/{name}: {code}: {text}") from None
        except BotoCoreError as exc:
            raise AgentformError(
                502, "HopFailed", f"{kind}/{name}: {type(exc).__name__}: {exc}"
            ) from None
        payload = answer["Payload"].read()
        return _answer(kind, name, payload, bool(answer.get("FunctionError")))


def _answer(kind: str, name: str, payload: bytes, function_error: bool) -> Any:
    """A function-URL response from the callee -> its JSON body, or the error it carries."""
    try:
        result = json.loads(payload) if payload else None
    except ValueError:
        result = None
    if function_error or (
        isinstance(result, dict) and "errorMessage" in result and "statusCode" not in result
    ):
        error = result if isinstance(result, dict) else {}
        raise AgentformError(
            502,
            "FunctionError",
            str(error.get("errorMessage", payload[:500].decode(errors="replace"))),
            type=str(error.get("errorType", "Unhandled")),
        )
    if not (isinstance(result, dict) and "statusCode" in result):
        return result
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    status = int(result["statusCode"])
    if status >= 400:
        raise AgentformError.from_response(status, body)
    try:
        return json.loads(body) if body else None
    except ValueError:
        raise AgentformError(
            502, "HopFailed", f"{kind}/{name} answered {body[:200]!r}, not JSON"
        ) from None
