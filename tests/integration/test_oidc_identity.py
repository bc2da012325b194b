"""OpenIdSignIn against the loopback OpenID Connect provider, over real HTTP.

The browser's part is played by aiohttp: it opens the authorization URL without following
redirects and reads ``code`` and ``state`` from the Location. Refusals are compared as
whole texts, and none may hold the client secret or the code.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from gateway.oauth.identity import IdentityRefused, OpenIdSignIn, SignedIn
from gateway.snapshot import IdentitySpec
from tests.upstreams.oidc import OidcProvider, oidc_provider
from tests.upstreams.server import free_port

CLIENT_ID = "gateway-client"
CLIENT_SECRET = "oidc-loopback-secret-7f3a"
CALLBACK = "https://gateway.example/oauth/identity/callback"
STATE = "state-9c1e5b"
NONCE = "nonce-4d2a77"


@pytest.fixture
async def provider() -> AsyncIterator[OidcProvider]:
    async with oidc_provider(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=CALLBACK
    ) as running:
        running.sign_in_as("1042", "Ada@Example.com", name="Ada Lovelace")
        yield running


def spec_for(
    issuer: str,
    *,
    allow_emails: frozenset[str] = frozenset(),
    allow_domains: frozenset[str] = frozenset(),
    client_secret: str = CLIENT_SECRET,
) -> IdentitySpec:
    return IdentitySpec(
        issuer=issuer,
        client_id=CLIENT_ID,
        client_secret=client_secret,
        scopes=("openid", "email", "profile"),
        name="Loopback",
        allow_emails=allow_emails,
        allow_domains=allow_domains,
        redirect_uri=CALLBACK,
    )


async def authorize(sign_in: OpenIdSignIn, state: str = STATE, nonce: str = NONCE) -> str:
    """start(), then the browser at the provider: the code it is sent back with."""
    url = await sign_in.start(state, nonce)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(url, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            location = response.headers["Location"]
    assert location.startswith(f"{CALLBACK}?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    assert "error" not in query, query
    return query["code"][0]


async def sign_in_once(sign_in: OpenIdSignIn, nonce: str = NONCE) -> SignedIn:
    return await sign_in.finish(await authorize(sign_in, nonce=nonce), nonce)


async def refused(sign_in: OpenIdSignIn, nonce: str = NONCE, code: str | None = None) -> str:
    """The detail of the sign-in's refusal (it holds neither the secret nor the code)."""
    if code is None:
        code = await authorize(sign_in)
    with pytest.raises(IdentityRefused) as caught:
        await sign_in.finish(code, nonce)
    detail = caught.value.detail
    assert str(caught.value) == detail
    assert CLIENT_SECRET not in detail
    assert code not in detail
    return detail


async def test_sign_in_from_authorization_url_to_signed_in(provider: OidcProvider) -> None:
    sign_in = OpenIdSignIn(spec_for(provider.url))
    url = await sign_in.start(STATE, NONCE)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{provider.url}/authorize"
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": [CLIENT_ID],
        "redirect_uri": [CALLBACK],
        "scope": ["openid email profile"],
        "state": [STATE],
        "nonce": [NONCE],
    }

    code = await authorize(sign_in)
    user = await sign_in.finish(code, NONCE)

    assert user == SignedIn(
        user_id=f"{provider.url}#1042", email="Ada@Example.com", name="Ada Lovelace"
    )
    (exchange,) = [seen for seen in provider.seen if seen.path == "/token"]
    assert parse_qs(exchange.body.decode()) == {
        "grant_type": ["authorization_code"],
        "code": [code],
        "redirect_uri": [CALLBACK],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
    }
    assert "Authorization" not in exchange.headers
    assert provider.client_auth_methods == ["client_secret_post"]


async def test_user_id_is_stable_and_discovery_and_keys_are_fetched_once(
    provider: OidcProvider,
) -> None:
    sign_in = OpenIdSignIn(spec_for(provider.url))
    first = await sign_in_once(sign_in)
    second = await sign_in_once(sign_in, nonce="another-nonce-81b0")
    assert first.user_id == second.user_id == f"{provider.url}#1042"
    assert provider.calls("/.well-known/openid-configuration") == 1
    assert provider.calls("/jwks") == 1


async def test_another_account_is_another_user(provider: OidcProvider) -> None:
    sign_in = OpenIdSignIn(spec_for(provider.url))
    ada = await sign_in_once(sign_in)
    provider.sign_in_as("2077", "alan@example.com", email_verified=False)
    alan = await sign_in_once(sign_in)
    assert ada.user_id != alan.user_id == f"{provider.url}#2077"
    assert alan == SignedIn(user_id=f"{provider.url}#2077", email=None, name=None)


async def test_wrong_nonce_is_refused(provider: OidcProvider) -> None:
    sign_in = OpenIdSignIn(spec_for(provider.url))
    assert await refused(sign_in, nonce="not-the-nonce-sent") == (
        "the provider's ID token is invalid: claim `nonce` does not match this sign-in"
    )


async def test_token_without_nonce_is_refused(provider: OidcProvider) -> None:
    provider.extra_claims["nonce"] = None
    sign_in = OpenIdSignIn(spec_for(provider.url))
    assert await refused(sign_in) == (
        "the provider's ID token is invalid: claim `nonce` is missing"
    )


@pytest.mark.parametrize(
    "audience", ["another-client", ["another-client", "third"]], ids=["one", "several"]
)
async def test_wrong_audience_is_refused(provider: OidcProvider, audience: str | list[str]) -> None:
    provider.audience = audience
    sign_in = OpenIdSignIn(spec_for(provider.url))
    assert await refused(sign_in) == (
        "the provider's ID token is invalid: claim `aud` does not name this client"
    )


async def test_wrong_audience_is_refused_even_with_our_azp(provider: OidcProvider) -> None:
    # authlib alone accepts this token: it checks `aud` only through `azp`.
    provider.audience = "another-client"
    provider.extra_claims["azp"] = CLIENT_ID
    sign_in = OpenIdSignIn(spec_for(provider.url))
    assert await refused(sign_in) == (
        "the provider's ID token is invalid: claim `aud` does not name this client"
    )


async def test_audience_list_with_this_client_and_azp_is_accepted(
    provider: OidcProvider,
) -> None:
    provider.audience = [CLIENT_ID, "another-api"]
    provider.extra_claims["azp"] = CLIENT_ID
    user = await sign_in_once(OpenIdSignIn(spec_for(provider.url)))
    assert user.user_id == f"{provider.url}#1042"


async def test_wrong_issuer_in_the_token_is_refused(provider: OidcProvider) -> None:
    provider.token_issuer = "https://impostor.example"
    sign_in = OpenIdSignIn(spec_for(provider.url))
    assert await refused(sign_in) == (
        "the provider's ID token is invalid: claim `iss` is not this provider"
    )


async def test_discovery_issuer_mismatch_is_refused_and_not_kept(
    provider: OidcProvider,
) -> None:
    provider.discovery_issuer = "https://impostor.example"
    sign_in = OpenIdSignIn(spec_for(provider.url))
    with pytest.raises(IdentityRefused) as caught:
        await sign_in.start(STATE, NONCE)
    assert caught.value.detail == (
        "the provider's discovery document names issuer `https://impostor.example`, "
        f"not `{provider.url}`"
    )
    with pytest.raises(IdentityRefused) as caught:
        await sign_in.finish("any-code", NONCE)
    assert caught.value.detail.startswith("the provider's discovery document names issuer")
    assert provider.calls("/token") == 0

    provider.discovery_issuer = None
    assert (await sign_in_once(sign_in)).user_id == f"{provider.url}#1042"
    assert provider.calls("/.well-known/openid-configuration") == 3


async def test_failed_discovery_is_not_kept(provider: OidcProvider) -> None:
    provider.discovery_status = 503
    sign_in = OpenIdSignIn(spec_for(provider.url))
    with pytest.raises(IdentityRefused) as caught:
        await sign_in.start(STATE, NONCE)
    assert caught.value.detail == ("the provider's discovery document could not be read (HTTP 503)")
    provider.discovery_status = 200
    assert (await sign_in_once(sign_in)).email == "Ada@Example.com"
    assert provider.calls("/.well-known/openid-configuration") == 2


async def test_discovery_fields_do_not_reconfigure_the_client(provider: OidcProvider) -> None:
    # authlib's own loader hands every discovery field to the HTTP client it builds.
    provider.discovery_extra = {
        "proxy": f"http://127.0.0.1:{free_port()}",
        "token_endpoint_auth_method": "client_secret_basic",
        "timeout": 0.000001,
    }
    user = await sign_in_once(OpenIdSignIn(spec_for(provider.url)))
    assert user.user_id == f"{provider.url}#1042"
    assert provider.client_auth_methods == ["client_secret_post"]


async def test_bad_signature_is_refused(provider: OidcProvider) -> None:
    provider.wrong_key = True
    sign_in = OpenIdSignIn(spec_for(provider.url))
    assert await refused(sign_in) == (
        "the provider's ID token is invalid: its signature does not verify"
    )


async def test_rotated_key_is_fetched_once_more(provider: OidcProvider) -> None:
    sign_in = OpenIdSignIn(spec_for(provider.url))
    await sign_in_once(sign_in)
    provider.rotate_key()
    user = await sign_in_once(sign_in)
    assert user.user_id == f"{provider.url}#1042"
    assert provider.calls("/jwks") == 2
    await sign_in_once(sign_in)
    assert provider.calls("/jwks") == 2


async def test_unpublished_key_is_refused_after_one_fetch(provider: OidcProvider) -> None:
    sign_in = OpenIdSignIn(spec_for(provider.url))
    await sign_in_once(sign_in)
    provider.unknown_key = True
    assert await refused(sign_in) == (
        "the provider's ID token is invalid: it is signed with a key the provider does not publish"
    )
    assert provider.calls("/jwks") == 2


async def test_expired_token_is_refused(provider: OidcProvider) -> None:
    provider.expired = True
    sign_in = OpenIdSignIn(spec_for(provider.url))
    assert await refused(sign_in) == "the provider's ID token is invalid: it has expired"


async def test_token_issued_in_the_future_is_refused(provider: OidcProvider) -> None:
    provider.extra_claims["iat"] = int(time.time()) + 3600
    sign_in = OpenIdSignIn(spec_for(provider.url))
    assert await refused(sign_in) == (
        "the provider's ID token is invalid: claim `iat` is in the future"
    )


async def test_code_reused_is_refused(provider: OidcProvider) -> None:
    sign_in = OpenIdSignIn(spec_for(provider.url))
    code = await authorize(sign_in)
    await sign_in.finish(code, NONCE)
    assert await refused(sign_in, code=code) == ("the provider refused the sign-in: invalid_grant")


async def test_wrong_client_secret_is_refused(provider: OidcProvider) -> None:
    sign_in = OpenIdSignIn(spec_for(provider.url, client_secret="not-the-secret"))
    detail = await refused(sign_in)
    assert detail == "the provider refused the sign-in: invalid_client"
    assert "not-the-secret" not in detail


@pytest.mark.parametrize(
    ("allow_emails", "allow_domains"),
    [
        (frozenset({"ada@example.com"}), frozenset()),
        (frozenset(), frozenset({"example.com"})),
        (frozenset({"someone@else.org"}), frozenset({"example.com"})),
    ],
    ids=["by-email", "by-domain", "by-domain-among-both"],
)
async def test_allowlist_admits(
    provider: OidcProvider, allow_emails: frozenset[str], allow_domains: frozenset[str]
) -> None:
    sign_in = OpenIdSignIn(
        spec_for(provider.url, allow_emails=allow_emails, allow_domains=allow_domains)
    )
    user = await sign_in_once(sign_in)
    assert user == SignedIn(f"{provider.url}#1042", "Ada@Example.com", "Ada Lovelace")


@pytest.mark.parametrize(
    ("allow_emails", "allow_domains"),
    [
        (frozenset({"alan@example.com"}), frozenset()),
        (frozenset(), frozenset({"example.org"})),
        (frozenset(), frozenset({"mail.example.com"})),
    ],
    ids=["by-email", "by-domain", "subdomain-is-not-domain"],
)
async def test_allowlist_refuses(
    provider: OidcProvider, allow_emails: frozenset[str], allow_domains: frozenset[str]
) -> None:
    sign_in = OpenIdSignIn(
        spec_for(provider.url, allow_emails=allow_emails, allow_domains=allow_domains)
    )
    assert await refused(sign_in) == "the account Ada@Example.com may not sign in here"


async def test_allowlist_domain_is_after_the_last_at(provider: OidcProvider) -> None:
    provider.sign_in_as("3001", '"ada@example.com"@evil.example')
    sign_in = OpenIdSignIn(spec_for(provider.url, allow_domains=frozenset({"example.com"})))
    assert await refused(sign_in) == (
        'the account "ada@example.com"@evil.example may not sign in here'
    )


async def test_unverified_email_is_refused_by_an_allowlist(provider: OidcProvider) -> None:
    provider.sign_in_as("1042", "ada@example.com", email_verified=False)
    sign_in = OpenIdSignIn(spec_for(provider.url, allow_emails=frozenset({"ada@example.com"})))
    assert await refused(sign_in) == "the provider did not give a verified email address"


async def test_missing_email_is_refused_by_an_allowlist(provider: OidcProvider) -> None:
    provider.sign_in_as("1042", None, name="Ada Lovelace")
    sign_in = OpenIdSignIn(spec_for(provider.url, allow_domains=frozenset({"example.com"})))
    assert await refused(sign_in) == "the provider did not give a verified email address"


async def test_email_verified_must_be_true_not_truthy(provider: OidcProvider) -> None:
    provider.extra_claims["email_verified"] = "true"
    sign_in = OpenIdSignIn(spec_for(provider.url, allow_domains=frozenset({"example.com"})))
    assert await refused(sign_in) == "the provider did not give a verified email address"


async def test_provider_down_is_refused() -> None:
    sign_in = OpenIdSignIn(spec_for(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(IdentityRefused) as caught:
        await sign_in.start(STATE, NONCE)
    assert caught.value.detail == "the provider could not be reached"
    with pytest.raises(IdentityRefused) as caught:
        await sign_in.finish("any-code", NONCE)
    assert caught.value.detail == "the provider could not be reached"


async def test_provider_gone_after_discovery_is_refused() -> None:
    async with oidc_provider(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=CALLBACK
    ) as gone:
        gone.sign_in_as("1042", "ada@example.com")
        sign_in = OpenIdSignIn(spec_for(gone.url))
        code = await authorize(sign_in)
    with pytest.raises(IdentityRefused) as caught:
        await sign_in.finish(code, NONCE)
    assert caught.value.detail == "the provider could not be reached"


async def test_no_account_at_the_provider_is_access_denied(provider: OidcProvider) -> None:
    provider.sign_out()
    url = await OpenIdSignIn(spec_for(provider.url)).start(STATE, NONCE)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(url, allow_redirects=False) as response:
            location = response.headers["Location"]
    assert parse_qs(urlsplit(location).query) == {"error": ["access_denied"], "state": [STATE]}


async def test_start_and_finish_need_a_nonce(provider: OidcProvider) -> None:
    sign_in = OpenIdSignIn(spec_for(provider.url))
    with pytest.raises(ValueError, match="start\\(\\) needs a state and a nonce"):
        await sign_in.start(STATE, "")
    with pytest.raises(ValueError, match="finish\\(\\) needs the nonce"):
        await sign_in.finish("any-code", "")
