"""What a webhook request must pass before anything is queued, beyond its signature.

- the secret in its URL (`url_secret`): compared in constant time against every secret;
  failed guesses count per client IP (`server.failed_auth_limit`), and a locked-out IP gets
  429 with Retry-After for the window, the right secret included;
- whose event it is (`user`): one of the gateway's users, else 403;
- its rate limit (`rate_limit`): per `ip` or per rendered key, shared by replicas on Redis.

Each refusal is a :class:`Problem`; none of them spends the dedupe key or queues anything.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import msgspec

from gateway import metrics
from gateway.logs import logger
from gateway.serve.answers import Problem
from gateway.serve.exchange import client_ip, rate_limited, too_many_failures
from gateway.snapshot import CompiledTemplate, CompiledWebhook, Snapshot, UrlSecretSpec
from gateway.snapshot.templates import TEMPLATE_ERRORS
from gateway.store.ratelimit import RateLimiter
from gateway.store.throttle import Throttle

__all__ = ["WebhookGuards", "render", "secret_refusal"]

THROTTLE_KIND = "webhook_secret"
SHOWN_CHARS = 64  # of an untrusted value quoted back in a problem


class WebhookGuards:
    """``await guards.url_secret(snapshot, webhook, scope, query)`` and friends: each returns
    when the request may go on and raises a :class:`Problem` when it may not."""

    def __init__(self, throttle: Throttle, limiter: RateLimiter) -> None:
        self.throttle = throttle
        self.limiter = limiter

    async def url_secret(
        self,
        snapshot: Snapshot,
        webhook: CompiledWebhook,
        scope: dict[str, Any],
        query: Mapping[str, str],
    ) -> None:
        spec = webhook.url_secret
        if spec is None:
            return
        ip = client_ip(scope)
        if (wait := await self.throttle.blocked(THROTTLE_KIND, ip, None)) is not None:
            raise too_many_failures(wait)
        refusal = secret_refusal(spec, query.get(spec.param))
        if refusal is None:
            return
        logger.warning("webhook %s: refused: %s", webhook.id, refusal.detail)
        metrics.auth_failed(THROTTLE_KIND)
        limits = snapshot.failed_auth
        lockout = await self.throttle.failed(
            THROTTLE_KIND, ip, None, limits.failures, limits.window
        )
        if lockout is not None:
            raise too_many_failures(lockout) from None
        raise refusal

    @staticmethod
    def user(webhook: CompiledWebhook, context: dict[str, Any]) -> None:
        if webhook.user is None:
            return
        value = render(webhook, webhook.user, context)
        name = "" if value is None else str(value)
        if name not in webhook.users:
            detail = f"{_quoted(name)} is not a user of this gateway"
            logger.warning("webhook %s: refused: %s", webhook.id, detail)
            raise Problem(403, "unknown-user", detail)

    async def rate_limit(
        self, webhook: CompiledWebhook, scope: dict[str, Any], context: dict[str, Any]
    ) -> None:
        spec = webhook.rate_limit
        if spec is None:
            return
        if spec.template is None:  # `ip`
            caller = client_ip(scope)
        else:
            caller = str(render(webhook, spec.template, context))
        decision = await self.limiter.hit(f"{spec.scope}:{caller}", spec.limit, spec.period)
        if not decision.allowed:
            metrics.rate_limited(f"webhook:{webhook.id}")
            raise rate_limited(spec, decision)


def secret_refusal(spec: UrlSecretSpec, presented: str | None) -> Problem | None:
    """None when ``presented`` is one of the secrets (each compared in constant time)."""
    if not presented:
        return Problem(
            401,
            "secret-missing",
            f"missing webhook secret: add `{spec.param}=<secret>` to the webhook URL's query",
        )
    candidate = presented.encode()
    matched = False
    for secret in spec.secrets:  # every secret, so timing tells nothing about which one
        matched |= hmac.compare_digest(candidate, secret)
    if matched:
        return None
    return Problem(
        401, "secret-invalid", f"the webhook secret in the `{spec.param}` query parameter is wrong"
    )


def render(webhook: CompiledWebhook, template: CompiledTemplate, context: dict[str, Any]) -> Any:
    """``template`` over the request; a payload that does not fit it is the sender's 400."""
    try:
        return template.render(context)
    except TEMPLATE_ERRORS as exc:
        raise Problem(
            400,
            "unexpected-payload",
            f"webhook {webhook.id}: the payload does not fit: {type(exc).__name__}: {exc}",
        ) from None


def _quoted(value: str) -> str:
    """An untrusted value as a JSON string (quotes and control characters escaped), cut."""
    shown = value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "..."
    return msgspec.json.encode(shown).decode()
