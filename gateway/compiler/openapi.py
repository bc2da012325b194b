"""The merged OpenAPI 3.1.0 document, the action profiles and the ai-plugin manifest.

Built from the configuration at compile time (pure), so the served documents always match the
routes that serve. ``servers[0].url`` is the configured public URL, never a request's Host.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.compiler.lint import lint_document
from gateway.compiler.validation import COMPONENTS_PREFIX, path_params, rewrite_refs
from gateway.config.load import Config
from gateway.config.model import Param, Route
from gateway.snapshot import CompiledRoute, InboundAuthSpec, LintIssue

__all__ = ["Documents", "build_documents"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem: what went wrong and how to fix it.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "route": {"type": "string"},
        "request_id": {"type": "string"},
    },
}


@dataclass(frozen=True)
class Documents:
    merged: dict[str, Any]
    profiles: dict[str, dict[str, Any]]
    ai_plugin: dict[str, Any]
    lint: tuple[LintIssue, ...]
    errors: list[tuple[str, str]]
    """(message, `$.path` in gateway.yaml) for profile mistakes."""


def build_documents(
    config: Config,
    routes: Iterable[CompiledRoute],
    schemas: Mapping[str, Any],
    auth_specs: Mapping[str, InboundAuthSpec],
) -> Documents:
    compiled = {route.id: route for route in routes}
    declared: list[Route] = [
        route
        for loaded in config.route_files
        for route in loaded.content.routes
        if route.id in compiled and route.include_in_schema
    ]
    origins = {route.id: (compiled[route.id].file, compiled[route.id].line) for route in declared}
    gateway = config.gateway
    merged = _document(
        config,
        declared,
        compiled,
        schemas,
        auth_specs,
        gateway.info.title,
        gateway.info.description,
    )

    profiles: dict[str, dict[str, Any]] = {}
    lint: list[LintIssue] = []
    errors: list[tuple[str, str]] = []
    by_id = {route.id: route for route in declared}
    for index, profile in enumerate(gateway.profiles):
        chosen: dict[str, Route] = {}
        for position, route_id in enumerate(profile.routes):
            if route_id not in by_id:
                errors.append(
                    (
                        f"profile `{profile.id}` names unknown route `{route_id}`",
                        f"$.profiles[{index}].routes[{position}]",
                    )
                )
            else:
                chosen[route_id] = by_id[route_id]
        for position, tag in enumerate(profile.tags):
            tagged = [route for route in declared if tag in route.tags]
            if not tagged:
                errors.append(
                    (
                        f"profile `{profile.id}` tag `{tag}` matches no route",
                        f"$.profiles[{index}].tags[{position}]",
                    )
                )
            chosen.update((route.id, route) for route in tagged)
        document = _document(
            config,
            list(chosen.values()),
            compiled,
            schemas,
            auth_specs,
            profile.title,
            profile.description,
        )
        profiles[profile.id] = document
        lint += lint_document(f"profile {profile.id}", document, origins)
    if not gateway.profiles:
        lint += lint_document("openapi.json", merged, origins)

    return Documents(merged, profiles, _ai_plugin(config, merged), tuple(lint), errors)


def _document(
    config: Config,
    routes: list[Route],
    compiled: Mapping[str, CompiledRoute],
    schemas: Mapping[str, Any],
    auth_specs: Mapping[str, InboundAuthSpec],
    title: str,
    description: str,
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    used_auth: set[str] = set()
    for route in routes:
        auth = compiled[route.id].auth
        if auth is not None:
            used_auth.add(auth.id)
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, auth)
    referenced = _referenced_schemas(paths, schemas)
    components: dict[str, Any] = {
        "schemas": {name: copy.deepcopy(schemas[name]) for name in sorted(referenced)}
        | {"Problem": PROBLEM_SCHEMA},
    }
    security_schemes = {
        name: _security_scheme(auth_specs[name], config) for name in sorted(used_auth)
    }
    if security_schemes:
        components["securitySchemes"] = security_schemes
    gateway = config.gateway
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "description": description, "version": gateway.info.version},
        "servers": [{"url": gateway.server.public_url.rstrip("/")}],
        "paths": paths,
        "components": components,
    }


def _operation(route: Route, auth: InboundAuthSpec | None) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.id}
    if route.summary:
        operation["summary"] = route.summary
    if route.description:
        operation["description"] = route.description
    if route.tags:
        operation["tags"] = list(route.tags)
    parameters = [_parameter(param, "path", True) for param in path_params(route)]
    parameters += [_parameter(param, "query", param.required) for param in route.query]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        body: dict[str, Any] = {
            "required": route.body.required,
            "content": {"application/json": {"schema": rewrite_refs(route.body.schema, set(), [])}},
        }
        if route.body.description:
            body["description"] = route.body.description
        operation["requestBody"] = body
    success: dict[str, Any] = {"description": route.response.description}
    if route.response.schema is not None:
        schema = rewrite_refs(route.response.schema, set(), [])
        success["content"] = {"application/json": {"schema": schema}}
    status = str(route.response.status or 200)
    problem = {"application/problem+json": {"schema": {"$ref": COMPONENTS_PREFIX + "Problem"}}}
    operation["responses"] = {
        status: success,
        "default": {"description": "Error", "content": problem},
    }
    operation["security"] = [{auth.id: list(route.scopes)}] if auth is not None else []
    consequential = route.consequential
    operation["x-openai-isConsequential"] = (
        consequential if consequential is not None else route.method != "GET"
    )
    return operation


def _parameter(param: Param, location: str, required: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": param.type}
    for key, value in (
        ("enum", param.enum),
        ("minimum", param.minimum),
        ("maximum", param.maximum),
        ("minLength", param.min_length),
        ("maxLength", param.max_length),
        ("pattern", param.pattern),
        ("default", param.default),
    ):
        if value is not None:
            schema[key] = value
    parameter: dict[str, Any] = {
        "name": param.name,
        "in": location,
        "required": required,
        "schema": schema,
    }
    if param.description:
        parameter["description"] = param.description
    return parameter


def _security_scheme(spec: InboundAuthSpec, config: Config) -> dict[str, Any]:
    if spec.type == "oauth":
        base = config.gateway.server.public_url.rstrip("/")
        oauth = config.gateway.oauth
        return {
            "type": "oauth2",
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": f"{base}/oauth/authorize",
                    "tokenUrl": f"{base}/oauth/token",
                    "refreshUrl": f"{base}/oauth/token",
                    "scopes": dict(oauth.scopes) if oauth else {},
                }
            },
        }
    if spec.type == "api_key":
        if spec.header:
            return {"type": "apiKey", "in": "header", "name": spec.header}
        return {"type": "apiKey", "in": "query", "name": spec.query}
    scheme: dict[str, Any] = {"type": "http", "scheme": "bearer"}
    if spec.jwt_only:
        scheme["bearerFormat"] = "JWT"
    return scheme


def _referenced_schemas(value: Any, schemas: Mapping[str, Any]) -> set[str]:
    """Names of shared schemas reachable from ``value`` (transitively)."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(COMPONENTS_PREFIX):
                name = ref[len(COMPONENTS_PREFIX) :]
                if name in schemas and name not in found:
                    found.add(name)
                    pending.append(schemas[name])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _ai_plugin(config: Config, merged: Mapping[str, Any]) -> dict[str, Any]:
    info = config.gateway.info
    base = config.gateway.server.public_url.rstrip("/")
    schemes = merged["components"].get("securitySchemes", {})
    auth: dict[str, Any] = {"type": "none"}
    if len(schemes) == 1:
        (scheme,) = schemes.values()
        if scheme["type"] == "oauth2":
            flow = scheme["flows"]["authorizationCode"]
            auth = {
                "type": "oauth",
                "client_url": flow["authorizationUrl"],
                "authorization_url": flow["tokenUrl"],
                "authorization_content_type": "application/x-www-form-urlencoded",
                "scope": " ".join(flow["scopes"]),
            }
        else:
            auth = (
                {"type": "user_http", "authorization_type": "bearer"}
                if scheme["type"] == "http"
                else {"type": "service_http", "authorization_type": "bearer"}
            )
    manifest: dict[str, Any] = {
        "schema_version": "v1",
        "name_for_human": info.title[:20],
        "name_for_model": info.name_for_model,
        "description_for_human": info.description[:100],
        "description_for_model": info.description[:8000],
        "auth": auth,
        "api": {"type": "openapi", "url": f"{base}/openapi.json"},
        "contact_email": info.contact_email,
    }
    if info.logo_url:
        manifest["logo_url"] = info.logo_url
    manifest["legal_info_url"] = info.legal_info_url or f"{base}/docs"
    return manifest
