"""Compile what a webhook checks before it queues an event: the secret in its URL
(`url_secret`), whose event it is (`user`, one of the gateway's users) and its `rate_limit`.

A check declared `optional` whose secrets are all unset is off: it is left out of the
compiled webhook, its unset variables do not make the webhook unconfigured, and the
webhook carries a warning naming what to set (logged once at load).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.compiler.collect import Compilation
from gateway.compiler.oauth import oauth_accounts
from gateway.config.interpolate import MissingVariable
from gateway.config.load import Config
from gateway.config.model import ApiKeyAuth, ApiKeyUser, Webhook
from gateway.config.source import SourceFile
from gateway.snapshot import CompiledTemplate, RateLimitSpec, UrlSecretSpec

__all__ = [
    "Guards",
    "compile_guards",
    "known_users",
    "missing_except",
    "nonempty",
    "off_warning",
    "unset_under",
]


@dataclass(frozen=True)
class Guards:
    """A webhook's compiled guards; ``url_off`` lists what to set when an optional
    `url_secret` is off (None: not off)."""

    url_secret: UrlSecretSpec | None
    url_off: list[str] | None
    user: CompiledTemplate | None
    users: frozenset[str]
    rate_limit: RateLimitSpec | None
    warnings: tuple[str, ...]


def nonempty(secrets: list[str], secret: str | None) -> list[str]:
    """`secrets` and the `secret` shorthand together, without empty values (unset)."""
    return [value for value in [*secrets, *([secret] if secret is not None else [])] if value]


def _under(item: MissingVariable, prefix: str) -> bool:
    return item.path == prefix or item.path.startswith((prefix + ".", prefix + "["))


def unset_under(source: SourceFile, prefix: str) -> list[str]:
    """Every unset variable at ``prefix`` or below, with or without a `:-default`, in the
    order they are written."""
    found = [item for item in (*source.missing, *source.defaulted) if _under(item, prefix)]
    found.sort(key=lambda item: source.locate(item.path))
    return list(dict.fromkeys(item.variable for item in found))


def missing_except(source: SourceFile, prefix: str, excluded: list[str]) -> list[str]:
    """The unset variables (without default) under ``prefix`` but not under ``excluded``
    (the optional checks that are off: their variables do not block the webhook)."""
    found = {
        item.variable
        for item in source.missing
        if _under(item, prefix) and not any(_under(item, other) for other in excluded)
    }
    return sorted(found)


def known_users(config: Config) -> frozenset[str]:
    """The user ids of this gateway: the accounts that can sign in (`oauth.users` and
    `oauth.users_from`), and api keys' users."""
    gateway = config.gateway
    users = set()
    if gateway.oauth is not None:
        users |= {account.user_id for account in oauth_accounts(gateway.oauth).accounts}
    for scheme in gateway.auth:
        if isinstance(scheme, ApiKeyAuth):
            users |= {
                entry.user
                for entry in scheme.keys
                if isinstance(entry, ApiKeyUser) and entry.key and entry.user
            }
    return frozenset(users)


def compile_guards(
    run: Compilation, source: SourceFile, path: str, webhook: Webhook, names: frozenset[str]
) -> Guards:
    url_secret, url_off = _url_secret(run, source, path, webhook)
    user = run.template(source, f"{path}.user", webhook.user, names)
    users = known_users(run.config) if webhook.user is not None else frozenset()
    warnings = []
    if webhook.user is not None and not users:
        warnings.append(
            f'webhook "{webhook.id}" refuses every event: `user` must be a user of this '
            "gateway and none is configured (oauth.users, oauth.users_from, api keys with a user)"
        )
    return Guards(
        url_secret=url_secret,
        url_off=url_off,
        user=user,
        users=users,
        rate_limit=_rate_limit(run, source, path, webhook, names),
        warnings=tuple(warnings),
    )


def _url_secret(
    run: Compilation, source: SourceFile, path: str, webhook: Webhook
) -> tuple[UrlSecretSpec | None, list[str] | None]:
    declared = webhook.url_secret
    if declared is None:
        return None, None
    where = f"{path}.url_secret"
    if any(param.name == declared.param for param in webhook.query):
        run.error(
            source,
            f"{where}.param",
            f"parameter `{declared.param}` carries the URL secret: remove it from `query`",
        )
    secrets = nonempty(declared.secrets, declared.secret)
    if not secrets:
        if declared.optional:
            return None, unset_under(source, where)[:1] or ["`url_secret.secrets`"]
        if not missing_except(source, where, []):
            run.error(
                source,
                where,
                "`url_secret` needs `secret` or `secrets` "
                "(or `optional: true` to accept requests without one)",
            )
    return UrlSecretSpec(declared.param, tuple(s.encode() for s in secrets)), None


def _rate_limit(
    run: Compilation, source: SourceFile, path: str, webhook: Webhook, names: frozenset[str]
) -> RateLimitSpec | None:
    declared = webhook.rate_limit
    if declared is None:
        return None
    scope = f"webhook:{webhook.id}"
    if declared.per <= 0:
        run.error(source, f"{path}.rate_limit.per", "a rate limit's `per` must be more than 0s")
        return None
    if declared.key == "ip":
        return RateLimitSpec(declared.limit, declared.per, scope, "ip")
    where = f"{path}.rate_limit.key"
    if "{{" not in declared.key:
        run.error(
            source,
            where,
            "a webhook's rate limit key is `ip` or a template such as `{{ query.uid }}`, "
            f"got {declared.key!r}",
        )
        return None
    template = run.template(source, where, declared.key, names)
    return RateLimitSpec(declared.limit, declared.per, scope, "template", template)


def off_warning(
    webhook: Webhook, url: tuple[bool, list[str] | None], signature: tuple[bool, list[str] | None]
) -> str | None:
    """The one warning of a webhook an unset optional secret leaves open, or None.

    ``url`` and ``signature``: whether that check is on, and what to set when it is off.
    """
    (url_on, url_off), (signature_on, signature_off) = url, signature
    if url_off is None and signature_off is None:
        return None
    hint = " or ".join([*(url_off or []), *(signature_off or [])])
    name = f'webhook "{webhook.id}"'
    if not url_on and not signature_on:
        return (
            f"{name} is unauthenticated: anyone who can reach {webhook.path} can post to it "
            f"(set {hint})"
        )
    if url_off is not None:
        return f"{name} asks for no URL secret (set {hint}); only its signature is checked"
    return f"{name} checks no signature (set {hint}); only its URL secret is checked"
