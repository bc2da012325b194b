"""authlib's authorization server, wired to Litestar requests and the gateway's store.

authlib's grant classes are synchronous; the store is asynchronous. Each authlib call runs
in a worker thread (``asyncio.to_thread``), and its store operations hop back onto the
event loop with ``run_coroutine_threadsafe``: authlib decides, the store keeps, and the loop
never blocks.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from multidict import CIMultiDict

from gateway.oauth.tokens import OAuthTokens, digest
from gateway.snapshot import OAuthClientSpec, OAuthSpec

__all__ = ["Client", "GatewayAuthorizationServer", "OAuthAnswer", "form_request"]

T = TypeVar("T")
TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


@dataclass(frozen=True)
class OAuthAnswer:
    status: int
    body: Any
    headers: list[tuple[str, str]]


class Client(ClientMixin):  # type: ignore[misc]
    """A configured client with its (configured or generated) credentials."""

    def __init__(self, spec: OAuthClientSpec, client_id: str, secret_sha256: str) -> None:
        self.spec = spec
        self.client_id = client_id
        self.secret_sha256 = secret_sha256

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # redirect_uri is always required

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.spec.scopes)  # none asked for: all this client may have
        return " ".join(s for s in scope_to_list(scope) if s in self.spec.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.spec.allows_redirect(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(digest(client_secret), self.secret_sha256)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in TOKEN_AUTH_METHODS if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user_id: str
    code_challenge: str | None = None
    code_challenge_method: str | None = None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class RefreshCredential(TokenMixin):  # type: ignore[misc]
    refresh_token: str
    client_id: str
    user_id: str
    scope: str

    def check_client(self, client: Client) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return False


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        server: GatewayAuthorizationServer = self.server
        data = request.payload.data
        record = {  # what the token exchange must match (the form's own fields are not kept)
            "client_id": request.client.get_client_id(),
            "redirect_uri": request.payload.redirect_uri,
            "scope": request.client.get_allowed_scope(request.payload.scope),
            "user_id": request.user,
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
        }
        server.bridge(server.tokens.save_code(code, record, server.spec.code_ttl))

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        server: GatewayAuthorizationServer = self.server
        record = server.bridge(server.tokens.take_code(code, server.spec.code_ttl))
        if record is None or record["client_id"] != client.get_client_id():
            return None
        return AuthorizationCode(code=code, **record)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        return None  # taken (deleted) when it was looked up: a code works once

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.user_id


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh returns a new refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshCredential | None:
        server: GatewayAuthorizationServer = self.server
        record = server.bridge(server.tokens.claim_refresh(refresh_token))
        if record is None:
            return None
        return RefreshCredential(
            refresh_token, record["client_id"], record["user_id"], record["scope"]
        )

    def authenticate_user(self, credential: RefreshCredential) -> str:
        return credential.user_id

    def revoke_old_credential(self, credential: RefreshCredential) -> None:
        server: GatewayAuthorizationServer = self.server
        server.bridge(server.tokens.revoke_refresh(credential.refresh_token))


class GatewayAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """One per configuration generation (rebuilt when `oauth:` changes)."""

    def __init__(
        self,
        spec: OAuthSpec,
        clients: Mapping[str, Client],
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
        self.register_grant(CodeGrant, [CodeChallenge(required=False)])
        self.register_grant(RefreshGrant)

    def bridge(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a store coroutine on the event loop from authlib's worker thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        grant = {
            "client_id": request.client.get_client_id(),
            "user_id": request.user,
            "scope": token.get("scope", ""),
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

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request  # already built from the Litestar request by form_request()

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


def form_request(
    method: str, uri: str, values: dict[str, str], headers: Mapping[str, str]
) -> OAuth2Request:
    """An authlib request from already-parsed query or form values."""
    return _FormRequest(method, uri, values, headers)
