"""A scripted model server: a TEST model, not a real one.

It speaks the OpenAI chat-completions API (`POST /v1/chat/completions`) and Anthropic's
Messages API (`POST /v1/messages`) over real HTTP, answers with the next step of a script
(text, tool calls, or an injected error status), and records every request it receives. It
makes agent runs deterministic in tests and lets the quickstart run offline.

A script is JSON: `{"steps": [{"text": "..."}, {"tool_calls": [{"name": "f", "arguments":
{...}}]}, {"status": 503}], "cycle": false}`. A text may contain `{tool_result}` (the content
of the last tool result in the request) and `{last_user}` (the last user message).
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class ScriptedToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptStep(BaseModel):
    text: str | None = None
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    status: int = Field(
        default=200, description="an HTTP error status to inject instead of an answer"
    )
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Script(BaseModel):
    steps: list[ScriptStep]
    cycle: bool = Field(default=False, description="start again after the last step")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                inner = part.get("text", part.get("content", ""))
                parts.append(inner if isinstance(inner, str) else _text(inner))
        return "".join(parts)
    return "" if content is None else json.dumps(content)


def _last_tool_result(messages: list[dict[str, Any]]) -> str:
    """The newest tool result: an OpenAI `tool` message or an Anthropic `tool_result` block."""
    for message in reversed(messages):
        if message.get("role") == "tool":
            return _text(message.get("content"))
        content = message.get("content")
        if isinstance(content, list):
            results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if results:
                return _text(results[-1].get("content"))
    return ""


def _last_user(messages: list[dict[str, Any]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    return _text(users[-1].get("content")) if users else ""


class ScriptedModel:
    """The script and the requests seen so far (thread-safe)."""

    def __init__(self, script: Script) -> None:
        self._lock = threading.Lock()
        self.load(script)

    def load(self, script: Script) -> None:
        with self._lock:
            self.script = script
            self.position = 0
            self.requests: list[dict[str, Any]] = []

    def next_step(
        self, api: str, request: dict[str, Any], credential: str
    ) -> tuple[int, ScriptStep]:
        with self._lock:
            self.requests.append({"api": api, "body": request, "credential": credential})
            if self.position >= len(self.script.steps):
                if not self.script.cycle or not self.script.steps:
                    return self.position, ScriptStep(
                        status=500, text="the script has no more steps"
                    )
                self.position = 0
            index = self.position
            self.position += 1
            return index, self.script.steps[index]


def _render(step: ScriptStep, messages: list[dict[str, Any]]) -> str | None:
    if step.text is None:
        return None
    return step.text.replace("{tool_result}", _last_tool_result(messages)).replace(
        "{last_user}", _last_user(messages)
    )


def _usage(step: ScriptStep, messages: list[dict[str, Any]], text: str | None) -> tuple[int, int]:
    prompt = step.prompt_tokens
    if prompt is None:
        prompt = sum(len(_text(m.get("content")).split()) for m in messages) + 1
    completion = step.completion_tokens
    if completion is None:
        completion = len((text or "").split()) + 8 * len(step.tool_calls)
    return prompt, completion


def create_app(model: ScriptedModel) -> Starlette:
    async def chat_completions(request: Request) -> JSONResponse:
        body = await request.json()
        index, step = model.next_step("openai", body, request.headers.get("authorization", ""))
        if step.status >= 400:
            return JSONResponse(
                {"error": {"message": step.text or "scripted error", "type": "scripted"}},
                step.status,
            )
        messages = body.get("messages", [])
        text = _render(step, messages)
        prompt, completion = _usage(step, messages, text)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if step.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{index}_{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for i, call in enumerate(step.tool_calls)
            ]
        return JSONResponse(
            {
                "id": f"chatcmpl-scripted-{index}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "scripted"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if step.tool_calls else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    async def messages_api(request: Request) -> JSONResponse:
        body = await request.json()
        index, step = model.next_step("anthropic", body, request.headers.get("x-api-key", ""))
        if step.status >= 400:
            return JSONResponse(
                {"type": "error", "error": {"type": "scripted", "message": step.text or ""}},
                step.status,
            )
        messages = body.get("messages", [])
        text = _render(step, messages)
        prompt, completion = _usage(step, messages, text)
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text is not None else []
        content += [
            {
                "type": "tool_use",
                "id": f"toolu_{index}_{i}",
                "name": call.name,
                "input": call.arguments,
            }
            for i, call in enumerate(step.tool_calls)
        ]
        return JSONResponse(
            {
                "id": f"msg_scripted_{index}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "scripted"),
                "content": content,
                "stop_reason": "tool_use" if step.tool_calls else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": completion},
            }
        )

    async def requests(_: Request) -> JSONResponse:
        return JSONResponse(model.requests)

    async def replace(request: Request) -> JSONResponse:
        model.load(Script.model_validate(await request.json()))
        return JSONResponse({"steps": len(model.script.steps)})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/messages", messages_api, methods=["POST"]),
            Route("/_script/requests", requests, methods=["GET"]),
            Route("/_script", replace, methods=["PUT"]),
        ]
    )


class ScriptedModelServer:
    """The server on a loopback port, in a background thread (for tests and tools)."""

    def __init__(self, script: Script, host: str = "127.0.0.1", port: int = 0) -> None:
        self.model = ScriptedModel(script)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.bind((host, port))
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(self.model), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> ScriptedModelServer:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the scripted model server failed to start")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()

    def load(self, steps: list[dict[str, Any]], cycle: bool = False) -> None:
        self.model.load(Script.model_validate({"steps": steps, "cycle": cycle}))

    @property
    def requests(self) -> list[dict[str, Any]]:
        return list(self.model.requests)


def serve(script_file: Path, host: str = "127.0.0.1", port: int = 4870) -> None:
    """Run until interrupted (the `agentform scripted-model` command)."""
    model = ScriptedModel(Script.model_validate_json(script_file.read_text()))
    uvicorn.run(create_app(model), host=host, port=port, log_level="warning", access_log=False)
