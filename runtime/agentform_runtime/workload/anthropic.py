"""Translation between OpenAI chat completions and Anthropic's Messages API, tools included."""

from __future__ import annotations

import json
import time
from typing import Any

DEFAULT_MAX_TOKENS = 1024
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}


def _text(content: Any) -> str:
    """OpenAI content (a string or a list of parts) as plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice in (None, "auto"):
        return {"type": "auto"} if choice else None
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": choice["function"]["name"]}
    raise ValueError(f"unsupported tool_choice {choice!r}")


def to_messages_request(request: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat request as an Anthropic Messages request for `model`."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    def append(role: str, blocks: list[dict[str, Any]]) -> None:
        # Anthropic wants alternating roles: merge consecutive same-role turns.
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for message in request.get("messages", []):
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
        elif role == "user":
            append("user", [{"type": "text", "text": _text(message.get("content"))}])
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            if _text(message.get("content")):
                blocks.append({"type": "text", "text": _text(message.get("content"))})
            for call in message.get("tool_calls") or []:
                arguments = call["function"].get("arguments") or "{}"
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": json.loads(arguments) if isinstance(arguments, str) else arguments,
                    }
                )
            append("assistant", blocks)
        elif role == "tool":
            append(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message["tool_call_id"],
                        "content": _text(message.get("content")),
                    }
                ],
            )
        else:
            raise ValueError(f"unsupported message role {role!r}")

    translated: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": request.get("max_completion_tokens")
        or request.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        translated["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p"):
        if request.get(key) is not None:
            translated[key] = request[key]
    stop = request.get("stop")
    if stop:
        translated["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if request.get("tools"):
        translated["tools"] = [
            {
                "name": tool["function"]["name"],
                "description": tool["function"].get("description", ""),
                "input_schema": tool["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for tool in request["tools"]
        ]
        choice = _tool_choice(request.get("tool_choice"))
        if choice is not None:
            translated["tool_choice"] = choice
    return translated


def to_chat_completion(response: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages response as an OpenAI chat completion."""
    texts = [b["text"] for b in response.get("content", []) if b.get("type") == "text"]
    tool_calls = [
        {
            "id": block["id"],
            "type": "function",
            "function": {"name": block["name"], "arguments": json.dumps(block.get("input", {}))},
        }
        for block in response.get("content", [])
        if block.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = response.get("usage", {})
    prompt, completion = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return {
        "id": response.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _STOP_REASONS.get(response.get("stop_reason", ""), "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
