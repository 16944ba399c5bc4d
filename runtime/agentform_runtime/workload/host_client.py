"""Calls a workload makes through the host: to its model API, its functions and its chained
agents. Each call presents the invocation's hop token, so the host enforces what this version
declared and the call joins the request's trace as a child hop."""

from __future__ import annotations

import http.client
import json
import os
import select
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agentform_runtime.errors import AgentformError
from agentform_runtime.workload.context import Context

# Keep-alive connections by (scheme, host, port), shared by the invocations (and tool-call
# threads) of this worker. The standard library's client, not httpx: a hop is a small JSON
# POST to loopback, and http.client sends its headers and body in one write, which on 2 cores
# measured a third less time per hop than httpx's separate writes and heavier request path.
_lock = threading.Lock()
_idle: dict[tuple[str, str, int | None], list[http.client.HTTPConnection]] = {}


def _alive(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection can carry a request: the server has not closed it (nor
    sent anything unasked, which would be read as the next answer)."""
    sock = connection.sock
    if sock is None:
        return False
    # poll, not select: any file descriptor number; readable while idle means it is over.
    idle = select.poll()
    idle.register(sock, select.POLLIN)
    return not idle.poll(0)


def _connection(origin: tuple[str, str, int | None], timeout: float) -> http.client.HTTPConnection:
    """An idle connection to `origin` that is still open, or a new one."""
    while True:
        with _lock:
            idle = _idle.get(origin)
            connection = idle.pop() if idle else None
        if connection is None:
            break
        if _alive(connection):
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            return connection
        connection.close()
    scheme, host, port = origin
    kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    return kind(host, port, timeout=timeout)


def post_json(url: str, body: Any, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST `body` as JSON on a kept-alive connection; return (status, response body)."""
    parts = urlsplit(url)
    origin = (parts.scheme, parts.hostname or "127.0.0.1", parts.port)
    connection = _connection(origin, timeout)
    try:
        connection.request(
            "POST",
            parts.path + (f"?{parts.query}" if parts.query else ""),
            body=json.dumps(body).encode(),
            headers={"content-type": "application/json", **headers},
        )
        response = connection.getresponse()
        data = response.read()
    except BaseException:
        connection.close()
        raise
    if response.will_close:
        connection.close()
    else:
        with _lock:
            _idle.setdefault(origin, []).append(connection)
    return response.status, data


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
        headers = {
            "authorization": f"Bearer {self._token}",
            "traceparent": self.context.traceparent,
        }
        try:
            status, content = post_json(url, body, headers, self._timeout())
        except (OSError, http.client.HTTPException) as exc:
            raise AgentformError(
                502, "HopFailed", f"{kind}/{name}: {type(exc).__name__}: {exc}"
            ) from None
        if status >= 400:
            raise AgentformError.from_response(status, content)
        try:
            return json.loads(content)
        except ValueError:
            raise AgentformError(
                502,
                "HopFailed",
                f"{kind}/{name} answered {content[:200].decode(errors='replace')!r}, not JSON",
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
