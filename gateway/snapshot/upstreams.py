"""Compiled upstreams: the settings a pooled client is built from, and how calls prove
themselves upstream (outbound auth)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.sealed import Sealer

__all__ = [
    "IDEMPOTENT_METHODS",
    "ConnectableAuth",
    "OAuth2ClientSpec",
    "OutboundAuth",
    "PassthroughAuth",
    "RetryPolicy",
    "UpstreamBinding",
    "UpstreamSettings",
    "UserTokenSpec",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """What one pooled upstream client is built from; equal settings share one client."""

    name: str
    base_url: str
    timeout: float
    connect_timeout: float
    max_connections: int
    max_answer_bytes: int = 10_485_760


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts for idempotent methods, the statuses that earn another try, the first pause."""

    attempts: int
    on_status: frozenset[int]
    backoff: float
    deadline: float = 40.0
    """Seconds for all attempts together; a retry that would not fit is not made."""


@dataclass(frozen=True, slots=True)
class PassthroughAuth:
    """The caller's own credential, copied from this inbound header to the upstream call."""

    header: str


@dataclass(frozen=True, slots=True)
class OAuth2ClientSpec:
    """The gateway as an OAuth 2 client of one upstream (authorization code + refresh):
    each call carries the user's access token, refreshed once when refused."""

    upstream: str
    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str
    token_url: str
    redirect_uri: str
    scopes: tuple[str, ...]
    authorize_params: Mapping[str, str]
    refresh_margin: float
    connect_url: str = ""
    """Where a signed-in user connects this upstream: `<public_url>/connections/<name>`."""
    sealer: Sealer | None = field(default=None, repr=False, compare=False)
    """Encrypts the tokens kept in the store (None: no key for a durable store)."""


@dataclass(frozen=True, slots=True)
class UserTokenSpec:
    """Each signed-in user's own credential for one upstream, pasted once at
    ``connect_url`` and kept sealed; a caller's own passed-through token goes first."""

    upstream: str
    header: str
    prefix: str
    jwt_only: bool
    title: str
    instructions: str
    max_length: int
    connect_url: str
    sealer: Sealer | None = field(default=None, repr=False, compare=False)


OutboundAuth = PassthroughAuth | OAuth2ClientSpec | UserTokenSpec
"""The kinds of outbound auth that act per call; static credentials (bearer, header) are
part of ``UpstreamBinding.headers`` and need no flow."""

ConnectableAuth = OAuth2ClientSpec | UserTokenSpec
"""The kinds a user connects at /connections."""


@dataclass(frozen=True, slots=True)
class UpstreamBinding:
    """An upstream as one route or plugin calls it: its client, what every call carries
    (static headers with static credentials), the retry policy and the per-call auth."""

    settings: UpstreamSettings
    headers: Mapping[str, str]
    retry: RetryPolicy
    auth: OutboundAuth | None = None

    @property
    def name(self) -> str:
        return self.settings.name
