"""The authorization server's compiled settings (gateway.yaml `oauth:`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.snapshot.plugins import PluginTarget

__all__ = ["IdentitySpec", "OAuthClientSpec", "OAuthSpec", "RegistrationSpec"]

REDIRECT_SEGMENT = "[A-Za-z0-9_-]+"
"""What one `*` of a redirect pattern matches (RFC 9700 4.1.3: no `.`, `%`, `\\`, `@`,
quotes or `/`, so a pattern cannot be walked out of with `..`, encodings or userinfo)."""


@dataclass(frozen=True, slots=True)
class OAuthClientSpec:
    id: str
    client_id: str
    """Empty: generated at the first start and kept in the store."""
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    """Exact URIs, or patterns whose `*` stands for one path segment."""
    scopes: tuple[str, ...]
    _redirects: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    """The redirect patterns, compiled once per snapshot (not per authorization)."""

    def __post_init__(self) -> None:
        patterns = tuple(_redirect_pattern(allowed) for allowed in self.redirect_uris)
        object.__setattr__(self, "_redirects", patterns)

    def allows_redirect(self, uri: str) -> bool:
        return any(pattern.fullmatch(uri) for pattern in self._redirects)


def _redirect_pattern(allowed: str) -> re.Pattern[str]:
    """`*` matches exactly one segment of REDIRECT_SEGMENT; everything else literally."""
    return re.compile(REDIRECT_SEGMENT.join(re.escape(part) for part in allowed.split("*")))


@dataclass(frozen=True, slots=True)
class IdentitySpec:
    """An external OpenID Connect provider users sign in with (`oauth.identity`)."""

    issuer: str
    """The provider's issuer URL; its `/.well-known/openid-configuration` is read."""
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    name: str
    """Shown on the button: "Sign in with <name>"."""
    allow_emails: frozenset[str]
    """Lower-case addresses allowed to sign in (with `allow_domains` empty too: anyone)."""
    allow_domains: frozenset[str]
    """Lower-case domains whose addresses may sign in."""
    redirect_uri: str
    """Where the provider sends the browser back: public URL + `redirect_path`."""

    def user_id(self, subject: str) -> str:
        """The gateway user of a provider account: stable across sign-ins."""
        return f"{self.issuer}#{subject}"


@dataclass(frozen=True, slots=True)
class RegistrationSpec:
    """How unconfigured clients make themselves known (`oauth.registration`)."""

    dynamic: bool = True
    """RFC 7591 at /oauth/register."""
    per_hour: int = 20
    """Registrations per client address per hour."""
    metadata_documents: bool = True
    """An https `client_id` names the client's metadata document."""
    allow_private_networks: bool = False
    """Metadata documents may be fetched from loopback and private addresses, over http."""


@dataclass(frozen=True, slots=True)
class OAuthSpec:
    """The authorization server's settings (gateway.yaml `oauth:`)."""

    issuer: str
    clients: tuple[OAuthClientSpec, ...]
    scopes: Mapping[str, str]
    users: Mapping[str, tuple[str, str]] = field(repr=False)
    """username -> (password, user id)."""
    login: PluginTarget | None
    access_ttl: float
    refresh_ttl: float
    code_ttl: float
    identity: IdentitySpec | None = None
    session_ttl: float = 12 * 3600.0
    """How long a sign-in on the gateway's pages lasts."""
    resources: tuple[str, ...] = ()
    """What a token may be asked for (RFC 8707 `resource`): the issuer (the HTTP routes)
    and each MCP endpoint's URL."""
    registration: RegistrationSpec = RegistrationSpec()
