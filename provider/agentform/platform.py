"""Clients for the platforms Agentform deploys onto. The local host speaks HTTP.

Clients are created inside each provider call and never stored on a provider (dynamic
providers are pickled into Pulumi state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class PlatformError(Exception):
    """A refusal from the platform, carrying its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class HostUnreachable(PlatformError):
    def __init__(self, endpoint: str) -> None:
        super().__init__(
            0, "Unreachable", f"no Agentform host at {endpoint}; start one with `agentform serve`"
        )


@dataclass(frozen=True)
class Endpoint:
    """Where the platform is and how to authenticate to it."""

    url: str
    token: str


class LocalPlatform:
    """The control plane of a local host (`agentform serve`)."""

    def __init__(self, endpoint: Endpoint, timeout: float = 300.0) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(
            base_url=endpoint.url,
            headers={"authorization": f"Bearer {endpoint.token}"},
            timeout=httpx.Timeout(timeout, connect=5.0),
        )

    def __enter__(self) -> LocalPlatform:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError:
            raise HostUnreachable(self.endpoint.url) from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise PlatformError(
                response.status_code,
                error.get("code", f"HTTP{response.status_code}"),
                error.get("message", response.text[:500]),
            )
        return body

    def get(self, path: str) -> dict[str, Any] | None:
        """GET `path`, or None when it does not exist."""
        try:
            result: dict[str, Any] = self.request("GET", path)
        except PlatformError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PUT", path, json=body)
        return result

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", path, json=body or {})
        return result

    def delete(self, path: str) -> None:
        """DELETE `path`; already gone counts as done."""
        try:
            self.request("DELETE", path)
        except PlatformError as exc:
            if exc.status != 404:
                raise

    def upload_artifact(self, data: bytes) -> str:
        result = self.request(
            "POST", "/v1/artifacts", content=data, headers={"content-type": "application/zip"}
        )
        return str(result["digest"])
