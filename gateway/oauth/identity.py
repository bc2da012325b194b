"""Sign-in with an external OpenID Connect provider (`oauth.identity`), on authlib's client.

    sign_in = OpenIdSignIn(spec)                 # one per snapshot: it caches discovery and keys
    url = await sign_in.start(state, nonce)      # send the browser there
    user = await sign_in.finish(code, nonce)     # back at spec.redirect_uri with ?code=&state=

The caller makes ``state`` and ``nonce`` (``secrets.token_urlsafe``), keeps them for the
browser's return and checks the state itself. Every refusal is an ``IdentityRefused`` whose
``detail`` can be shown to the user: it never holds the client secret, the code or a token.

authlib does the protocol: ``AsyncOAuth2Mixin`` builds the authorization URL and exchanges the
code (``client_secret_post``); ``AsyncOpenIDMixin.parse_id_token`` verifies the ID token with
joserfc against the provider's JWKS (kept, and fetched again once for an unknown ``kid``).
Three things are done here instead, because authlib does not:

* Discovery is read here, not by authlib's ``load_server_metadata``: authlib passes every
  field of the document to the HTTP client's constructor (a ``"proxy"``, ``"verify"`` or
  ``"token_endpoint_auth_method"`` there would reconfigure the client that sends the
  secret), and it keeps a document whose ``issuer`` is not the configured one. Only the
  fields in ``_ENDPOINTS`` are kept, after the issuer matched.
* ``aud`` is checked against the client id (authlib alone only checks it through ``azp``), and
  ``iss``, ``sub`` and ``nonce`` are required (authlib skips the nonce check for an empty one).
* The signing algorithms are the provider's, limited to asymmetric ones (``_ALGORITHMS``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.base_client import BaseApp, OAuthError
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.base import invalid_error_characters
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet

from gateway.snapshot import IdentitySpec

__all__ = ["IdentityRefused", "OpenIdSignIn", "SignedIn"]

TIMEOUT = 10.0
"""Seconds for each call to the provider (discovery, keys, token endpoint)."""
LEEWAY = 60
"""Seconds of clock skew allowed on `exp` and `iat`."""

UNREACHABLE = "the provider could not be reached"
REFUSED = "the provider refused the sign-in: {error}"
EXCHANGE_FAILED = "the provider's token endpoint failed (HTTP {status})"
EXCHANGE_NOT_JSON = "the provider's token endpoint did not answer with a JSON object"
DISCOVERY_UNREADABLE = "the provider's discovery document could not be read (HTTP {status})"
DISCOVERY_NOT_JSON = "the provider's discovery document is not a JSON object"
DISCOVERY_FIELD = "the provider's discovery document has no valid `{field}`"
DISCOVERY_ISSUER = "the provider's discovery document names issuer `{found}`, not `{expected}`"
KEYS_UNREADABLE = "the provider's signing keys could not be read (HTTP {status})"
KEYS_INVALID = "the provider's signing keys are not a valid JWK set"
ID_REJECTED = "the provider's ID token is invalid: {reason}"
NO_VERIFIED_EMAIL = "the provider did not give a verified email address"
NOT_ALLOWED = "the account {email} may not sign in here"

_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")
"""The discovery fields the sign-in uses (besides `issuer` and the signing algorithms)."""
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
"""ID token algorithms accepted when the provider lists them (its JWKS holds public keys)."""
_CLAIM_REASONS = {
    "iss": "claim `iss` is not this provider",
    "aud": "claim `aud` does not name this client",
    "azp": "claim `azp` does not name this client",
    "nonce": "claim `nonce` does not match this sign-in",
    "iat": "claim `iat` is in the future",
}


class IdentityRefused(Exception):
    """A sign-in the provider or the allowlist refused; `detail` is safe to show the user."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who signed in: ``SignedIn("https://accounts.example#1042", "ada@example.com", "Ada")``."""

    user_id: str
    """``spec.user_id(sub)``: ``<issuer>#<sub>``, the same at every sign-in."""
    email: str | None
    """The address the provider verified (None when it gave none, or did not verify it)."""
    name: str | None


class _OpenIdClient(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    """authlib's OpenID client app, composed as its Starlette integration does, without a
    framework; ``server_metadata`` is filled by ``OpenIdSignIn._discover`` (no metadata URL)."""

    client_cls = AsyncOAuth2Client


class OpenIdSignIn:
    """The authorization code flow with one provider (``OpenIdSignIn(spec)``; see the module)."""

    def __init__(self, spec: IdentitySpec) -> None:
        self.spec = spec
        scopes = spec.scopes if "openid" in spec.scopes else ("openid", *spec.scopes)
        self._client = _OpenIdClient(
            None,
            name=spec.name,
            client_id=spec.client_id,
            client_secret=spec.client_secret,
            client_kwargs={
                "scope": " ".join(scopes),
                "token_endpoint_auth_method": "client_secret_post",
                "timeout": TIMEOUT,
            },
        )
        self._discovery = asyncio.Lock()

    async def start(self, state: str, nonce: str) -> str:
        """The provider's authorization URL (response_type=code, client_id,
        redirect_uri=spec.redirect_uri, scope, state, nonce)."""
        if not state or not nonce:
            raise ValueError("start() needs a state and a nonce (secrets.token_urlsafe(32))")
        await self._discover()
        answer = await self._client.create_authorization_url(
            redirect_uri=self.spec.redirect_uri, state=state, nonce=nonce
        )
        return str(answer["url"])

    async def finish(self, code: str, nonce: str) -> SignedIn:
        """Exchange the code at the token endpoint (client_secret_post), validate the ID token
        (signature from the JWKS, iss == spec.issuer, aud contains client_id, exp/iat, nonce),
        then the allowlist. Raises IdentityRefused."""
        if not nonce:
            raise ValueError("finish() needs the nonce given to start()")
        await self._discover()
        token = await self._exchange(code)
        await self._keys()
        claims = await self._verify(token, nonce)
        return self._admit(claims)

    async def _discover(self) -> None:
        """Read `<issuer>/.well-known/openid-configuration` once; a failure is not kept."""
        async with self._discovery:
            if self._client.server_metadata:
                return
            url = self.spec.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
                    response = await http.get(url, headers={"Accept": "application/json"})
            except httpx2.TransportError as exc:
                raise IdentityRefused(UNREACHABLE) from exc
            if response.status_code != 200:
                status = response.status_code
                raise IdentityRefused(DISCOVERY_UNREADABLE.format(status=status))
            try:
                document = response.json()
            except ValueError as exc:
                raise IdentityRefused(DISCOVERY_NOT_JSON) from exc
            self._client.server_metadata.update(self._metadata(document))

    def _metadata(self, document: object) -> dict[str, Any]:
        """The fields of a discovery document the sign-in uses, checked."""
        if not isinstance(document, dict):
            raise IdentityRefused(DISCOVERY_NOT_JSON)
        issuer = document.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise IdentityRefused(DISCOVERY_FIELD.format(field="issuer"))
        if issuer != self.spec.issuer:
            raise IdentityRefused(
                DISCOVERY_ISSUER.format(found=issuer[:200], expected=self.spec.issuer)
            )
        https = issuer.startswith("https://")
        metadata: dict[str, Any] = {"issuer": issuer}
        for name in _ENDPOINTS:
            value = document.get(name)
            if not isinstance(value, str) or not value.startswith(
                "https://" if https else ("https://", "http://")
            ):
                raise IdentityRefused(DISCOVERY_FIELD.format(field=name))
            metadata[name] = value
        listed = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in _ALGORITHMS if isinstance(listed, list) and alg in listed]
        if not algorithms:
            raise IdentityRefused(DISCOVERY_FIELD.format(field="id_token_signing_alg_values"))
        metadata["id_token_signing_alg_values_supported"] = algorithms
        return metadata

    async def _exchange(self, code: str) -> Mapping[str, Any]:
        """The token response for ``code``. The provider's own words (``error_description``)
        are dropped: some echo the code."""
        try:
            token = await self._client.fetch_access_token(
                redirect_uri=self.spec.redirect_uri, code=code
            )
        except OAuthError as exc:
            raise IdentityRefused(REFUSED.format(error=_error_code(exc.error))) from None
        except httpx2.TransportError:
            raise IdentityRefused(UNREACHABLE) from None
        except httpx2.HTTPStatusError as exc:
            status = exc.response.status_code
            raise IdentityRefused(EXCHANGE_FAILED.format(status=status)) from None
        except ValueError:  # authlib: "Token endpoint response is not a JSON object"
            raise IdentityRefused(EXCHANGE_NOT_JSON) from None
        return dict(token)

    async def _keys(self) -> None:
        """Fetch the provider's JWKS unless it is kept; one that is not a key set is dropped."""
        try:
            KeySet.import_key_set(await self._client.fetch_jwk_set())
        except httpx2.TransportError as exc:
            raise IdentityRefused(UNREACHABLE) from exc
        except httpx2.HTTPStatusError as exc:
            status = exc.response.status_code
            raise IdentityRefused(KEYS_UNREADABLE.format(status=status)) from exc
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            self._client.server_metadata.pop("jwks", None)
            raise IdentityRefused(KEYS_INVALID) from exc

    async def _verify(self, token: Mapping[str, Any], nonce: str) -> Mapping[str, Any]:
        """The ID token's claims, after authlib and joserfc checked it."""
        if not isinstance(token.get("id_token"), str):
            raise IdentityRefused(ID_REJECTED.format(reason="the token response has none"))
        options = {
            "iss": {"essential": True, "value": self.spec.issuer},
            "aud": {"essential": True, "value": self.spec.client_id},
            "sub": {"essential": True},
            "nonce": {"essential": True, "value": nonce},
        }
        try:
            claims = await self._client.parse_id_token(
                token, nonce=nonce, claims_options=options, leeway=LEEWAY
            )
        except httpx2.TransportError as exc:  # fetching the keys again, for a new `kid`
            raise IdentityRefused(UNREACHABLE) from exc
        except httpx2.HTTPStatusError as exc:
            status = exc.response.status_code
            raise IdentityRefused(KEYS_UNREADABLE.format(status=status)) from exc
        except JoseError as exc:
            raise IdentityRefused(ID_REJECTED.format(reason=_reason(exc))) from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise IdentityRefused(ID_REJECTED.format(reason="it is malformed")) from exc
        return dict(claims)

    def _admit(self, claims: Mapping[str, Any]) -> SignedIn:
        """The allowlist: with `allow_emails` or `allow_domains`, a verified address on it."""
        email = claims.get("email")
        verified = isinstance(email, str) and "@" in email and claims.get("email_verified") is True
        address = email if verified and isinstance(email, str) else None
        if self.spec.allow_emails or self.spec.allow_domains:
            if address is None:
                raise IdentityRefused(NO_VERIFIED_EMAIL)
            lowered = address.lower()
            local, _, domain = lowered.rpartition("@")
            allowed = lowered in self.spec.allow_emails or (
                bool(local) and domain in self.spec.allow_domains
            )
            if not allowed:
                raise IdentityRefused(NOT_ALLOWED.format(email=address))
        name = claims.get("name")
        return SignedIn(
            user_id=self.spec.user_id(str(claims["sub"])),
            email=address,
            name=name if isinstance(name, str) and name else None,
        )


def _error_code(error: object) -> str:
    """An OAuth `error` as RFC 6749 allows it (printable ASCII), short, or a placeholder."""
    text = str(error or "")[:64]
    if not text or invalid_error_characters(text):
        return "an error it did not name"
    return text


def _reason(exc: JoseError) -> str:
    """A short reason for a rejected ID token (joserfc's error, without the token)."""
    if isinstance(exc, ExpiredTokenError):
        return "it has expired"
    if isinstance(exc, MissingClaimError):
        return f"claim `{exc.claim}` is missing"
    if isinstance(exc, ClaimError):
        return _CLAIM_REASONS.get(exc.claim, f"claim `{exc.claim}` is invalid")
    if isinstance(exc, BadSignatureError):
        return "its signature does not verify"
    if isinstance(exc, InvalidKeyIdError):
        return "it is signed with a key the provider does not publish"
    if isinstance(exc, UnsupportedAlgorithmError):
        return "it is signed with an algorithm that is not allowed"
    return "it is malformed"
