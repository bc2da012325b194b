"""The OMI server's OAuth URLs, `/chatgpt/oauth/authorize` and `/chatgpt/oauth/token`, are
aliases of the gateway's own: a GPT set up against the old server keeps working.

authlib's client runs the whole flow through the aliases (consent page, code, token,
refresh), the consent form posts back to the alias with a cookie a browser would send there,
its CSP allows that post and the redirect, a cross-site post is refused, and the metadata
keeps naming the canonical URLs.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.errors import ConfigErrors
from tests.conftest import RunningGateway, run_gateway, write_config
from tests.integration.test_oauth_server import call, config, token_call
from tests.oauth_client import CALLBACK, GOOD_SECRET, authorize, chatgpt, keep_cookies
from tests.upstreams.server import free_port

AUTHORIZE = "/chatgpt/oauth/authorize"
TOKEN = "/chatgpt/oauth/token"


def gateway_on_a_port(tmp_path: Path) -> tuple[Path, dict[str, str], int]:
    port = free_port()  # the issuer (public_url) is the gateway's own address
    return config(tmp_path), {"PUBLIC_URL": f"http://127.0.0.1:{port}"}, port


async def test_the_whole_flow_through_the_alias_urls(tmp_path: Path) -> None:
    folder, env, port = gateway_on_a_port(tmp_path)
    async with run_gateway(folder, env, port) as gw, chatgpt(gw) as client:
        verifier = generate_token(48)
        callback = await authorize(gw, client, "alice", "alice-pass-1", verifier, AUTHORIZE)
        token = await client.fetch_token(
            f"{gw.url}{TOKEN}", authorization_response=callback, code_verifier=verifier
        )
        assert (token["token_type"].lower(), token["scope"]) == ("bearer", "read:memories")
        assert (await call(gw, token["access_token"]))[::2] == (200, {"user": "uid_alice"})

        refreshed = await client.refresh_token(
            f"{gw.url}{TOKEN}", refresh_token=token["refresh_token"]
        )
        assert (await call(gw, refreshed["access_token"]))[::2] == (200, {"user": "uid_alice"})

        # One server behind both names: the code, spent at the alias, is refused at the
        # canonical token URL.
        code = parse_qs(urlsplit(callback).query)["code"][0]
        reuse = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": "gpt-client",
            "client_secret": GOOD_SECRET,
            "code_verifier": verifier,
        }
        status, answer = await token_call(gw, reuse)
        assert (status, answer["error"]) == (400, "invalid_grant")

        # Wrong client secret at the alias: 401 invalid_client, as at /oauth/token.
        async with chatgpt(gw, secret="wrong-secret") as bad:
            callback = await authorize(gw, client, "bob", "bob-pass-2", verifier, AUTHORIZE)
            with pytest.raises(OAuthError, match="invalid_client"):
                await bad.fetch_token(
                    f"{gw.url}{TOKEN}", authorization_response=callback, code_verifier=verifier
                )

        # Bob signs in at the canonical page, exchanges at the alias: the same clients.
        callback = await authorize(gw, client, "bob", "bob-pass-2", verifier)
        token = await client.fetch_token(
            f"{gw.url}{TOKEN}", authorization_response=callback, code_verifier=verifier
        )
        assert (await call(gw, token["access_token"]))[::2] == (200, {"user": "uid_bob"})

        async with gw.http.get(f"{gw.url}/.well-known/oauth-authorization-server") as r:
            metadata = await r.json()
        assert metadata["authorization_endpoint"] == f"{gw.url}/oauth/authorize"
        assert metadata["token_endpoint"] == f"{gw.url}/oauth/token"


async def alias_page(gw: RunningGateway) -> tuple[dict[str, str], str, dict[str, str]]:
    """The alias's consent page: its hidden fields, its HTML and its headers."""
    async with chatgpt(gw) as client:
        url, _ = client.create_authorization_url(f"{gw.url}{AUTHORIZE}")
    async with gw.http.get(url) as page:
        assert page.status == 200, await page.text()
        keep_cookies(gw, page)
        html = await page.text()
        headers = {"csp": page.headers["Content-Security-Policy"]}
        headers["cookie"] = page.headers["Set-Cookie"]
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', html)), html, headers


async def test_the_alias_form_posts_back_where_it_was_opened(tmp_path: Path) -> None:
    folder, env, port = gateway_on_a_port(tmp_path)
    async with run_gateway(folder, env, port) as gw:
        values, html, headers = await alias_page(gw)
        assert f'<form method="post" action="{AUTHORIZE}">' in html
        # The browser sends the form's cookie to the alias (the cookie's path is its folder).
        assert "Path=/chatgpt/oauth;" in headers["cookie"]
        assert "HttpOnly" in headers["cookie"]
        # The post goes to 'self'; the redirect that answers it to ChatGPT.
        assert "form-action 'self' https://chatgpt.com;" in headers["csp"]

        # A post from another site is refused at the alias too.
        form = {**values, "username": "alice", "password": "alice-pass-1", "decision": "allow"}
        async with gw.http.post(
            f"{gw.url}{AUTHORIZE}",
            data=form,
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        ) as refused:
            assert refused.status == 403
            assert "This form was sent from another site." in await refused.text()
        # From the issuer's origin (as a browser sends it): the code.
        async with gw.http.post(
            f"{gw.url}{AUTHORIZE}", data=form, headers={"Origin": gw.url}, allow_redirects=False
        ) as answer:
            assert answer.status == 302, await answer.text()
            assert answer.headers["Location"].startswith(CALLBACK + "?code=")

        # A wrong password shows the alias's form again, still posting to the alias.
        values, _, _ = await alias_page(gw)
        async with gw.http.post(
            f"{gw.url}{AUTHORIZE}",
            data={**values, "username": "alice", "password": "nope", "decision": "allow"},
            allow_redirects=False,
        ) as again:
            assert again.status == 401
            assert f'<form method="post" action="{AUTHORIZE}">' in await again.text()


async def test_the_canonical_page_keeps_its_own_path(tmp_path: Path) -> None:
    folder, env, port = gateway_on_a_port(tmp_path)
    async with run_gateway(folder, env, port) as gw:
        async with chatgpt(gw) as client:
            url, _ = client.create_authorization_url(f"{gw.url}/oauth/authorize")
        async with gw.http.get(url) as page:
            assert '<form method="post" action="/oauth/authorize">' in await page.text()
            assert "Path=/oauth;" in page.headers["Set-Cookie"]


def test_routes_cannot_take_the_alias_paths(tmp_path: Path) -> None:
    routes = (
        "routes:\n  - id: shadow\n    path: /chatgpt/oauth/token\n    method: POST\n"
        "    static: true\n    response: {body: '{{ {} }}'}\n"
    )
    folder = write_config(tmp_path, "", {"r": routes})
    with pytest.raises(ConfigErrors) as caught:
        compile_config(load(folder, environ={}))
    assert [str(error) for error in caught.value.errors] == [
        "routes.d/r.yaml:3:11: path `/chatgpt/oauth/token` is reserved by the gateway"
        " - at `$.routes[0].path`"
    ]
