"""MCP tools from the served documents: each operation of `/openapi.json` is a tool of
`/mcp`, each operation of a profile's document a tool of `/mcp/<profile>`.

    operationId          -> name            (route `mcp.name`)
    summary, description -> title, description
    path, query, body    -> one inputSchema (an object body's fields at the top level)
    response schema      -> outputSchema (when it is an object)
    method, consequential -> readOnlyHint, destructiveHint, idempotentHint, openWorldHint

Built from the documents rather than the routes so that a tool says exactly what the
operation it calls says; local `$ref`s are inlined (MCP clients resolve none).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.compiler.validation import COMPONENTS_PREFIX
from gateway.config.load import Config
from gateway.config.model import Route
from gateway.snapshot import CompiledRoute, LintIssue, StaticRoute
from gateway.snapshot.mcp import McpTool, McpToolset

__all__ = ["TOOL_NAME", "build_toolsets"]

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Valid as an MCP tool name and as an OpenAI function name alike."""
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})
DESTRUCTIVE_METHODS = frozenset({"PUT", "PATCH", "DELETE"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
_METHODS = ("get", "put", "post", "delete", "patch", "head")


def build_toolsets(
    config: Config,
    routes: Mapping[str, CompiledRoute],
    merged: Mapping[str, Any],
    profiles: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str | None, McpToolset], list[LintIssue]]:
    """The toolset of `/mcp` (key None) and of each profile, and what `gateway check` says
    of their tools."""
    declared = {route.id: route for loaded in config.route_files for route in loaded.content.routes}
    toolsets: dict[str | None, McpToolset] = {}
    lint: list[LintIssue] = []
    for key, document in [(None, merged), *profiles.items()]:
        name = "mcp" if key is None else f"mcp/{key}"
        tools = [
            _tool(operation, method, path, declared[operation["operationId"]], routes, document)
            for path, method, operation in _operations(document)
            if declared[operation["operationId"]].mcp.enabled
        ]
        scheme, scheme_type = _scheme(document, routes, tools)
        scopes = tuple(dict.fromkeys(scope for tool in tools for scope in tool.scopes))
        toolsets[key] = McpToolset(tuple(tools), scheme, scheme_type, scopes)
        lint += _lint(name, tools, routes, scheme_type)
    return toolsets, lint


def _operations(document: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in (document.get("paths") or {}).items():
        for method in _METHODS:
            if method in item:
                yield path, method.upper(), item[method]


def _scheme(
    document: Mapping[str, Any], routes: Mapping[str, CompiledRoute], tools: list[McpTool]
) -> tuple[str | None, str | None]:
    schemes = list((document.get("components") or {}).get("securitySchemes", {}))
    if not schemes:
        return None, None
    name = schemes[0]
    for tool in tools:
        for spec in routes[tool.route].accepts:
            if spec.id == name:
                return name, spec.type
    return name, None


def _tool(
    operation: Mapping[str, Any],
    method: str,
    path: str,
    route: Route,
    routes: Mapping[str, CompiledRoute],
    document: Mapping[str, Any],
) -> McpTool:
    components = (document.get("components") or {}).get("schemas") or {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    path_params: list[str] = []
    query_params: list[str] = []
    for parameter in operation.get("parameters", []):
        schema = dict(parameter.get("schema") or {})
        if parameter.get("description"):
            schema["description"] = parameter["description"]
        properties[parameter["name"]] = schema
        if parameter.get("required"):
            required.append(parameter["name"])
        (path_params if parameter.get("in") == "path" else query_params).append(parameter["name"])
    body_fields: tuple[str, ...] = ()
    body_argument = None
    body = operation.get("requestBody")
    if body is not None:
        schema = _inlined(body["content"]["application/json"]["schema"], components)
        fields = schema.get("properties") if schema.get("type") == "object" else None
        if isinstance(fields, dict) and not set(fields) & set(properties):
            properties.update(fields)
            body_fields = tuple(fields)
            if body.get("required", False):
                required += [name for name in schema.get("required", []) if name in fields]
        else:  # not an object, or a field named like a parameter: the body as one argument
            body_argument = "body"
            properties[body_argument] = schema
            if body.get("required", False):
                required.append(body_argument)
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        input_schema["required"] = required
    compiled = routes[route.id]
    return McpTool(
        name=route.mcp.name or route.id,
        title=route.summary,
        description=route.mcp.description
        or route.description
        or route.summary
        or f"{method} {path}",
        input_schema=input_schema,
        output_schema=_output_schema(operation, components),
        annotations=_annotations(route, method, compiled),
        route=route.id,
        method=method,
        path=path,
        path_params=tuple(path_params),
        query_params=tuple(query_params),
        body_fields=body_fields,
        body_argument=body_argument,
        scopes=compiled.scopes,
    )


def _output_schema(
    operation: Mapping[str, Any], components: Mapping[str, Any]
) -> dict[str, Any] | None:
    for status, response in (operation.get("responses") or {}).items():
        if status.startswith("2"):
            content = (response.get("content") or {}).get("application/json") or {}
            schema = _inlined(content.get("schema") or {}, components)
            return schema if schema.get("type") == "object" else None
    return None


def _annotations(route: Route, method: str, compiled: CompiledRoute) -> dict[str, bool]:
    settings = route.mcp
    read_only = settings.read_only
    if read_only is None:
        read_only = method in READ_ONLY_METHODS or route.consequential is False
    destructive = settings.destructive
    if destructive is None:
        destructive = not read_only and method in DESTRUCTIVE_METHODS
    idempotent = settings.idempotent
    if idempotent is None:
        idempotent = read_only or method in IDEMPOTENT_METHODS
    open_world = settings.open_world
    if open_world is None:
        open_world = not isinstance(compiled, StaticRoute)
    return {
        "readOnlyHint": read_only,
        "destructiveHint": destructive,
        "idempotentHint": idempotent,
        "openWorldHint": open_world,
    }


def _inlined(schema: Any, components: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``schema`` with every `#/components/schemas/X` replaced by X itself; a reference
    back into its own chain (a recursive schema) becomes `{}` (anything)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENTS_PREFIX):
            name = ref[len(COMPONENTS_PREFIX) :]
            if name in seen or name not in components:
                return {}
            resolved = _inlined(copy.deepcopy(components[name]), components, (*seen, name))
            return {**resolved, **{k: v for k, v in schema.items() if k != "$ref"}}
        return {key: _inlined(value, components, seen) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inlined(item, components, seen) for item in schema]
    return schema


def _lint(
    name: str, tools: list[McpTool], routes: Mapping[str, CompiledRoute], scheme: str | None
) -> list[LintIssue]:
    issues: list[LintIssue] = []
    seen: set[str] = set()
    for tool in tools:
        compiled = routes[tool.route]
        where = (compiled.file, compiled.line)
        if not TOOL_NAME.match(tool.name):
            issues.append(
                LintIssue(
                    "error", name, f"tool name {tool.name!r} must match {TOOL_NAME.pattern}", *where
                )
            )
        elif tool.name in seen:
            issues.append(
                LintIssue("error", name, f"tool name `{tool.name}` is not unique", *where)
            )
        seen.add(tool.name)
        if tool.description == f"{tool.method} {tool.path}":
            issues.append(
                LintIssue(
                    "warning",
                    name,
                    f"tool `{tool.name}` has no description: give its route `summary` or "
                    "`description` (the model reads it to choose the tool)",
                    *where,
                )
            )
    if tools and scheme == "api_key":
        issues.append(
            LintIssue(
                "warning",
                name,
                "its tools take an API key: ChatGPT's MCP client sends only OAuth tokens (or "
                "nothing), so only clients that can send the key header can use it",
            )
        )
    return issues
