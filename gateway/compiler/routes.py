"""Compile one route into its kind: a ProxyRoute, a StaticRoute or a PluginRoute."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jsonschema

from gateway.compiler.collect import Compilation, missing_under, schema_path
from gateway.compiler.handlers import HandlerDeclaration, compile_handler
from gateway.compiler.inbound import InboundSchemes
from gateway.compiler.schemas import unknown_schema
from gateway.compiler.table import RESERVED_PATHS, RESERVED_PREFIXES, path_shape
from gateway.compiler.templates import ERROR_NAMES, REQUEST_NAMES, RESPONSE_NAMES
from gateway.compiler.upstreams import DEFAULT_TIMEOUT, DeclaredUpstream, retry_policy
from gateway.compiler.validation import (
    PATH_PARAM,
    body_validator,
    fast_check,
    path_params,
    rewrite_refs,
)
from gateway.config.load import LoadedRoutes
from gateway.config.model import Param, Route, Upstream
from gateway.config.source import SourceFile
from gateway.snapshot import (
    BodyValidator,
    CompiledRoute,
    InboundAuthSpec,
    ParamValidator,
    PassthroughAuth,
    PluginRoute,
    ProxyRoute,
    RateLimitSpec,
    ResponseShape,
    StaticRoute,
    UpstreamCall,
    UserTokenSpec,
)

__all__ = ["check_params", "compile_route"]


def compile_route(
    run: Compilation,
    loaded: LoadedRoutes,
    index: int,
    route: Route,
    upstreams: Mapping[str, DeclaredUpstream],
    schemes: InboundSchemes,
    schemas: Mapping[str, Any],
) -> CompiledRoute | None:
    """The route compiled into its kind, or None (its mistakes are recorded)."""
    source = loaded.source
    path = f"$.routes[{index}]"
    mark = run.mark()
    run.declare_id(route.id, source, f"{path}.id")
    run.declare_path(route.method, path_shape(route.path), source, f"{path}.path", route.id)
    if route.path in RESERVED_PATHS or route.path.startswith(RESERVED_PREFIXES):
        run.error(source, f"{path}.path", f"path `{route.path}` is reserved by the gateway")

    file_upstream = loaded.content.upstream
    handler = None
    if route.handler is not None:
        declaration = HandlerDeclaration(
            source,
            path,
            route.handler,
            route.settings,
            route.upstreams,
            route.retry,
            file_upstream,
        )
        handler = compile_handler(run, declaration, upstreams)
    if route.static and route.handler is not None:
        run.error(source, f"{path}.static", "a route is `static` or has a `handler`, not both")
    if file_upstream is None and not route.static and route.handler is None:
        run.error(
            source,
            path,
            f"route `{route.id}` has no upstream: add `upstream:` to {source.name} "
            "or set `static: true`",
        )
    if route.static and route.response.body is None:
        run.error(source, f"{path}.response", "a static route needs `response.body`")

    accepts = _accepts(run, source, path, route, schemes)
    auth = accepts[0] if accepts else None
    scopes = _scopes(route, file_upstream)
    _check_scopes(run, source, path, route, scopes, any(a.type == "oauth" for a in accepts))
    declared_path_params = _path_params(run, source, path, route)
    body = _body(run, source, path, route, schemas)
    for kind, params in (("query", route.query), ("path_params", route.path_params)):
        check_params(run, source, f"{path}.{kind}", params)

    call = route.upstream
    # By default the upstream path is the route's, its `{name}` parameters filled in.
    default_path = PATH_PARAM.sub(r"{{ path.\1 }}", route.path)
    upstream_path = run.template(
        source,
        f"{path}.upstream.path",
        call.path or default_path,
        REQUEST_NAMES,
        upstream_path=True,
    )
    upstream_query = None
    if call.query is not None:
        upstream_query = {
            key: run.template(source, f"{path}.upstream.query.{key}", value, REQUEST_NAMES)
            for key, value in call.query.items()
        }
    upstream_headers = {
        key: run.template(source, f"{path}.upstream.headers.{key}", value, REQUEST_NAMES)
        for key, value in call.headers.items()
    }
    upstream_body = run.template(source, f"{path}.upstream.body", call.body, REQUEST_NAMES)
    response = route.response
    names = RESPONSE_NAMES
    response_body = run.template(source, f"{path}.response.body", response.body, names)
    fail_when = run.template(source, f"{path}.response.fail_when", response.fail_when, names)
    fail_message = run.template(
        source, f"{path}.response.fail_message", response.fail_message, names
    )
    error_body = run.template(
        source, f"{path}.response.error_body", response.error_body, ERROR_NAMES
    )
    rate_limit = _rate_limit(run, source, path, route, file_upstream)
    if run.failed_since(mark):
        return None

    declared_upstream = upstreams.get(file_upstream.name) if file_upstream else None
    common: dict[str, Any] = {
        "id": route.id,
        "method": route.method,
        "path": route.path,
        "file": source.name,
        "line": source.locate(path)[0],
        "auth": auth,
        "accepts": tuple(accepts),
        "scopes": scopes,
        "query_validator": ParamValidator.build("query", route.query),
        "path_validator": ParamValidator.build("path", declared_path_params),
        "body": body,
        "rate_limit": rate_limit,
        "response_status": response.status,
        "max_chars": response.max_chars or run.config.gateway.defaults.max_response_chars,
        "unconfigured": _unconfigured(loaded, index, declared_upstream, accepts)
        or (handler.unconfigured if handler is not None else None),
        "error_body": error_body,
    }
    if handler is not None:
        if handler.target is None:
            return None  # unresolvable: recorded as an error above
        return PluginRoute(**common, plugin=handler.target, clients=handler.clients)
    if route.static:
        if response_body is None:
            return None  # recorded above: a static route needs `response.body`
        return StaticRoute(**common, answer=response_body)
    if declared_upstream is None or upstream_path is None:
        return None  # a duplicate upstream name: recorded as an error above
    shape = None
    if response_body is not None or fail_when is not None:
        shape = ResponseShape(response_body, fail_when, fail_message)
    settings = declared_upstream.settings
    return ProxyRoute(
        **common,
        upstream=declared_upstream.binding(retry_policy(run, route.retry, file_upstream)),
        call=UpstreamCall(
            method=call.method or route.method,
            path=upstream_path,
            query=_present(upstream_query),
            headers=_present(upstream_headers) or {},
            body=upstream_body,
        ),
        timeout=route.timeout or settings.timeout or DEFAULT_TIMEOUT,
        shape=shape,
        pass_statuses=_pass_statuses(route, declared_upstream),
    )


DEFAULT_PASS_STATUSES = frozenset({404, 429})
CREDENTIAL_STATUSES = frozenset({401, 403})


def _pass_statuses(route: Route, upstream: DeclaredUpstream) -> frozenset[int]:
    """What the caller can act on: not found, slow down, and (when the caller's own token is
    passed through) a refused credential."""
    if route.response.pass_statuses is not None:
        return frozenset(route.response.pass_statuses)
    if isinstance(upstream.auth, (PassthroughAuth, UserTokenSpec)):
        return DEFAULT_PASS_STATUSES | CREDENTIAL_STATUSES
    return DEFAULT_PASS_STATUSES


def _present(templates: dict[str, Any] | None) -> dict[str, Any] | None:
    """The templates that compiled (all of them, once the route has no errors)."""
    if templates is None:
        return None
    return {key: value for key, value in templates.items() if value is not None}


def _accepts(
    run: Compilation, source: SourceFile, path: str, route: Route, schemes: InboundSchemes
) -> list[InboundAuthSpec]:
    """The schemes that open the route, in the declared order; [] for `none`."""
    if isinstance(route.auth, list):
        if not route.auth:
            run.error(source, f"{path}.auth", "name at least one auth scheme, or `none`")
        elif "none" in route.auth and len(route.auth) > 1:
            run.error(source, f"{path}.auth", "`none` cannot be combined with other schemes")
    names = schemes.resolve(route.auth, run.config.gateway.defaults.auth)
    accepts: list[InboundAuthSpec] = []
    for position, name in enumerate(names):
        where = f"{path}.auth[{position}]" if isinstance(route.auth, list) else f"{path}.auth"
        spec = schemes.specs.get(name)
        if spec is None:
            run.error(source, where, schemes.unknown(name))
        elif spec in accepts:
            run.error(source, where, f"auth scheme `{name}` is listed twice")
        else:
            accepts.append(spec)
    return accepts


def _scopes(route: Route, upstream: Upstream | None) -> tuple[str, ...]:
    """The route's own scopes, else its file's upstream's."""
    if route.scopes is not None:
        return tuple(route.scopes)
    return tuple(upstream.scopes) if upstream is not None else ()


def _check_scopes(
    run: Compilation,
    source: SourceFile,
    path: str,
    route: Route,
    scopes: tuple[str, ...],
    oauth: bool,
) -> None:
    if route.scopes and not oauth:
        run.error(source, f"{path}.scopes", "`scopes` need an `oauth` auth scheme")
    if not oauth:
        return
    oauth_settings = run.config.gateway.oauth
    declared = oauth_settings.scopes if oauth_settings else {}
    where = f"{path}.scopes" if route.scopes is not None else "$.upstream.scopes"
    for position, scope in enumerate(scopes):
        if scope not in declared:
            known = ", ".join(sorted(declared)) or "none"
            run.error(
                source,
                f"{where}[{position}]",
                f"scope `{scope}` is not declared in gateway.yaml `oauth.scopes` (known: {known})",
            )


def _body(
    run: Compilation, source: SourceFile, path: str, route: Route, schemas: Mapping[str, Any]
) -> BodyValidator | None:
    if route.body is None:
        return None
    missing: list[str] = []
    schema = rewrite_refs(route.body.schema, set(schemas), missing)
    for ref in missing:
        run.error(source, f"{path}.body.schema", unknown_schema(ref, set(schemas)))
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = f"{path}.body.schema{schema_path(exc)[1:]}"
        run.error(source, where, f"invalid JSON Schema: {exc.message}")
        return None
    if missing:
        return None
    validator = body_validator(schema, schemas)
    return BodyValidator(validator, route.body.required, fast_check(validator))


def _path_params(run: Compilation, source: SourceFile, path: str, route: Route) -> list[Param]:
    in_path = PATH_PARAM.findall(route.path)
    if len(set(in_path)) != len(in_path):
        run.error(source, f"{path}.path", f"path `{route.path}` repeats a parameter name")
    for index, param in enumerate(route.path_params):
        if param.name not in in_path:
            run.error(
                source,
                f"{path}.path_params[{index}].name",
                f"path parameter `{param.name}` does not appear in `{route.path}`",
            )
    return path_params(route)


def check_params(run: Compilation, source: SourceFile, path: str, params: list[Param]) -> None:
    seen: set[str] = set()
    for index, param in enumerate(params):
        if param.name in seen:
            run.error(
                source, f"{path}[{index}].name", f"parameter `{param.name}` is declared twice"
            )
        seen.add(param.name)
        if param.pattern is not None:
            try:
                re.compile(param.pattern)
            except re.error as exc:
                run.error(source, f"{path}[{index}].pattern", f"invalid regular expression: {exc}")


def _rate_limit(
    run: Compilation, source: SourceFile, path: str, route: Route, upstream: Upstream | None
) -> RateLimitSpec | None:
    """The route's own limit, else its upstream's (a budget shared by the file's routes)."""
    if route.rate_limit is not None:
        declared, scope, where = route.rate_limit, f"route:{route.id}", f"{path}.rate_limit.key"
    elif upstream is not None and upstream.rate_limit is not None:
        declared, scope = upstream.rate_limit, f"upstream:{upstream.name}"
        where = "$.upstream.rate_limit.key"
    else:
        return None
    if declared.key in ("ip", "api_key", "bearer"):
        return RateLimitSpec(declared.limit, declared.per, scope, declared.key)
    if "{{" not in declared.key:
        run.error(
            source, where, f"expected `ip`, `api_key`, `bearer` or a template, got {declared.key!r}"
        )
        return None
    template = run.template(source, where, declared.key, REQUEST_NAMES)
    return RateLimitSpec(declared.limit, declared.per, scope, "template", template)


def _unconfigured(
    loaded: LoadedRoutes,
    index: int,
    upstream: DeclaredUpstream | None,
    accepts: list[InboundAuthSpec],
) -> str | None:
    """Why the route answers 503: a secret of its upstream or of itself is unset, or every
    scheme it accepts lacks its keys (one configured scheme is enough to serve)."""
    if upstream is not None and upstream.loaded is loaded and upstream.unconfigured:
        return upstream.unconfigured
    if variables := missing_under(loaded.source.missing, f"$.routes[{index}]"):
        route_id = loaded.content.routes[index].id
        return f'route "{route_id}" is not configured: set {", ".join(variables)}'
    if accepts and all(spec.unconfigured for spec in accepts):
        return accepts[0].unconfigured
    return None
