"""Compile `webhooks:` and `schedules:` of each route file, and gateway.yaml `queue:`."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.compiler.collect import Compilation, missing_under
from gateway.compiler.handlers import HandlerDeclaration, compile_handler
from gateway.compiler.routes import check_params
from gateway.compiler.table import RESERVED_PATHS, RESERVED_PREFIXES, path_shape
from gateway.compiler.upstreams import DeclaredUpstream
from gateway.compiler.webhook_guards import (
    compile_guards,
    missing_except,
    nonempty,
    off_warning,
    unset_under,
)
from gateway.config.load import LoadedRoutes
from gateway.config.model import HmacVerify, Schedule, Webhook
from gateway.config.source import SourceFile
from gateway.snapshot import CompiledSchedule, CompiledWebhook, HmacSpec, ParamValidator, QueueSpec

__all__ = ["compile_queue", "compile_schedule", "compile_webhook"]

DEFAULT_TOLERANCE = 300.0
DEFAULT_WEBHOOK_BACKOFF = (1.0, 5.0, 30.0, 120.0)
DEFAULT_VISIBILITY = 30.0
DEFAULT_DEDUPE_TTL = 7 * 86400.0
WEBHOOK_NAMES = frozenset({"body", "query", "headers"})


def compile_webhook(
    run: Compilation,
    loaded: LoadedRoutes,
    index: int,
    webhook: Webhook,
    upstreams: Mapping[str, DeclaredUpstream],
) -> CompiledWebhook | None:
    source = loaded.source
    path = f"$.webhooks[{index}]"
    mark = run.mark()
    run.declare_id(webhook.id, source, f"{path}.id")
    run.declare_path(webhook.method, path_shape(webhook.path), source, f"{path}.path", webhook.id)
    if webhook.path in RESERVED_PATHS or webhook.path.startswith(RESERVED_PREFIXES):
        run.error(source, f"{path}.path", f"path `{webhook.path}` is reserved by the gateway")
    if "{" in webhook.path:
        run.error(source, f"{path}.path", "a webhook path has no parameters (use `query`)")
    check_params(run, source, f"{path}.query", webhook.query)
    handler = compile_handler(run, _declaration(loaded, path, webhook), upstreams)
    hmac_spec, hmac_off = _hmac(run, source, path, webhook)
    names = WEBHOOK_NAMES
    guards = compile_guards(run, source, path, webhook, names)
    ping_when = ping_body = None
    if webhook.ping is not None:
        ping_when = run.template(source, f"{path}.ping.when", webhook.ping.when, names)
        ping_body = run.template(source, f"{path}.ping.body", webhook.ping.body, names)
    dedupe = run.template(source, f"{path}.dedupe_key", webhook.dedupe_key, names)
    response_body = run.template(
        source, f"{path}.response.body", webhook.response.body, names | {"event_id"}
    )
    if not 200 <= webhook.response.status < 300:
        run.error(source, f"{path}.response.status", "a webhook answers 2xx once queued")
    if run.failed_since(mark):
        return None
    unconfigured = None
    if unset := missing_except(source, path, _optional_checks(webhook, path)):
        unconfigured = f'webhook "{webhook.id}" is not configured: set {", ".join(unset)}'
    warning = off_warning(
        webhook,
        (guards.url_secret is not None, guards.url_off),
        (hmac_spec is not None, hmac_off),
    )
    return CompiledWebhook(
        id=webhook.id,
        method=webhook.method,
        path=webhook.path,
        file=source.name,
        line=source.locate(path)[0],
        hmac=hmac_spec,
        query_validator=ParamValidator.build("query", webhook.query),
        head=webhook.head,
        ping_when=ping_when,
        ping_body=ping_body,
        dedupe_key=dedupe,
        response_status=webhook.response.status,
        response_body=response_body,
        attempts=webhook.retry.attempts,
        backoff=tuple(
            DEFAULT_WEBHOOK_BACKOFF if webhook.retry.backoff is None else webhook.retry.backoff
        ),
        plugin=handler.target,
        clients=handler.clients,
        unconfigured=unconfigured or handler.unconfigured,
        url_secret=guards.url_secret,
        user=guards.user,
        users=guards.users,
        rate_limit=guards.rate_limit,
        warnings=(*([warning] if warning else []), *guards.warnings),
    )


def _optional_checks(webhook: Webhook, path: str) -> list[str]:
    """Where the `optional` checks stand: their unset variables turn them off, not a 503."""
    found = []
    if webhook.url_secret is not None and webhook.url_secret.optional:
        found.append(f"{path}.url_secret")
    if isinstance(webhook.verify, HmacVerify) and webhook.verify.optional:
        found.append(f"{path}.verify")
    return found


def _hmac(
    run: Compilation, source: SourceFile, path: str, webhook: Webhook
) -> tuple[HmacSpec | None, list[str] | None]:
    """The signature check, and what to set when an `optional` one is off (no secret)."""
    verify = webhook.verify
    if not isinstance(verify, HmacVerify):
        return None, None
    missing = missing_under(source.missing, f"{path}.verify")
    secrets = nonempty(verify.secrets, verify.secret)
    if not secrets and not missing and not verify.optional:
        run.error(source, f"{path}.verify", "hmac verification needs `secret` or `secrets`")
    signed = verify.signed or ("{timestamp}.{body}" if verify.timestamp_header else "{body}")
    if "{body}" not in signed:
        run.error(source, f"{path}.verify.signed", "`signed` must contain `{body}`")
    if "{timestamp}" in signed and verify.timestamp_header is None:
        run.error(
            source,
            f"{path}.verify.signed",
            "`signed` uses `{timestamp}`: set `timestamp_header` too",
        )
    if not secrets and verify.optional:
        return None, unset_under(source, f"{path}.verify")[:1] or ["`verify.secrets`"]
    spec = HmacSpec(
        header=verify.header.lower(),
        algorithm=verify.algorithm,
        prefix=verify.prefix,
        encoding=verify.encoding,
        secrets=tuple(secret.encode() for secret in secrets),
        timestamp_header=verify.timestamp_header.lower() if verify.timestamp_header else None,
        tolerance=DEFAULT_TOLERANCE if verify.tolerance is None else verify.tolerance,
        signed=signed.encode(),
    )
    return spec, None


def compile_schedule(
    run: Compilation,
    loaded: LoadedRoutes,
    index: int,
    schedule: Schedule,
    upstreams: Mapping[str, DeclaredUpstream],
) -> CompiledSchedule | None:
    source = loaded.source
    path = f"$.schedules[{index}]"
    mark = run.mark()
    run.declare_id(schedule.id, source, f"{path}.id")
    if schedule.every < 1:
        run.error(source, f"{path}.every", "a schedule runs at most once a second")
    handler = compile_handler(run, _declaration(loaded, path, schedule), upstreams)
    if run.failed_since(mark):
        return None
    unconfigured = None
    if missing := missing_under(source.missing, path):
        unconfigured = f'schedule "{schedule.id}" is not configured: set {", ".join(missing)}'
    return CompiledSchedule(
        id=schedule.id,
        every=schedule.every,
        enabled=schedule.enabled,
        plugin=handler.target,
        clients=handler.clients,
        unconfigured=unconfigured or handler.unconfigured,
    )


def _declaration(loaded: LoadedRoutes, path: str, item: Webhook | Schedule) -> HandlerDeclaration:
    """A webhook's or schedule's handler: its clients default to the file's upstream."""
    return HandlerDeclaration(
        loaded.source,
        path,
        item.handler,
        item.settings,
        item.upstreams,
        None,
        loaded.content.upstream,
    )


def compile_queue(run: Compilation) -> QueueSpec:
    queue = run.config.gateway.queue
    return QueueSpec(
        concurrency=queue.concurrency,
        visibility_timeout=queue.visibility_timeout or DEFAULT_VISIBILITY,
        dedupe_ttl=queue.dedupe_ttl or DEFAULT_DEDUPE_TTL,
        dead_letters=queue.dead_letters,
        consume=queue.consume,
    )
