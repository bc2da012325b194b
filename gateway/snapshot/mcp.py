"""MCP tools, compiled from the served documents: one per operation (gateway.compiler.mcp).

A tool call is its route: the arguments are split back into the route's path, query and
body (``McpTool.request``) and the route's own handler answers, in process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["McpTool", "McpToolset"]


@dataclass(frozen=True, slots=True)
class McpTool:
    """One tool: what `tools/list` says of it, and the route it calls."""

    name: str
    title: str | None
    description: str
    input_schema: Mapping[str, Any]
    """JSON Schema 2020-12, an object with `properties` and `additionalProperties: false`,
    local `$ref`s inlined."""
    output_schema: Mapping[str, Any] | None
    annotations: Mapping[str, bool]
    """readOnlyHint, destructiveHint, idempotentHint, openWorldHint: always all four."""
    route: str
    method: str
    path: str
    """The route's path template (`/gmail/messages/{message_id}`)."""
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body_fields: tuple[str, ...] = ()
    """Arguments that are the JSON body's fields (an object body's properties)."""
    body_argument: str | None = None
    """The one argument that is the whole body (a body that is not an object), if any."""
    scopes: tuple[str, ...] = ()
    """The OAuth scopes the route needs (for `insufficient_scope` and the metadata)."""


@dataclass(frozen=True, slots=True)
class McpToolset:
    """The tools of one MCP endpoint (`/mcp` or `/mcp/<profile>`), in a fixed order."""

    tools: tuple[McpTool, ...]
    scheme: str | None
    """The security scheme of the endpoint's document (its tools' routes accept it)."""
    scheme_type: str | None
    scopes: tuple[str, ...] = ()
    """Every scope the endpoint's tools need, in declaration order."""
    by_name: Mapping[str, McpTool] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {tool.name: tool for tool in self.tools})
