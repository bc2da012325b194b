"""authlib's endpoints for clients managing themselves: Dynamic Client Registration
(RFC 7591) and token revocation (RFC 7009). Both run in authlib's worker thread and reach
the store through the server's bridge (server.py)."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint, InvalidRedirectURIError

from gateway.oauth.clients import Client, ClientRegistry
from gateway.oauth.grants import TOKEN_AUTH_METHODS
from gateway.oauth.redirects import redirect_problem
from gateway.oauth.tokens import OAuthTokens
from gateway.snapshot import OAuthSpec

__all__ = ["DynamicRegistration", "IssuedToken", "Revocation", "client_metadata_rules"]

T = TypeVar("T")


class EndpointServer(Protocol):
    """What these endpoints use of GatewayAuthorizationServer (which imports this)."""

    spec: OAuthSpec
    clients: ClientRegistry
    tokens: OAuthTokens

    @property
    def family_lifetime(self) -> float: ...

    def bridge(self, coroutine: Coroutine[Any, Any, T]) -> T: ...


def client_metadata_rules(spec: OAuthSpec) -> dict[str, Any]:
    """What a registering client may ask for (authlib checks the registration against it;
    the server metadata publishes the same)."""
    return {
        "scopes_supported": list(spec.scopes),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
    }


class DynamicRegistration(ClientRegistrationEndpoint):  # type: ignore[misc]
    """Open registration (as MCP clients expect): anyone may register, at the rate the
    view allows; a person still signs in and allows the client on the consent page."""

    def authenticate_token(self, request: Any) -> bool:
        return True

    def get_server_metadata(self) -> dict[str, Any]:
        server: EndpointServer = self.server
        return client_metadata_rules(server.spec)

    def generate_client_id(self, request: Any) -> str:
        return f"mcp-{super().generate_client_id(request)[:24]}"

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        info: dict[str, Any] = super().generate_client_info(request)
        if request.payload.data.get("token_endpoint_auth_method") == "none":
            # A public client gets no secret (RFC 7591 3.2.1).
            info.pop("client_secret")
            info.pop("client_secret_expires_at")
        return info

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        # Ours first: authlib's own check names the claim, not what is wrong with it.
        uris = request.payload.data.get("redirect_uris")
        if not isinstance(uris, list) or not uris:
            raise InvalidRedirectURIError("Register at least one redirect URI.")
        for uri in uris:
            if (problem := redirect_problem(uri)) is not None:
                raise InvalidRedirectURIError(f"{problem[0].upper()}{problem[1:]}.")
        metadata: dict[str, Any] = super().extract_client_metadata(request)
        return metadata

    def save_client(
        self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any
    ) -> Client:
        server: EndpointServer = self.server
        return server.bridge(
            server.clients.register(
                client_info["client_id"], client_info.get("client_secret"), client_metadata
            )
        )


@dataclass(frozen=True)
class IssuedToken:
    """A token found for revocation: which kind, and the grant it carries."""

    kind: str
    token: str
    grant: dict[str, Any]

    def check_client(self, client: Client) -> bool:
        return bool(self.grant.get("client_id") == client.get_client_id())


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: a client revokes its own token; the answer is 200 whether or not the
    token was known (2.2), so it tells a guesser nothing."""

    CLIENT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        server: EndpointServer = self.server
        found = server.bridge(server.tokens.find(token_string, token_type_hint))
        return None if found is None else IssuedToken(found[0], token_string, found[1])

    def revoke_token(self, token: IssuedToken, request: OAuth2Request) -> None:
        server: EndpointServer = self.server
        server.bridge(
            server.tokens.revoke(token.kind, token.token, token.grant, server.family_lifetime)
        )
