"""authlib's authorization server, wired to Litestar requests and the gateway's store.

authlib's grant classes are synchronous; the store is asynchronous. Each authlib call runs
in a worker thread (``asyncio.to_thread``), and its store operations hop back onto the
event loop with ``run_coroutine_threadsafe``: authlib decides, the store keeps, and the loop
never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonPayload, JsonRequest
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from multidict import CIMultiDict

from gateway import metrics
from gateway.oauth.clients import Client, ClientRegistry
from gateway.oauth.grants import CodeGrant, RefreshGrant, S256Challenge
from gateway.oauth.registration import DynamicRegistration, Revocation
from gateway.oauth.tokens import EXPIRED_GRACE, OAuthTokens
from gateway.snapshot import OAuthSpec

__all__ = ["Client", "GatewayAuthorizationServer", "OAuthAnswer", "form_request", "json_request"]

T = TypeVar("T")


@dataclass(frozen=True)
class OAuthAnswer:
    status: int
    body: Any
    headers: list[tuple[str, str]]


class GatewayAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """One per configuration generation (rebuilt when `oauth:` changes)."""

    def __init__(
        self,
        spec: OAuthSpec,
        clients: ClientRegistry,
        tokens: OAuthTokens,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(scopes_supported=list(spec.scopes))
        self.spec = spec
        self.clients = clients
        self.tokens = tokens
        self.loop = loop
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: generate_token(42),
                refresh_token_generator=lambda **_: generate_token(48),
                expires_generator=lambda client, grant_type: int(spec.access_ttl),
            ),
        )
        self.register_grant(CodeGrant, [S256Challenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Revocation)
        if spec.registration.dynamic:
            self.register_endpoint(DynamicRegistration)

    @property
    def family_lifetime(self) -> float:
        """How long a family's revocation is kept: longer than any of its tokens lives."""
        return max(self.spec.refresh_ttl, self.spec.access_ttl + EXPIRED_GRACE)

    def bridge(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a store coroutine on the event loop from authlib's worker thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def query_client(self, client_id: str) -> Client | None:
        return self.bridge(self.clients.find(client_id))

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        # The code (first exchange) or the refresh token (later ones) the tokens come from.
        source = request.authorization_code or request.refresh_token
        grant = {
            "client_id": request.client.get_client_id(),
            "user_id": request.user,
            "scope": token.get("scope", ""),
            "family": getattr(source, "family", None),
            "resource": getattr(source, "resource", None),
        }
        self.bridge(
            self.tokens.save_tokens(
                token["access_token"],
                token.get("refresh_token"),
                grant,
                self.spec.access_ttl,
                self.spec.refresh_ttl,
            )
        )
        self.bridge(self.clients.renew(grant["client_id"]))
        grant_type = "refresh_token" if request.refresh_token else "authorization_code"
        metrics.oauth_token_issued(grant_type)

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request  # already built from the Litestar request by form_request()

    def create_json_request(self, request: JsonRequest) -> JsonRequest:
        return request  # already built by json_request()

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> OAuthAnswer:
        return OAuthAnswer(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(
        self, method: str, uri: str, values: dict[str, str], headers: Mapping[str, str]
    ) -> None:
        # Case-insensitive: authlib looks up "Authorization", servers lower-case names.
        super().__init__(method=method, uri=uri, headers=CIMultiDict(headers))
        self._values = values
        self.payload = BasicOAuth2Payload(values)

    @property
    def args(self) -> dict[str, str]:
        return self._values

    @property
    def form(self) -> dict[str, str]:
        return self._values


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


def json_request(uri: str, data: dict[str, Any], headers: Mapping[str, str]) -> JsonRequest:
    """An authlib JSON request (client registration) from an already-decoded object."""
    request = JsonRequest("POST", uri, CIMultiDict(headers))
    request.payload = _JsonPayload(data)
    return request


def form_request(
    method: str, uri: str, values: dict[str, str], headers: Mapping[str, str]
) -> OAuth2Request:
    """An authlib request from already-parsed query or form values."""
    return _FormRequest(method, uri, values, headers)
