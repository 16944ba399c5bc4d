"""Every function deployment as an MCP tool server: `/run/{env}/functions/{name}/mcp`.

Streamable HTTP (stateless, JSON responses) through the official `mcp` package. The request
is authenticated like any run request; `tools/list` describes the function from its own
schema and `tools/call` invokes it through the invoker, so audit records, identity and
lineage are the same as for a direct call."""

from __future__ import annotations

import json
from typing import Any

import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from agentform_runtime.errors import AgentformError
from agentform_runtime.host import invoke
from agentform_runtime.host.api.gateway import caller_of, target_of
from agentform_runtime.host.api.responses import error_response
from agentform_runtime.host.context import host_of
from agentform_runtime.specs import DeploymentKey

_STATE_KEY = "agentform_mcp"


def _target(ctx: Any) -> tuple[Any, DeploymentKey, invoke.Caller]:
    request: Request = ctx.request
    host, key, caller = request.scope["state"][_STATE_KEY]
    return host, key, caller


async def _list_tools(
    ctx: Any, _params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    host, key, caller = _target(ctx)
    result = await host.invoker.invoke(key, caller, invoke.Request("POST", "/schema", b"{}"))
    if result.status >= 400:
        raise RuntimeError(
            f"cannot describe {key[1]}/{key[2]}: {result.body.decode(errors='replace')}"
        )
    schema = result.json()
    return types.ListToolsResult(
        tools=[
            types.Tool(
                name=key[2],
                description=schema.get("description") or None,
                input_schema=schema["parameters"],
            )
        ]
    )


async def _call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    host, key, caller = _target(ctx)
    if params.name != key[2]:
        return types.CallToolResult(
            content=[
                types.TextContent(
                    type="text", text=f"unknown tool {params.name!r}; this server has {key[2]!r}"
                )
            ],
            is_error=True,
        )
    body = json.dumps(params.arguments or {}).encode()
    result = await host.invoker.invoke(key, caller, invoke.Request("POST", "/", body))
    text = result.body.decode(errors="replace")
    if result.status >= 400:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=True
        )
    value = result.json()
    structured = value if isinstance(value, dict) else {"result": value}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured
    )


class McpEndpoint:
    """The ASGI endpoint; run `manager.run()` for the host's lifetime."""

    def __init__(self) -> None:
        server: Server[Any] = Server(
            "agentform-functions", on_list_tools=_list_tools, on_call_tool=_call_tool
        )
        self.manager = StreamableHTTPSessionManager(
            app=server,
            stateless=True,
            json_response=True,
            # Every request carries a bearer token (never ambient credentials such as
            # cookies), so DNS-rebinding protection adds nothing and would refuse loopback aliases.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        host = host_of(request)
        env, name = request.path_params["env"], request.path_params["name"]
        try:
            key = target_of(env, "functions", name)
            caller = caller_of(host, request.headers, env)
            host.deployments.route(key)
        except AgentformError as exc:
            await error_response(exc)(scope, receive, send)
            return
        state = {**scope.get("state", {}), _STATE_KEY: (host, key, caller)}
        await self.manager.handle_request({**scope, "state": state}, receive, send)
