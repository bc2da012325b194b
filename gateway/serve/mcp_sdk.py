"""The SDK's side of /mcp: its low-level ``Server`` behind its Streamable HTTP session
manager (stateless, JSON answers), and what `tools/list` and `tools/call` do.

Imported on the first MCP request (gateway.serve.mcp), so that a gateway nobody asks for
tools pays nothing for the SDK (pydantic, starlette, its OpenTelemetry API use).

* `tools/list` is the toolset the current snapshot compiled for the endpoint
  (gateway.compiler.mcp), so it follows reloads.
* `tools/call` is the route: the arguments become the route's path, query and JSON body,
  and the gateway's own dispatcher serves it in process, with the caller's headers and
  address: inbound auth, scopes, validation, rate limits, templates, upstream calls and
  redaction apply as for HTTP. A 2xx JSON answer is `structuredContent` plus a text copy;
  an error answer is `isError: true` with the problem's detail and field errors; a
  malformed call is the JSON-RPC error -32602.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import mcp_types as types
import msgspec
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from gateway import metrics
from gateway.logs import logger
from gateway.serve.mcp_paths import AUDIENCE, endpoint_key, endpoint_path, replay
from gateway.snapshot import Snapshot
from gateway.snapshot.mcp import McpTool, McpToolset

__all__ = ["Dispatch", "McpSdk"]

Dispatch = Callable[[Snapshot, Any, dict[str, Any], Any, Any, str, list[Any]], Any]
"""``Dispatcher.__call__``: serve one matched route on a snapshot."""


class McpSdk:
    """The SDK server of every MCP endpoint; ``manager.handle_request`` serves a request
    once ``manager.run()`` is entered."""

    def __init__(self, current: Callable[[], Snapshot], dispatch: Dispatch, version: str) -> None:
        self.current = current
        self.dispatch = dispatch
        self.server: Server[Any] = Server(
            "yaml-gateway",
            version=version,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self.manager = StreamableHTTPSessionManager(
            app=self.server, stateless=True, json_response=True
        )

    def _toolset(self, ctx: Any) -> tuple[Snapshot, McpToolset]:
        snapshot = self.current()
        request = ctx.request
        key = endpoint_key(request.scope) if request is not None else None
        toolset = snapshot.mcp.get(key) if key != "" else None
        if toolset is None:
            raise MCPError(code=INVALID_PARAMS, message="no MCP endpoint here")
        return snapshot, toolset

    async def _list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        _, toolset = self._toolset(ctx)
        return types.ListToolsResult(tools=[_listed(tool) for tool in toolset.tools])

    async def _call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        snapshot, toolset = self._toolset(ctx)
        tool = toolset.by_name.get(params.name)
        if tool is None:
            metrics.tool_called("_unknown", "invalid")
            raise MCPError(code=INVALID_PARAMS, message=f"unknown tool: {params.name}")
        arguments = params.arguments or {}
        malformed = _malformed(tool, arguments)
        if malformed is not None:
            metrics.tool_called(tool.name, "invalid")
            raise MCPError(code=INVALID_PARAMS, message=f"{tool.name}: {malformed}")
        request = ctx.request
        inbound = dict(request.scope["headers"]) if request is not None else {}
        client = request.scope.get("client") if request is not None else None
        key = endpoint_key(request.scope) if request is not None else None
        audience = snapshot.public_url + endpoint_path(key)
        result = await self._run(snapshot, tool, arguments, inbound, client, audience)
        metrics.tool_called(tool.name, "error" if result.is_error else "ok")
        return result

    async def _run(
        self,
        snapshot: Snapshot,
        tool: McpTool,
        arguments: Mapping[str, Any],
        inbound: Mapping[bytes, bytes],
        client: Any = None,
        audience: str | None = None,
    ) -> types.CallToolResult:
        """Serve ``tool``'s route with ``arguments``, as the MCP request's caller (its
        headers and its address: `ip` rate limits and throttles count the real caller)."""
        path, raw_path = tool.path, tool.path
        for name in tool.path_params:
            value = _text(arguments[name])
            path = path.replace("{" + name + "}", value)  # ASGI's `path` is decoded
            raw_path = raw_path.replace("{" + name + "}", quote(value, safe=""))
        query = urlencode(
            [(name, _text(arguments[name])) for name in tool.query_params if name in arguments]
        )
        body = b""
        if tool.body_argument is not None and tool.body_argument in arguments:
            body = msgspec.json.encode(arguments[tool.body_argument])
        elif tool.body_fields:
            fields = {name: arguments[name] for name in tool.body_fields if name in arguments}
            body = msgspec.json.encode(fields) if fields or tool.method != "GET" else b""
        match = snapshot.table.match(tool.method, path)
        if match is None:  # as over HTTP, where `%2F` is decoded before routing
            names = ", ".join(tool.path_params)
            return _error_result(f"404: a path parameter ({names}) cannot hold `/`")
        request_id = (inbound.get(b"x-request-id") or b"").decode("latin-1") or None
        headers = [
            (name, value)
            for name, value in inbound.items()
            if name in (b"authorization", b"x-request-id", b"traceparent", b"tracestate")
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": tool.method,
            "scheme": "http",
            "path": path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "headers": headers,
            "client": client or ("unknown", 0),
            "server": ("gateway", 0),
            AUDIENCE: audience,
        }
        answer = _Captured()
        request_id = request_id or uuid.uuid4().hex
        await self.dispatch(snapshot, match, scope, replay(body), answer, request_id, [])
        return answer.result(tool)


def _malformed(tool: McpTool, arguments: Any) -> str | None:
    """What makes a call malformed (a JSON-RPC error): arguments that are not an object,
    names the tool does not take, a path parameter left out. Wrong values are the route's
    to judge: its 400 lists every field, which the model can act on."""
    if not isinstance(arguments, dict):
        return "`arguments` must be an object"
    unknown = sorted(set(arguments) - set(tool.input_schema.get("properties", {})))
    if unknown:
        return f"unknown argument{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}"
    missing = [name for name in tool.path_params if name not in arguments]
    if missing:
        return f"missing argument{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _listed(tool: McpTool) -> types.Tool:
    annotations = tool.annotations
    return types.Tool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=dict(tool.input_schema),
        output_schema=dict(tool.output_schema) if tool.output_schema is not None else None,
        annotations=types.ToolAnnotations(
            title=tool.title,
            read_only_hint=annotations["readOnlyHint"],
            destructive_hint=annotations["destructiveHint"],
            idempotent_hint=annotations["idempotentHint"],
            open_world_hint=annotations["openWorldHint"],
        ),
    )


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


class _Captured:
    """The ASGI answer of a route served in process."""

    def __init__(self) -> None:
        self.status = 500
        self.content_type = ""
        self.body = b""

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", []):
                if name.lower() == b"content-type":
                    self.content_type = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def result(self, tool: McpTool) -> types.CallToolResult:
        text = self.body.decode("utf-8", "replace")
        parsed: Any = None
        if "json" in self.content_type:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        if 200 <= self.status < 300:
            structured = parsed if isinstance(parsed, dict) and tool.output_schema else None
            return types.CallToolResult(
                content=[types.TextContent(text=text)], structured_content=structured
            )
        if isinstance(parsed, dict):
            detail = str(parsed.get("detail") or parsed.get("message") or text)
            lines = [f"{self.status}: {detail}"]
            for error in parsed.get("errors") or []:
                if isinstance(error, dict):
                    lines.append(f"- {error.get('field')}: {error.get('message')}")
            logger.debug("mcp: tool %s answered %d", tool.name, self.status)
            return _error_result("\n".join(lines))
        return _error_result(f"{self.status}: {text[:2000]}")
