"""Compiled webhooks, schedules and the queue's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.snapshot.plugins import PluginTarget
from gateway.snapshot.routes import RateLimitSpec
from gateway.snapshot.templates import CompiledTemplate
from gateway.snapshot.upstreams import UpstreamBinding
from gateway.snapshot.validation import ParamValidator

__all__ = ["CompiledSchedule", "CompiledWebhook", "HmacSpec", "QueueSpec", "UrlSecretSpec"]


@dataclass(frozen=True, slots=True)
class HmacSpec:
    """How a webhook's signature is checked (see HmacVerify in the config model)."""

    header: str
    algorithm: str
    prefix: str
    encoding: str
    secrets: tuple[bytes, ...] = field(repr=False)
    timestamp_header: str | None
    tolerance: float
    signed: bytes
    """The signed content with `{body}` and `{timestamp}` placeholders."""


@dataclass(frozen=True, slots=True)
class UrlSecretSpec:
    """The shared secret a sender carries in the webhook URL (see UrlSecret in the model)."""

    param: str
    secrets: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class CompiledWebhook:
    """Everything needed to receive one webhook and to run its handler from the queue."""

    id: str
    method: str
    path: str
    file: str
    line: int
    hmac: HmacSpec | None
    query_validator: ParamValidator
    head: bool
    ping_when: CompiledTemplate | None
    ping_body: CompiledTemplate | None
    dedupe_key: CompiledTemplate | None
    response_status: int
    response_body: CompiledTemplate | None
    attempts: int
    backoff: tuple[float, ...]
    plugin: PluginTarget | None
    """None only while the webhook is unconfigured (its settings lack a variable)."""
    clients: Mapping[str, UpstreamBinding]
    unconfigured: str | None
    url_secret: UrlSecretSpec | None = None
    """None: no secret in the URL is asked for (not declared, or optional and unset)."""
    user: CompiledTemplate | None = None
    """Renders whose event it is; it must be one of ``users``."""
    users: frozenset[str] = frozenset()
    """The user ids of this gateway (oauth users, api key users), when ``user`` is set."""
    rate_limit: RateLimitSpec | None = None
    warnings: tuple[str, ...] = ()
    """What the operator is told once at load (a check that is off for want of a secret)."""

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 = the first retry)."""
        if not self.backoff:
            return 0.0
        return self.backoff[min(attempt - 2, len(self.backoff) - 1)]


@dataclass(frozen=True, slots=True)
class CompiledSchedule:
    id: str
    every: float
    enabled: bool
    plugin: PluginTarget | None
    """None only while the schedule is unconfigured (its settings lack a variable)."""
    clients: Mapping[str, UpstreamBinding]
    unconfigured: str | None


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """gateway.yaml `queue:` resolved (its defaults live in the config model, once)."""

    concurrency: int
    visibility_timeout: float
    dedupe_ttl: float
    dead_letters: int
    consume: bool
