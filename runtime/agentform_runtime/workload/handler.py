"""The one Lambda handler of every Agentform artifact: `agentform_runtime.workload.handler.handle`.

It reads `agentform.json` and loads the user's code at import time, so a broken artifact fails
at init (and a blue-green update never routes to it), then serves function-URL events
(payload format 2.0) for the workload's kind: a function, a model API or an agent.
"""

from __future__ import annotations

import base64
import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentform_runtime.aws_contract import CONNECTION_SECRET_VAR, PLATFORM_VAR
from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import HEALTH_PATH, MANIFEST_FILE, Manifest, WorkloadKind
from agentform_runtime.workload import models, responses
from agentform_runtime.workload.agent_loop import AgentResult, AgentSpec, run_agent
from agentform_runtime.workload.context import Context, serving
from agentform_runtime.workload.functions import BadArguments, Function, load_entrypoint
from agentform_runtime.workload.host_client import HostClient
from agentform_runtime.workload.sdk import AgentContext


def _load_manifest() -> Manifest:
    root = Path(os.environ.get("LAMBDA_TASK_ROOT", Path.cwd()))
    return Manifest.model_validate_json((root / MANIFEST_FILE).read_bytes())


MANIFEST = _load_manifest()
# On Lambda there is no host: the invocation authenticates, records and hops by itself.
ON_AWS = os.environ.get(PLATFORM_VAR, "local") == "aws"
if ON_AWS:
    from agentform_runtime.workload.aws import clients as aws_clients
    from agentform_runtime.workload.aws import entry as aws_entry


def _connection() -> models.Connection:
    """The model API's credentials: from the host, or from the connection's secret on AWS."""
    arn = os.environ.get(CONNECTION_SECRET_VAR, "")
    if ON_AWS and arn:
        return models.Connection(**aws_clients.secret_json(arn))
    return models.connection_from_environment()


def _entrypoint() -> Callable[..., Any]:
    if not MANIFEST.entrypoint:
        raise ValueError(
            f"{MANIFEST_FILE}: {MANIFEST.kind.value}/{MANIFEST.name} needs an entrypoint "
            "(module:function)"
        )
    return load_entrypoint(MANIFEST.entrypoint)


# Everything the kind needs is loaded now, at init.
FUNCTION: Function | None = None
GATEWAY: models.ModelGateway | None = None
AGENT_SPEC: AgentSpec | None = None
CUSTOM_AGENT: Callable[..., Any] | None = None
if MANIFEST.kind is WorkloadKind.FUNCTIONS:
    _schema = MANIFEST.spec.get("parameters")
    FUNCTION = Function(_entrypoint(), _schema if isinstance(_schema, dict) else None)
elif MANIFEST.kind is WorkloadKind.MODELS:
    GATEWAY = models.ModelGateway(models.ModelSpec.model_validate(MANIFEST.spec), _connection())
elif MANIFEST.entrypoint:
    CUSTOM_AGENT = _entrypoint()
else:
    AGENT_SPEC = AgentSpec.model_validate(MANIFEST.spec)


def _body(event: dict[str, Any]) -> Any:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw) if raw else {}


def _serve_function(path: str, body: Any, context: Context) -> dict[str, Any]:
    assert FUNCTION is not None
    if path.rstrip("/") == "/schema":
        return responses.ok(
            {
                "name": MANIFEST.name,
                "description": FUNCTION.description,
                "parameters": FUNCTION.schema,
            }
        )
    try:
        result = FUNCTION.call(body, context)
    except BadArguments as exc:
        return responses.error(400, "BadArguments", str(exc))
    except Exception as exc:  # the user's code failed: a structured error; traceback to the log
        traceback.print_exc()
        return responses.error(500, "FunctionRaised", str(exc), type=type(exc).__name__)
    return responses.ok(result)


def _agent_response(result: AgentResult, context: Context) -> dict[str, Any]:
    return responses.ok(
        {
            "output": result.output,
            "agent": result.agent,
            "handoffs": result.handoffs,
            "steps": result.steps,
            "usage": result.usage.as_dict(),
            "request_id": context.request_id,
            "trace_id": context.trace_id,
        },
        headers={"x-agentform-usage": result.usage.header()},
    )


def _serve_agent(body: Any, context: Context, host: HostClient) -> dict[str, Any]:
    model = MANIFEST.models[0] if MANIFEST.models else ""
    try:
        if CUSTOM_AGENT is not None:
            ctx = AgentContext(host, MANIFEST.models, MANIFEST.functions, MANIFEST.agents)
            inputs = body.get("inputs", body) if isinstance(body, dict) else body
            output = CUSTOM_AGENT(inputs, ctx)
            text = output if isinstance(output, str) or output is None else json.dumps(output)
            return _agent_response(AgentResult(text, MANIFEST.name, ctx.usage, 1), context)
        assert AGENT_SPEC is not None
        if not model:
            return responses.error(500, "NoModel", f"agent '{MANIFEST.name}' declares no model API")
        result = run_agent(
            host, MANIFEST.name, AGENT_SPEC, model, MANIFEST.functions, MANIFEST.agents, body
        )
        return _agent_response(result, context)
    except AgentformError as exc:
        return responses.error(exc.status, exc.code, exc.message)
    except Exception as exc:  # custom agent code failed
        traceback.print_exc()
        return responses.error(500, "AgentRaised", str(exc), type=type(exc).__name__)


def _respond(path: str) -> Callable[[Any, Context, HostClient], dict[str, Any]]:
    def respond(body: Any, context: Context, host: HostClient) -> dict[str, Any]:
        if MANIFEST.kind is WorkloadKind.FUNCTIONS:
            return _serve_function(path, body, context)
        if MANIFEST.kind is WorkloadKind.MODELS:
            assert GATEWAY is not None
            return models.serve(GATEWAY, path, body)
        return _serve_agent(body, context, host)

    return respond


def handle(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    """Serve one function-URL (payload 2.0) event."""
    path = event.get("rawPath", "/")
    if path == HEALTH_PATH:
        return responses.ok({"status": "ok", "kind": MANIFEST.kind.value, "name": MANIFEST.name})
    remaining_ms = (
        lambda_context.get_remaining_time_in_millis() if lambda_context is not None else 900_000
    )
    deadline = time.time() + remaining_ms / 1000
    if ON_AWS:
        return aws_entry.serve(event, lambda_context, deadline, _body, _respond(path))
    try:
        body = _body(event)
    except ValueError as exc:
        return responses.error(400, "MalformedJson", f"the request body is not valid JSON: {exc}")
    with serving(Context.from_event(event)) as context:
        return _respond(path)(body, context, HostClient(context, deadline))
