"""The local platform: the control plane of a local host (`agentform serve`), over HTTP.

Clients are created inside each provider call and never stored on a provider (dynamic
providers are pickled into Pulumi state)."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from agentform_runtime.errors import AgentformError
from agentform_runtime.specs import ConnectionSpec, DeploymentKey, EnvironmentSpec


def unreachable(endpoint: str) -> AgentformError:
    """Status 0: no HTTP answer at all."""
    return AgentformError(
        0, "Unreachable", f"no Agentform host at {endpoint}; start one with `agentform serve`"
    )


@dataclass(frozen=True)
class Endpoint:
    """Where the platform is and how to authenticate to it."""

    url: str
    token: str


@functools.cache
def _tls() -> ssl.SSLContext:
    """One per process: building one loads the CA bundle (~25 ms, holding the GIL), and a
    `pulumi up` creates a client per resource call."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class LocalPlatform:
    """The control plane of a local host (`agentform serve`)."""

    def __init__(self, endpoint: Endpoint, timeout: float = 300.0) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(
            base_url=endpoint.url,
            headers={"authorization": f"Bearer {endpoint.token}"},
            timeout=httpx.Timeout(timeout, connect=5.0),
            verify=_tls(),
        )

    def __enter__(self) -> LocalPlatform:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError:
            raise unreachable(self.endpoint.url) from None
        if response.status_code >= 400:
            raise AgentformError.from_response(response.status_code, response.content)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            return {}

    def get(self, path: str) -> dict[str, Any] | None:
        """GET `path`, or None when it does not exist."""
        try:
            result: dict[str, Any] = self.request("GET", path)
        except AgentformError as exc:
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
        except AgentformError as exc:
            if exc.status != 404:
                raise

    def upload_artifact(self, data: bytes) -> str:
        result = self.request(
            "POST", "/v1/artifacts", content=data, headers={"content-type": "application/zip"}
        )
        return str(result["digest"])

    def download_artifact(self, digest: str) -> bytes:
        """The artifact's bytes (unverified: the caller checks them against `digest`)."""
        try:
            response = self._http.get(f"/v1/artifacts/{digest}/content")
        except httpx.TransportError:
            raise unreachable(self.endpoint.url) from None
        if response.status_code >= 400:
            raise AgentformError.from_response(response.status_code, response.content)
        return response.content

    # --- the Platform interface -------------------------------------------------------------

    def put_environment(self, name: str, spec: EnvironmentSpec) -> dict[str, Any]:
        self.put(f"/v1/environments/{name}", spec.model_dump())
        return {"run_url": f"{self.endpoint.url}/run/{name}"}

    def get_environment(self, name: str) -> dict[str, Any] | None:
        return self.get(f"/v1/environments/{name}")

    def delete_environment(self, name: str) -> None:
        self.delete(f"/v1/environments/{name}")

    def put_policy(self, name: str, spec: dict[str, Any]) -> None:
        self.put(f"/v1/policies/{name}", spec)

    def get_policy(self, name: str) -> dict[str, Any] | None:
        return self.get(f"/v1/policies/{name}")

    def delete_policy(self, name: str) -> None:
        self.delete(f"/v1/policies/{name}")

    def put_connection(self, name: str, spec: ConnectionSpec) -> None:
        self.put(f"/v1/connections/{name}", spec.model_dump())

    def get_connection(self, name: str) -> dict[str, Any] | None:
        return self.get(f"/v1/connections/{name}")

    def delete_connection(self, name: str) -> None:
        self.delete(f"/v1/connections/{name}")

    def has_artifact(self, digest: str) -> bool:
        return self.get(f"/v1/artifacts/{digest}") is not None

    @staticmethod
    def _deployment_path(key: DeploymentKey) -> str:
        return f"/v1/environments/{key.environment}/deployments/{key.kind}/{key.name}"

    def put_deployment(
        self, key: DeploymentKey, spec: dict[str, Any], effective: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The host resolves policies itself (by name), so `effective` is not sent."""
        return self.put(self._deployment_path(key), spec)

    def get_deployment(self, key: DeploymentKey) -> dict[str, Any] | None:
        return self.get(self._deployment_path(key))

    def delete_deployment(self, key: DeploymentKey) -> None:
        self.delete(self._deployment_path(key))
