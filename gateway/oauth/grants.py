"""The grants authlib runs for the gateway: authorization code (PKCE with S256 only) and
refresh token (rotating), with their codes and tokens in the store (tokens.py)."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc7636 import CodeChallenge

from gateway.oauth.clients import SECRET_METHODS, Client
from gateway.oauth.tokens import OAuthTokens, new_family
from gateway.snapshot import OAuthSpec

__all__ = [
    "AuthorizationCode",
    "CodeGrant",
    "RefreshCredential",
    "RefreshGrant",
    "S256Challenge",
]

T = TypeVar("T")


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 section 2: a `resource` this server issues no tokens for."""

    error = "invalid_target"
    description = "The requested resource is not one of this server's."


def requested_resource(request: OAuth2Request, spec: OAuthSpec) -> str | None:
    """The one `resource` (RFC 8707) asked for, checked against the server's; None when
    none is asked (a token for the HTTP routes, as ChatGPT Actions ask)."""
    resource = request.payload.data.get("resource")
    if not resource:
        return None
    resource = str(resource).rstrip("/")
    if resource not in spec.resources:
        raise InvalidTargetError(
            state=request.payload.state, redirect_uri=request.payload.redirect_uri
        )
    return resource


TOKEN_AUTH_METHODS = [*SECRET_METHODS, "none"]
"""At the token endpoint: a secret, or (public clients) none and PKCE."""


class GrantServer(Protocol):
    """What the grants use of GatewayAuthorizationServer (server.py imports this module)."""

    spec: OAuthSpec
    tokens: OAuthTokens

    @property
    def family_lifetime(self) -> float: ...

    def bridge(self, coroutine: Coroutine[Any, Any, T]) -> T: ...


@dataclass(frozen=True)
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user_id: str
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    family: str | None = None
    """The family of the tokens this code is exchanged for (see tokens.py)."""
    resource: str | None = None
    """The `resource` (RFC 8707) the tokens are for; None: the HTTP routes."""

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class RefreshCredential(TokenMixin):  # type: ignore[misc]
    refresh_token: str
    client_id: str
    user_id: str
    scope: str
    family: str | None = None
    resource: str | None = None

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


class S256Challenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with `S256` only (RFC 9700 2.1.1): `plain` shows the verifier to whoever sees
    the authorization request. A challenge without a method means `plain` (RFC 7636 4.3).
    Clients that registered themselves must use it (and public ones prove it at the token
    endpoint: ``required``)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": CodeChallenge.CODE_CHALLENGE_METHODS["S256"]}

    def validate_code_challenge(
        self, grant: grants.AuthorizationCodeGrant, redirect_uri: str
    ) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and not data.get("code_challenge_method"):
            raise InvalidRequestError("Unsupported 'code_challenge_method'")
        client = grant.request.client
        if not data.get("code_challenge") and isinstance(client, Client) and client.requires_pkce:
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256."
            )
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def validate_authorization_request(self) -> str:
        found: str = super().validate_authorization_request()
        server: GrantServer = self.server
        requested_resource(self.request, server.spec)  # an unknown one is refused here
        return found

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: Client) -> str:
        uri = request.payload.redirect_uri
        if uri and not client.check_redirect_uri(uri) and invalid_error_characters(uri):
            # authlib names the URI in its error, whose text may not hold `"` or `\`
            # (RFC 6749 5.2): it would raise ValueError, a 500, instead of refusing.
            raise InvalidRequestError("Redirect URI is not supported by client.")
        found: str = grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(
            request, client
        )
        return found

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        server: GrantServer = self.server
        data = request.payload.data
        record = {  # what the token exchange must match (the form's own fields are not kept)
            "client_id": request.client.get_client_id(),
            "redirect_uri": request.payload.redirect_uri,
            "scope": request.client.get_allowed_scope(request.payload.scope),
            "user_id": request.user,
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
            "family": new_family(),
            "resource": requested_resource(request, server.spec),
        }
        server.bridge(server.tokens.save_code(code, record, server.spec.code_ttl))

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        server: GrantServer = self.server
        record = server.bridge(
            server.tokens.take_code(code, server.spec.code_ttl, server.family_lifetime)
        )
        if record is None or record["client_id"] != client.get_client_id():
            return None
        if record.get("code_challenge") and record.get("code_challenge_method") != "S256":
            return None  # issued before `plain` was refused: not honoured now
        return AuthorizationCode(code=code, **record)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        return None  # marked used when it was looked up: a code works once

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.user_id


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh returns a new refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshCredential | None:
        server: GrantServer = self.server
        record = server.bridge(server.tokens.claim_refresh(refresh_token, server.family_lifetime))
        if record is None:
            return None
        return RefreshCredential(
            refresh_token,
            record["client_id"],
            record["user_id"],
            record["scope"],
            record.get("family"),
            record.get("resource"),
        )

    def authenticate_user(self, credential: RefreshCredential) -> str:
        return credential.user_id

    def revoke_old_credential(self, credential: RefreshCredential) -> None:
        server: GrantServer = self.server
        server.bridge(
            server.tokens.rotate_refresh(credential.refresh_token, server.spec.refresh_ttl)
        )
