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
    """The merged document and the profiles, each declaring exactly one security scheme
    and holding the routes that accept it (and those open to anyone)."""
    compiled = {route.id: route for route in routes}
    declared: list[Route] = [
        route
        for loaded in config.route_files
        for route in loaded.content.routes
        if route.id in compiled and route.include_in_schema
    ]
    origins = {route.id: (compiled[route.id].file, compiled[route.id].line) for route in declared}
    gateway = config.gateway
    errors: list[tuple[str, str]] = []
    lint: list[LintIssue] = []
    candidates = [route for route in declared if route.merged]
    merged_scheme = _merged_scheme(config, candidates, compiled, auth_specs, errors)
    merged_routes, left_out = _accepting(candidates, compiled, merged_scheme)
    merged = _document(
        config,
        merged_routes,
        compiled,
        schemas,
        merged_scheme,
        gateway.info.title,
        gateway.info.description,
    )
    lint += lint_document("openapi.json", merged, origins, MERGED_ADVICE)
    if left_out and merged_scheme is not None:
        names = ", ".join(route.id for route in left_out)
        lint.append(
            LintIssue(
                "warning",
                "openapi.json",
                f"leaves out {len(left_out)} route{'s' if len(left_out) > 1 else ''} that do "
                f"not accept `{merged_scheme.id}`: {names} (add `{merged_scheme.id}` to their "
                "`auth:`, or serve them in a profile)",
            )
        )

    profiles: dict[str, dict[str, Any]] = {}
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
        where = f"$.profiles[{index}].auth"
        scheme = _named_scheme(profile.auth, auth_specs, where, errors)
        if profile.auth is None:
            scheme = _common_scheme(list(chosen.values()), compiled, auth_specs, merged_scheme)
            if scheme is None and _needs_scheme(chosen.values(), compiled):
                errors.append(
                    (
                        f"profile `{profile.id}`: its routes accept no auth scheme in common; "
                        "set `auth:` to the one its document declares (routes that do not "
                        "accept it are left out)",
                        f"$.profiles[{index}]",
                    )
                )
        included, _ = _accepting(list(chosen.values()), compiled, scheme)
        document = _document(
            config,
            included,
            compiled,
            schemas,
            scheme,
            profile.title,
            profile.description,
        )
        profiles[profile.id] = document
        lint += lint_document(f"profile {profile.id}", document, origins, PROFILE_ADVICE)

    return Documents(merged, profiles, _ai_plugin(config, merged), tuple(lint), errors)


MERGED_ADVICE = "leave routes out of it with `merged: false` on them, or serve them in a profile"
PROFILE_ADVICE = "take routes out of the profile, or split it in two"


def _named_scheme(
    name: str | None,
    auth_specs: Mapping[str, InboundAuthSpec],
    where: str,
    errors: list[tuple[str, str]],
) -> InboundAuthSpec | None:
    if name is None:
        return None
    spec = auth_specs.get(name)
    if spec is None:
        known = ", ".join(sorted(auth_specs)) or "none"
        errors.append((f"auth scheme `{name}` is not declared in `auth` (known: {known})", where))
    return spec


def _merged_scheme(
    config: Config,
    routes: list[Route],
    compiled: Mapping[str, CompiledRoute],
    auth_specs: Mapping[str, InboundAuthSpec],
    errors: list[tuple[str, str]],
) -> InboundAuthSpec | None:
    """`openapi.auth`; else the gateway's sign-in (the first `oauth` scheme) when a route
    accepts it; else the scheme most routes accept (the first declared on a tie)."""
    named = config.gateway.openapi.auth
    if named is not None:
        return _named_scheme(named, auth_specs, "$.openapi.auth", errors)
    counts = {
        spec.id: sum(1 for route in routes if spec in compiled[route.id].accepts)
        for spec in auth_specs.values()
    }
    for spec in auth_specs.values():
        if spec.type == "oauth" and counts[spec.id]:
            return spec
    best = max(auth_specs.values(), key=lambda spec: counts[spec.id], default=None)
    return best if best is not None and counts[best.id] else None


def _common_scheme(
    routes: list[Route],
    compiled: Mapping[str, CompiledRoute],
    auth_specs: Mapping[str, InboundAuthSpec],
    preferred: InboundAuthSpec | None,
) -> InboundAuthSpec | None:
    """A scheme every route with auth accepts: ``preferred`` if it is one, else the first
    declared."""
    guarded = [compiled[route.id].accepts for route in routes if compiled[route.id].accepts]
    common = [spec for spec in auth_specs.values() if all(spec in accepts for accepts in guarded)]
    if not guarded or not common:
        return None
    return preferred if preferred in common else common[0]


def _needs_scheme(routes: Iterable[Route], compiled: Mapping[str, CompiledRoute]) -> bool:
    return any(compiled[route.id].accepts for route in routes)


def _accepting(
    routes: list[Route], compiled: Mapping[str, CompiledRoute], scheme: InboundAuthSpec | None
) -> tuple[list[Route], list[Route]]:
    """(the routes a document with ``scheme`` holds: those accepting it and those open to
    anyone; the others)."""
    kept: list[Route] = []
    left_out: list[Route] = []
    for route in routes:
        accepts = compiled[route.id].accepts
        (kept if not accepts or scheme in accepts else left_out).append(route)
    return kept, left_out


def _document(
    config: Config,
    routes: list[Route],
    compiled: Mapping[str, CompiledRoute],
    schemas: Mapping[str, Any],
    scheme: InboundAuthSpec | None,
    title: str,
    description: str,
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    secured = False
    for route in routes:
        route_scheme = scheme if compiled[route.id].accepts else None
        secured = secured or route_scheme is not None
        operation = _operation(route, route_scheme, compiled[route.id].scopes)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    referenced = _referenced_schemas(paths, schemas)
    components: dict[str, Any] = {
        "schemas": {name: copy.deepcopy(schemas[name]) for name in sorted(referenced)}
        | {"Problem": PROBLEM_SCHEMA},
    }
    if scheme is not None and secured:
        components["securitySchemes"] = {scheme.id: _security_scheme(scheme, config)}
    gateway = config.gateway
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "description": description, "version": gateway.info.version},
        "servers": [{"url": gateway.server.public_url.rstrip("/")}],
        "paths": paths,
        "components": components,
    }


def _operation(
    route: Route, auth: InboundAuthSpec | None, scopes: tuple[str, ...]
) -> dict[str, Any]:
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
    if auth is None:
        operation["security"] = []
    else:
        operation["security"] = [{auth.id: list(scopes) if auth.type == "oauth" else []}]
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
