"""Compile gateway.yaml `auth:` (how callers prove themselves) and `admin:`."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.compiler.collect import Compilation, missing_under
from gateway.config.model import ApiKeyAuth, OAuthInbound
from gateway.snapshot import InboundAuthSpec, MetricsAccess

__all__ = ["InboundSchemes", "compile_admin", "compile_auth", "compile_metrics"]


@dataclass(frozen=True)
class InboundSchemes:
    """The declared schemes by id, and the unset variables of those that lack some."""

    specs: dict[str, InboundAuthSpec] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)

    def unknown(self, name: str) -> str:
        known = ", ".join(["none", *sorted(self.specs)])
        return f"auth scheme `{name}` is not declared in gateway.yaml (known: {known})"

    def unconfigured(self, name: str) -> str | None:
        if name not in self.missing:
            return None
        return f'auth "{name}" is not configured: set {", ".join(self.missing[name])}'

    def resolve(self, declared: str | list[str] | None, default: str | list[str]) -> list[str]:
        """The scheme names a route's `auth:` gives (one, a list, or the default);
        `[]` for `none`."""
        chosen = default if declared is None else declared
        names = [chosen] if isinstance(chosen, str) else chosen
        return [name for name in names if name != "none"]


def compile_auth(run: Compilation) -> InboundSchemes:
    schemes = InboundSchemes()
    source = run.gateway_source
    gateway_missing = source.missing if source else ()
    for index, scheme in enumerate(run.config.gateway.auth):
        path = f"$.auth[{index}]"
        if scheme.id in schemes.specs or scheme.id == "none":
            run.error(source, f"{path}.id", f"auth scheme `{scheme.id}` is declared twice")
            continue
        variables = missing_under(gateway_missing, path)
        if variables:
            schemes.missing[scheme.id] = variables
        if isinstance(scheme, ApiKeyAuth):
            entries = [
                (entry, None) if isinstance(entry, str) else (entry.key, entry.user or None)
                for entry in scheme.keys
            ]
            entries = [(key, user) for key, user in entries if key]
            if not entries and not variables:
                run.error(source, f"{path}.keys", "at least one key is required")
            schemes.specs[scheme.id] = InboundAuthSpec(
                scheme.id,
                "api_key",
                keys=tuple(key.encode() for key, _ in entries),
                header=scheme.header,
                query=scheme.query,
                users=tuple(user for _, user in entries),
                unconfigured=schemes.unconfigured(scheme.id),
            )
        elif isinstance(scheme, OAuthInbound):
            if run.config.gateway.oauth is None:
                run.error(
                    source,
                    f"{path}.type",
                    "an `oauth` scheme needs the `oauth:` section (clients, scopes)",
                )
            schemes.specs[scheme.id] = InboundAuthSpec(scheme.id, "oauth")
        else:
            schemes.specs[scheme.id] = InboundAuthSpec(
                scheme.id, "bearer_passthrough", jwt_only=scheme.format == "jwt"
            )
    default = run.config.gateway.defaults.auth
    for position, name in enumerate([default] if isinstance(default, str) else default):
        where = "$.defaults.auth" if isinstance(default, str) else f"$.defaults.auth[{position}]"
        if name != "none" and name not in schemes.specs:
            run.error(source, where, schemes.unknown(name))
    return schemes


def compile_admin(run: Compilation) -> InboundAuthSpec:
    """Who may call /admin/*: an api_key spec (no keys: the admin API is off)."""
    admin = run.config.gateway.admin
    keys = tuple(key.encode() for key in admin.keys if key)
    return InboundAuthSpec("admin", "api_key", keys=keys, header=admin.header)


def compile_metrics(run: Compilation) -> MetricsAccess:
    """Who may scrape /metrics: its bearer keys (empty ones dropped), or anyone if public."""
    metrics = run.config.gateway.metrics
    keys = tuple(key.encode() for key in metrics.keys if key)
    return MetricsAccess(keys=keys, public=metrics.public)
