"""Compile a `handler:` reference (route, webhook, schedule): the plugin target and the
upstream bindings its clients get."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.compiler.collect import Compilation, missing_under
from gateway.compiler.plugins import resolve_handler
from gateway.compiler.upstreams import DeclaredUpstream, retry_policy
from gateway.config.model import Retry, Upstream
from gateway.config.source import SourceFile
from gateway.snapshot import PluginTarget, UpstreamBinding

__all__ = ["CompiledHandler", "HandlerDeclaration", "compile_handler"]


@dataclass(frozen=True, slots=True)
class CompiledHandler:
    target: PluginTarget | None
    """None when the handler could not be resolved (an error is recorded)."""
    clients: dict[str, UpstreamBinding]
    unconfigured: str | None
    """The 503 message while a client's upstream lacks a variable."""


@dataclass(frozen=True, slots=True)
class HandlerDeclaration:
    """Where and what a route, webhook or schedule declares about its handler."""

    source: SourceFile
    path: str
    handler: str
    settings: dict[str, Any]
    upstreams: list[str]
    retry: Retry | None
    file_upstream: Upstream | None


def compile_handler(
    run: Compilation, declared: HandlerDeclaration, upstreams: Mapping[str, DeclaredUpstream]
) -> CompiledHandler:
    source, path = declared.source, declared.path
    resolved = resolve_handler(run.config.directory, declared.handler, declared.settings)
    target: PluginTarget | None = None
    unconfigured = None
    if isinstance(resolved, PluginTarget):
        target = resolved
    else:
        # Settings missing an environment variable: the item answers 503 until it is set
        # (the item's own "not configured" message names the variable).
        unset = resolved.field == "settings" and missing_under(source.missing, f"{path}.settings")
        if unset and resolved.unsettled is not None:
            target = resolved.unsettled
        else:
            run.error(source, f"{path}.{resolved.field}", resolved.message)
    file_upstream = declared.file_upstream
    names = declared.upstreams or ([file_upstream.name] if file_upstream is not None else [])
    clients: dict[str, UpstreamBinding] = {}
    for position, name in enumerate(names):
        upstream = upstreams.get(name)
        if upstream is None:
            known = ", ".join(sorted(upstreams)) or "none"
            run.error(
                source,
                f"{path}.upstreams[{position}]",
                f"upstream `{name}` does not exist (known: {known})",
            )
            continue
        clients[name] = upstream.binding(retry_policy(run, declared.retry, upstream.config))
        if unconfigured is None and upstream.unconfigured is not None:
            unconfigured = upstream.unconfigured
    return CompiledHandler(target, clients, unconfigured)
