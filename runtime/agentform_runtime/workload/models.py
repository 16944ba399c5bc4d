"""The model gateway: one OpenAI-compatible endpoint in front of one model of one provider.

Credentials come from the integration connection the host hands to model workloads only
(`AGENTFORM_CONNECTION`). Rate limits and server errors are retried with exponential backoff,
then reported as one clear error. Token usage goes back to the host in a response header."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx

from agentform_runtime.errors import AgentformError
from agentform_runtime.redaction import redact
from agentform_runtime.specs import ModelSpec as ModelSpec  # re-exported for the handler
from agentform_runtime.workload import anthropic, responses
from agentform_runtime.workload.context import Connection as Connection  # for the handler
from agentform_runtime.workload.host_client import usage_of

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
ANTHROPIC_VERSION = "2023-06-01"
# Retried as OpenAI's and Anthropic's SDKs retry: timeouts, conflicts, rate limits, and
# every server error (5xx, Anthropic's 529 "overloaded" included).
RETRIED_STATUSES = {408, 409, 429}


def _retried(status: int) -> bool:
    return status in RETRIED_STATUSES or status >= 500


def connection_from_environment() -> Connection:
    """The model API's own connection (`AGENTFORM_CONNECTION`, set for model APIs only)."""
    raw = os.environ.get("AGENTFORM_CONNECTION")
    return Connection(**json.loads(raw)) if raw else Connection()


class ModelGateway:
    def __init__(self, spec: ModelSpec, connection: Connection) -> None:
        self.spec = spec
        self.connection = connection
        base_url = (
            spec.base_url
            or connection.config.get("base_url")
            or DEFAULT_BASE_URLS.get(spec.provider)
        )
        if not base_url:
            raise ValueError(f"model provider '{spec.provider}' needs a base_url")
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(timeout=spec.timeout_s)

    def redact(self, text: str) -> str:
        """`text` without the connection's secret values: providers echo keys in errors."""
        return redact(text, self.connection.secrets.values())

    def _post(self, url: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on rate limits, server errors and transport failures."""
        attempts = self.spec.max_retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.spec.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.post(url, headers=headers, json=body)
            except httpx.TransportError as exc:
                last = self.redact(f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code < 400:
                result: dict[str, Any] = response.json()
                return result
            # Redacted before it is cut, so that no prefix of a secret survives the cut.
            last = f"HTTP {response.status_code}: {self.redact(response.text)[:300]}"
            if not _retried(response.status_code):
                raise AgentformError(
                    response.status_code,
                    "UpstreamError",
                    f"the provider refused the request: {last}",
                )
        raise AgentformError(
            502,
            "UpstreamError",
            f"the provider failed {attempts} time(s) ({self.spec.provider} at {self.base_url}); "
            f"last: {last}",
        )

    def chat_completion(self, request: dict[str, Any]) -> dict[str, Any]:
        api_key = self.connection.secrets.get("api_key", "")
        if self.spec.provider == "anthropic":
            headers = {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION}
            upstream = self._post(
                f"{self.base_url}/v1/messages",
                headers,
                anthropic.to_messages_request(request, self.spec.model),
            )
            return anthropic.to_chat_completion(upstream)
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        body = {**request, "model": self.spec.model, "stream": False}
        return self._post(f"{self.base_url}/chat/completions", headers, body)


def serve(gateway: ModelGateway, path: str, body: Any) -> dict[str, Any]:
    """Answer one request to a model API deployment."""
    if path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
        return responses.error(
            404, "NotFound", f"model APIs serve POST /v1/chat/completions, not {path}"
        )
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return responses.error(
            400, "BadRequest", "messages: a chat completion request needs a list of messages"
        )
    if body.get("stream"):
        return responses.error(
            400, "BadRequest", "stream: streaming is not supported; send stream=false"
        )
    try:
        completion = gateway.chat_completion(body)
    except ValueError as exc:
        return responses.error(400, "BadRequest", gateway.redact(str(exc)))
    except AgentformError as exc:
        status = exc.status if 400 <= exc.status < 500 and exc.status != 429 else 502
        return responses.error(status, "UpstreamError", gateway.redact(exc.message))
    return responses.ok(completion, headers={"x-agentform-usage": usage_of(completion).header()})
