"""The declarative agent loop.

instructions + inputs -> ask the agent's model API, offering its functions as tools and one
`transfer_to_<agent>` tool per chained agent -> run the tool calls of that turn concurrently,
through the host -> feed the results back -> until the model answers, hands the request over,
or `max_steps` is reached. A failing tool is reported to the model as the tool's result."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import AgentSpec as AgentSpec  # re-exported for the handler
from agentform_runtime.workload.host_client import HostClient, Usage, usage_of

TRANSFER_PREFIX = "transfer_to_"
_SCHEMA_TTL_S = 30.0
_schemas: dict[str, tuple[float, dict[str, Any]]] = {}


@dataclass
class AgentResult:
    output: str | None
    agent: str
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    handoffs: list[str] = field(default_factory=list)


def conversation_from(body: Any) -> list[dict[str, Any]]:
    """The caller's conversation: `{"inputs": ...}` or `{"messages": [...]}`."""
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        return list(body["messages"])
    if isinstance(body, dict) and "inputs" in body:
        inputs = body["inputs"]
        return [
            {"role": "user", "content": inputs if isinstance(inputs, str) else json.dumps(inputs)}
        ]
    raise AgentformError(400, "BadRequest", 'send {"inputs": "..."} or {"messages": [...]}')


def _function_tool(host: HostClient, name: str) -> dict[str, Any]:
    cached = _schemas.get(name)
    if cached is None or time.monotonic() - cached[0] > _SCHEMA_TTL_S:
        cached = (time.monotonic(), host.function_schema(name))
        _schemas[name] = cached
    schema = cached[1]
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": schema.get("description", ""),
            "parameters": schema["parameters"],
        },
    }


def _transfer_tool(agent: str, description: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": f"{TRANSFER_PREFIX}{agent}",
            "description": description or f"Hand the conversation over to the agent '{agent}'.",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    }


def _run_tool(host: HostClient, functions: list[str], call: dict[str, Any]) -> str:
    name = call["function"]["name"]
    if name not in functions:
        return json.dumps(
            {"error": {"code": "UnknownTool", "message": f"there is no tool named {name!r}"}}
        )
    try:
        arguments = json.loads(call["function"].get("arguments") or "{}")
    except ValueError as exc:
        return json.dumps(
            {"error": {"code": "BadArguments", "message": f"arguments are not valid JSON: {exc}"}}
        )
    try:
        return json.dumps(host.function(name, arguments))
    except AgentformError as exc:
        return json.dumps({"error": {"code": exc.code, "message": exc.message}})


def run_agent(
    host: HostClient,
    name: str,
    spec: AgentSpec,
    model: str,
    functions: list[str],
    agents: list[str],
    body: Any,
) -> AgentResult:
    conversation = conversation_from(body)
    messages: list[dict[str, Any]] = (
        [{"role": "system", "content": spec.instructions}] if spec.instructions else []
    )
    messages += conversation
    tools = [_function_tool(host, f) for f in functions]
    tools += [_transfer_tool(a, spec.handoffs.get(a, "")) for a in agents]
    usage = Usage()
    for step in range(1, spec.max_steps + 1):
        request: dict[str, Any] = {"messages": messages}
        if tools:
            request["tools"] = tools
        try:
            completion = host.chat(model, request)
        except AgentformError as exc:
            raise AgentformError(
                exc.status, exc.code, f"model API '{model}': {exc.message}"
            ) from None
        usage += usage_of(completion)
        message = completion["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        messages.append(
            {k: v for k, v in message.items() if k in ("role", "content", "tool_calls")}
        )
        if not calls:
            return AgentResult(message.get("content"), name, usage, step)
        transfers = [c for c in calls if c["function"]["name"].startswith(TRANSFER_PREFIX)]
        if transfers:
            target = transfers[0]["function"]["name"][len(TRANSFER_PREFIX) :]
            if target not in agents:
                raise AgentformError(
                    502,
                    "UnknownHandoff",
                    f"the model asked to transfer to undeclared agent {target!r}",
                )
            try:
                answer = host.agent(
                    target, {"messages": conversation + _visible(messages[len(conversation) :])}
                )
            except AgentformError as exc:
                raise AgentformError(
                    exc.status, exc.code, f"handoff to '{target}': {exc.message}"
                ) from None
            handed = Usage(
                answer.get("usage", {}).get("input_tokens", 0),
                answer.get("usage", {}).get("output_tokens", 0),
            )
            return AgentResult(
                answer.get("output"),
                answer.get("agent", target),
                usage + handed,
                step,
                [target, *answer.get("handoffs", [])],
            )
        if len(calls) == 1:  # no thread to start for the common case
            results = [_run_tool(host, functions, calls[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(calls))) as pool:
                results = list(pool.map(lambda call: _run_tool(host, functions, call), calls))
        for call, result in zip(calls, results, strict=True):
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    raise AgentformError(
        500,
        "MaxStepsExceeded",
        f"agent '{name}' did not reach a final answer within max_steps={spec.max_steps}",
    )


def _visible(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the next agent sees of this one's work: its answers, not its system prompt or the
    transfer call (which has no result)."""
    visible = []
    for turn in turns:
        if turn["role"] == "assistant" and turn.get("content") and not turn.get("tool_calls"):
            visible.append({"role": "assistant", "content": turn["content"]})
    return visible
