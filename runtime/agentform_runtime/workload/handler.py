"""The one Lambda handler of every Agentform artifact: `agentform_runtime.workload.handler.handle`.

It reads `agentform.json` at import time, so a broken artifact fails at init (and a blue-green
update never routes to it), then serves function-URL events for the workload's kind.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import Any

from agentform_runtime.specs import HEALTH_PATH, MANIFEST_FILE, Manifest, WorkloadKind
from agentform_runtime.workload import responses
from agentform_runtime.workload.context import Context, serving
from agentform_runtime.workload.functions import BadArguments, Function, load_entrypoint


def _load_manifest() -> Manifest:
    root = Path(os.environ.get("LAMBDA_TASK_ROOT", Path.cwd()))
    return Manifest.model_validate_json((root / MANIFEST_FILE).read_bytes())


MANIFEST = _load_manifest()


def _load_function() -> Function | None:
    if MANIFEST.kind is not WorkloadKind.FUNCTIONS:
        return None
    if not MANIFEST.entrypoint:
        raise ValueError(f"{MANIFEST_FILE}: a function needs an entrypoint (module:function)")
    schema = MANIFEST.spec.get("parameters")
    return Function(
        load_entrypoint(MANIFEST.entrypoint), schema if isinstance(schema, dict) else None
    )


FUNCTION = _load_function()


def _body(event: dict[str, Any]) -> Any:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        import base64

        raw = base64.b64decode(raw).decode()
    return json.loads(raw) if raw else {}


def _serve_function(event: dict[str, Any], context: Context) -> dict[str, Any]:
    assert FUNCTION is not None
    path = event.get("rawPath", "/")
    if path in ("/schema", "/schema/"):
        return responses.ok(
            {
                "name": MANIFEST.name,
                "description": FUNCTION.description,
                "parameters": FUNCTION.schema,
            }
        )
    try:
        result = FUNCTION.call(_body(event), context)
    except BadArguments as exc:
        return responses.error(400, "BadArguments", str(exc))
    except Exception as exc:  # the user's code failed: a structured error, traceback logged
        traceback.print_exc()
        return responses.error(500, "FunctionRaised", str(exc), type=type(exc).__name__)
    return responses.ok(result)


def handle(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    """Serve one function-URL (payload 2.0) event."""
    if event.get("rawPath") == HEALTH_PATH:
        return responses.ok({"status": "ok", "kind": MANIFEST.kind.value, "name": MANIFEST.name})
    with serving(Context.from_event(event)) as context:
        if MANIFEST.kind is WorkloadKind.FUNCTIONS:
            return _serve_function(event, context)
        return responses.error(
            501, "NotImplemented", f"{MANIFEST.kind.value} workloads are not served yet"
        )
