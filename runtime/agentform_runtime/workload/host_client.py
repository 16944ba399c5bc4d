"""Calls a workload makes through the host: to its model API, its functions and its chained
agents. Each call presents the invocation's hop token, so the host enforces what this version
declared and the call joins the request's trace as a child hop."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from agentform_runtime.errors import AgentformError
from agentform_runtime.workload.context import Context

_lock = threading.Lock()
_client: httpx.Client | None = None


def _http() -> httpx.Client:
    """One keep-alive client per worker process: warm invocations reuse its connections."""
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(timeout=httpx.Timeout(900.0, connect=5.0))
        return _client


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    def header(self) -> str:
        return json.dumps({"input": self.input_tokens, "output": self.output_tokens})

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }


class HostClient:
    """The host's run gateway, as seen from inside one invocation."""

    def __init__(self, context: Context, deadline: float | None = None) -> None:
        self.context = context
        self.gateway = os.environ.get("AGENTFORM_GATEWAY", "").rstrip("/")
        self.environment = context.environment
        self.deadline = deadline
        self._token = context.headers.get("x-agentform-hop-token", "")

    def _timeout(self) -> float:
        if self.deadline is None:
            return 900.0
        return max(0.5, self.deadline - time.time())

    def call(self, kind: str, name: str, body: Any, path: str = "") -> Any:
        """POST `body` to another deployment; return its JSON, raise AgentformError on failure."""
        url = f"{self.gateway}/run/{self.environment}/{kind}/{name}{path}"
        try:
            response = _http().post(
                url,
                json=body,
                timeout=self._timeout(),
                headers={
                    "authorization": f"Bearer {self._token}",
                    "traceparent": self.context.traceparent,
                },
            )
        except httpx.HTTPError as exc:
            raise AgentformError(
                502, "HopFailed", f"{kind}/{name}: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code >= 400:
            raise AgentformError.from_response(response.status_code, response.content)
        try:
            return response.json()
        except ValueError:
            raise AgentformError(
                502, "HopFailed", f"{kind}/{name} answered {response.text[:200]!r}, not JSON"
            ) from None

    def chat(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI-style chat completion through the model API deployment `model`."""
        result: dict[str, Any] = self.call("models", model, request, "/v1/chat/completions")
        return result

    def function(self, name: str, arguments: dict[str, Any]) -> Any:
        return self.call("functions", name, arguments)

    def function_schema(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("functions", name, {}, "/schema")
        return result

    def agent(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call("agents", name, body)
        return result


def usage_of(completion: dict[str, Any]) -> Usage:
    usage = completion.get("usage") or {}
    return Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
