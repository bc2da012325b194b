"""Which redirect URIs a client that registers itself may use (MCP authorization, RFC 9700
2.1): exact URIs, https, or http on a loopback address for apps on the user's machine."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["LOOPBACK_HOSTS", "redirect_problem"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_LENGTH = 2000


def redirect_problem(uri: object) -> str | None:
    """Why ``uri`` cannot be a registered redirect URI, or None."""
    if not isinstance(uri, str) or not uri:
        return "a redirect URI must be a non-empty string"
    if len(uri) > MAX_LENGTH or not uri.isprintable() or any(c in uri for c in ' "\\<>'):
        return "a redirect URI must be printable, without spaces or quotes"
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return "a redirect URI must be an absolute URL"
    if parts.fragment or "#" in uri:
        return "a redirect URI may not hold a fragment"
    if parts.username is not None or parts.password is not None:
        return "a redirect URI may not hold a user name or password"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return None
    return "a redirect URI must be https, or http on a loopback address"
