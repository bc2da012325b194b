"""Behind a load balancer: forwarding headers are believed only from `server.trusted_proxies`,
and then the client is the right-most address a trusted hop appended (a caller cannot pick
its own address). Checked through the `ip` rate-limit key, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.serve.forwarded import TrustedProxies
from tests.conftest import GatewayFactory, RunningGateway, write_config

GATEWAY = """\
server: {trusted_proxies: ["${TRUSTED:-127.0.0.1}"]}
defaults: {auth: none}
"""
ROUTES = """\
routes:
  - id: hello
    path: /hello
    static: true
    rate_limit: {limit: 2, per: 1m, key: ip}
    response: {body: '{{ {"hi": 1} }}'}
"""


async def statuses(gw: RunningGateway, headers: dict[str, str], count: int = 3) -> list[int]:
    found = []
    for _ in range(count):
        async with gw.http.get(f"{gw.url}/hello", headers=headers) as response:
            found.append(response.status)
    return found


async def test_a_trusted_proxys_client_addresses_have_their_own_budgets(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"r": ROUTES})
    async with gateway(folder, {}) as gw:
        assert await statuses(gw, {"X-Forwarded-For": "203.0.113.5"}) == [200, 200, 429]
        assert await statuses(gw, {"X-Forwarded-For": "203.0.113.6"}, 1) == [200]
        # Prepending an address chooses nothing: the proxy appended the real one last.
        spoofed = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}
        assert await statuses(gw, spoofed, 1) == [429]
        assert await statuses(gw, {"Forwarded": 'for="203.0.113.7";proto=https'}, 2) == [200, 200]
        assert await statuses(gw, {"Forwarded": "for=203.0.113.7"}, 1) == [429]


async def test_headers_from_an_untrusted_peer_are_ignored(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"r": ROUTES})
    async with gateway(folder, {"TRUSTED": "10.0.0.0/8"}) as gw:
        assert await statuses(gw, {"X-Forwarded-For": "203.0.113.5"}, 2) == [200, 200]
        # Another "client" from the same untrusted peer: the same (peer's) budget.
        assert await statuses(gw, {"X-Forwarded-For": "203.0.113.6"}, 1) == [429]


def scope(peer: str, *headers: tuple[str, str]) -> dict[str, Any]:
    return {
        "client": (peer, 5000),
        "scheme": "http",
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }


def test_the_client_and_scheme_behind_trusted_hops() -> None:
    import ipaddress

    proxies = TrustedProxies((ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")))
    seen = scope(
        "10.0.0.2", ("x-forwarded-for", "203.0.113.5, 10.0.0.1"), ("x-forwarded-proto", "https")
    )
    proxies.apply(seen)
    assert (seen["client"], seen["scheme"]) == (("203.0.113.5", 0), "https")
    seen = scope("fd00::1", ("forwarded", 'for="[2001:db8::7]:4711";proto=https'))
    proxies.apply(seen)
    assert (seen["client"], seen["scheme"]) == (("2001:db8::7", 0), "https")
    seen = scope("10.0.0.2", ("x-forwarded-for", "unknown, 203.0.113.5"))
    proxies.apply(seen)
    assert seen["client"] == ("203.0.113.5", 0)
    seen = scope("10.0.0.2", ("x-forwarded-for", "203.0.113.5, garbage"))
    proxies.apply(seen)  # a broken chain: the peer stays the client
    assert seen["client"] == ("10.0.0.2", 5000)
    seen = scope("192.0.2.9", ("x-forwarded-for", "203.0.113.5"), ("x-forwarded-proto", "https"))
    proxies.apply(seen)  # not a trusted peer: nothing believed
    assert (seen["client"], seen["scheme"]) == (("192.0.2.9", 5000), "http")
