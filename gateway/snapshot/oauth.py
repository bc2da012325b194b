"""The authorization server's compiled settings (gateway.yaml `oauth:`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.snapshot.plugins import PluginTarget

__all__ = ["OAuthClientSpec", "OAuthSpec"]


@dataclass(frozen=True, slots=True)
class OAuthClientSpec:
    id: str
    client_id: str
    """Empty: generated at the first start and kept in the store."""
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]

    def allows_redirect(self, uri: str) -> bool:
        return any(_redirect_pattern(allowed).fullmatch(uri) for allowed in self.redirect_uris)


def _redirect_pattern(allowed: str) -> re.Pattern[str]:
    """`*` matches one path segment; everything else literally."""
    return re.compile("[^/?#]+".join(re.escape(part) for part in allowed.split("*")))


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
