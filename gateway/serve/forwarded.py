"""Who really calls: the client address and scheme behind trusted proxies.

Only a request whose peer is in `server.trusted_proxies` has its `X-Forwarded-For`,
`X-Forwarded-Proto` or `Forwarded` (RFC 7239) believed. The client is the right-most address
of the chain that is not itself a trusted proxy (what each trusted hop appended), so a
caller cannot choose its own address by sending the header. The result replaces the ASGI
scope's `client` and `scheme`, which the rate-limit `ip` key, the credential throttles and
the logs read.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

__all__ = ["TrustedProxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED_PAIR = re.compile(r'(for|proto)\s*=\s*("[^"]*"|[^;,\s]+)', re.IGNORECASE)
_SCHEMES = frozenset({"http", "https"})


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = value.strip().strip('"')
    if text.startswith("["):  # [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None  # `unknown`, an obfuscated id, garbage: not an address


class TrustedProxies:
    """``TrustedProxies(snapshot.trusted_proxies).apply(scope)``."""

    __slots__ = ("networks",)

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks

    def trusts(self, address: str) -> bool:
        parsed = _address(address)
        return parsed is not None and any(parsed in network for network in self.networks)

    def apply(self, scope: dict[str, Any]) -> None:
        """Rewrite ``scope``'s client and scheme when its peer is a trusted proxy."""
        peer = scope.get("client")
        if not self.networks or not peer or not self.trusts(str(peer[0])):
            return
        chain: list[str] = []
        protos: list[str] = []
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                chain += value.decode("latin-1").split(",")
            elif name == b"x-forwarded-proto":
                protos += value.decode("latin-1").split(",")
            elif name == b"forwarded":
                forwarded.append(value.decode("latin-1"))
        if not chain and forwarded:  # RFC 7239, only when X-Forwarded-For is absent
            for pair in _FORWARDED_PAIR.finditer(",".join(forwarded)):
                target = chain if pair[1].lower() == "for" else protos
                target.append(pair[2].strip('"'))
        client = None
        for hop in reversed(chain):
            address = _address(hop)
            if address is None:
                break  # the chain is broken here: believe nothing further left
            client = str(address)
            if not any(address in network for network in self.networks):
                break
        if client is not None:
            scope["client"] = (client, 0)
        scheme = protos[-1].strip().lower() if protos else ""
        if scheme in _SCHEMES:
            scope["scheme"] = scheme
