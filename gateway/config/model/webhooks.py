"""A route file's `webhooks:` and `schedules:`."""

from __future__ import annotations

# msgspec passes `frozen` down to subclasses; mypy's dataclass_transform model does not see it.
# mypy: disable-error-code="misc"
from typing import Annotated, Any, Literal

import msgspec

from gateway.config.fields import (
    Duration,
    HeaderName,
    Identifier,
    ModuleRef,
    ParamName,
    WebhookPath,
)
from gateway.config.model.common import Base, RateLimit, StatusCode, Template
from gateway.config.model.routes import Param

__all__ = [
    "HmacVerify",
    "NoVerify",
    "Ping",
    "Schedule",
    "UrlSecret",
    "Webhook",
    "WebhookResponse",
    "WebhookRetry",
]


class NoVerify(Base, tag="none", tag_field="type"):
    """No signature (the sender signs nothing, like OMI); restrict by secret query or network."""


class HmacVerify(Base, tag="hmac", tag_field="type"):
    """An HMAC of the raw request bytes in a header, compared in constant time.

    With `timestamp_header`, the signed content is `signed` (default `{timestamp}.{body}`)
    and requests older or newer than `tolerance` are refused (replays).
    """

    header: HeaderName
    """The header carrying the signature."""
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    """The HMAC's hash function."""
    prefix: str = ""
    """Text before the digest in the header, e.g. `sha1=`."""
    encoding: Literal["hex", "base64"] = "hex"
    """How the digest is written in the header (hex in either case)."""
    secrets: list[str] = []
    """Every accepted secret (rotation: old and new side by side)."""
    secret: str | None = None
    """One secret; shorthand for `secrets: [...]`."""
    timestamp_header: HeaderName | None = None
    """A header with the send time (seconds or milliseconds since the epoch),
    signed with the body so that replays are refused."""
    tolerance: Duration | None = None
    """How far the timestamp may be from now (default 5m)."""
    signed: str | None = None
    """The signed content: `{body}` and `{timestamp}` are replaced by the raw bytes."""
    optional: bool = False
    """`true`: with no non-empty secret (its variables unset), requests are not verified and
    a warning is logged at load; `false` (default): no secret is a config error, an unset
    `${VAR}` makes the webhook answer 503."""


class UrlSecret(Base):
    """A shared secret the sender carries in the webhook URL (`...?key=<secret>`), for
    senders that sign nothing (OMI). Compared in constant time against every secret; the
    parameter is removed before the event is queued and is never logged.

    Failed guesses are throttled per client IP (`server.failed_auth_limit`).
    """

    param: ParamName = "key"
    """The query parameter carrying the secret."""
    secrets: list[str] = []
    """Every accepted secret (rotation: old and new side by side)."""
    secret: str | None = None
    """One secret; shorthand for `secrets: [...]`."""
    optional: bool = False
    """`true`: with no non-empty secret (its variables unset), the check is off and a
    warning is logged at load; `false` (default): no secret is a config error, an unset
    `${VAR}` makes the webhook answer 503."""


class Ping(Base):
    """A handshake the sender's setup sends: answered at once, never queued."""

    when: Template
    """Truthy for a handshake, e.g. `{{ body.topic == "ping" }}`."""
    body: Template = '{{ {"status": "pong"} }}'
    """The answer to the handshake (default `{"status": "pong"}`)."""


class WebhookResponse(Base):
    """What the sender gets once its event is safely queued."""

    status: StatusCode = 200
    """The answer's status; a 2xx."""
    body: Template | None = None
    """Template over `event_id`, `body` and `query` (default `{"status": "queued", "id": ...}`)."""


class WebhookRetry(Base):
    """How a failed event is retried before it becomes a dead letter."""

    attempts: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5
    """Total attempts, the first included."""
    backoff: list[Duration] | None = None
    """Wait before each retry; the last value repeats (default 1s, 5s, 30s, 2m)."""


class Webhook(Base):
    """An endpoint a sender pushes events to: verified, de-duplicated, queued, answered 2xx.

    The handler (a plugin) runs later, from the durable queue, with retries.
    """

    id: Identifier
    """Unique across all files, among route, webhook and schedule ids."""
    path: WebhookPath
    """The path the sender calls; it has no parameters (use `query`)."""
    handler: ModuleRef
    """The plugin `module:function` that processes each event (from the queue)."""
    method: Literal["POST", "PUT"] = "POST"
    """The HTTP method the sender calls with."""
    verify: NoVerify | HmacVerify = NoVerify()
    """How a request is proven to come from the sender (default `none`)."""
    url_secret: UrlSecret | None = None
    """A shared secret in the webhook URL's query, checked before anything else (default:
    none)."""
    query: list[Param] = []
    """Query parameters the sender appends (validated; missing required ones are a 400)."""
    head: bool = True
    """Answer HEAD with 200 (URL validation by Intercom and others)."""
    ping: Ping | None = None
    """A handshake the sender sends, answered at once (default: none)."""
    dedupe_key: Template | None = None
    """Template over `body`, `query`, `headers`; a key seen before is answered 2xx, dropped."""
    user: Template | None = None
    """Template over `body`, `query`, `headers` naming whose event it is (e.g.
    `{{ query.uid }}`): it must be a user of this gateway (an `oauth.users` `user_id` or the
    `user` of an api key), else 403 and nothing is queued (default: not checked)."""
    rate_limit: RateLimit | None = None
    """At most `limit` events per `per` for each `key`: `ip` or a template such as
    `{{ query.uid }}`; beyond it 429 with Retry-After, nothing queued (default: none)."""
    settings: dict[str, Any] = {}
    """The handler's settings, checked against the plugin's `Settings` Struct."""
    upstreams: list[Identifier] = []
    """Upstreams whose clients the handler gets (default: this file's upstream)."""
    retry: WebhookRetry = WebhookRetry()
    """How a failed event is retried."""
    response: WebhookResponse = WebhookResponse()
    """What the sender gets once its event is queued."""


class Schedule(Base):
    """A handler run every `every`, by one replica at a time (a lock in the store)."""

    id: Identifier
    """Unique across all files, among route, webhook and schedule ids."""
    every: Duration
    """How often the handler runs (at least every 1s)."""
    handler: ModuleRef
    """The plugin `module:function` that is run."""
    enabled: bool = True
    """`false` stops the schedule (it is still checked)."""
    settings: dict[str, Any] = {}
    """The handler's settings, checked against the plugin's `Settings` Struct."""
    upstreams: list[Identifier] = []
    """Upstreams whose clients the handler gets (default: this file's upstream)."""
