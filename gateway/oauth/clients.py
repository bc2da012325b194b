"""Who may ask for tokens: the clients of `oauth.clients`, clients that registered
themselves (RFC 7591, kept in the store so every replica knows them), and clients whose
`client_id` is the https URL of their metadata document (metadata_documents.py).

The last two are how MCP clients arrive: they get PKCE always and exact redirect URIs, and
the consent page says they are not the operator's.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError
from authlib.oauth2.rfc6749.util import scope_to_list
from litestar.stores.base import Store

from gateway.oauth.metadata_documents import DocumentRefused, MetadataDocuments, is_metadata_url
from gateway.oauth.tokens import digest
from gateway.snapshot import OAuthClientSpec, OAuthSpec

__all__ = ["SECRET_METHODS", "Client", "ClientRegistry"]

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
REGISTERED_TTL = 90 * 86400
"""A registered client unused this long is forgotten (each token issued renews it)."""
NAME_LENGTH = 80


@dataclass(frozen=True, eq=False)
class Client(ClientMixin):  # type: ignore[misc]
    """One client, however it became known."""

    client_id: str
    title: str
    """Who asks, as the consent page names it."""
    scopes: tuple[str, ...]
    secret_sha256: str = ""
    """Empty: a public client (no secret, `token_endpoint_auth_method: none`, PKCE)."""
    spec: OAuthClientSpec | None = None
    """A configured client (its redirect patterns); None: one that registered itself."""
    redirect_uris: tuple[str, ...] = ()
    """A self-registered client's redirect URIs, matched exactly."""

    @property
    def public(self) -> bool:
        return not self.secret_sha256

    @property
    def requires_pkce(self) -> bool:
        """Clients that registered themselves always use PKCE (the MCP authorization spec
        requires it); configured ones (ChatGPT Actions) may not send it."""
        return self.spec is None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # redirect_uri is always required

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.scopes)  # none asked for: all this client may have
        return " ".join(s for s in scope_to_list(scope) if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if self.spec is not None:
            return self.spec.allows_redirect(redirect_uri)
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.public:
            return False
        return hmac.compare_digest(digest(client_secret), self.secret_sha256)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # The same for the token and revocation endpoints: a public client presents only
        # its id, a confidential one its secret.
        return method == "none" if self.public else method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class _Registered(msgspec.Struct, frozen=True):
    """A registered client as the store keeps it."""

    name: str
    redirect_uris: list[str]
    secret_sha256: str = ""
    issued_at: int = 0


def _name(raw: object, fallback: str) -> str:
    text = " ".join(str(raw or "").split())[:NAME_LENGTH]
    return text if text and text.isprintable() else fallback


class ClientRegistry:
    """Finds a client by id: configured, registered (store) or by its metadata document."""

    def __init__(self, spec: OAuthSpec, configured: dict[str, Client], store: Store) -> None:
        self.spec = spec
        self.configured = configured
        self.store = store
        self.documents = MetadataDocuments(spec.registration.allow_private_networks)

    @staticmethod
    def _key(client_id: str) -> str:
        return f"oauth:registered:{digest(client_id)}"

    async def find(self, client_id: str) -> Client | None:
        """The client, or None when nobody is known by this id; a metadata document that
        cannot be used raises InvalidClientError saying why."""
        found = self.configured.get(client_id)
        if found is not None:
            return found
        registration = self.spec.registration
        if is_metadata_url(client_id):
            if not registration.metadata_documents:
                return None
            try:
                document = await self.documents.get(client_id)
            except DocumentRefused as refused:
                raise InvalidClientError(
                    description=f"The client's metadata document cannot be used: {refused}."
                ) from refused
            host = urlsplit(client_id).hostname or client_id
            return Client(
                client_id=client_id,
                title=f"{_name(document.name, host)} ({host})",
                scopes=tuple(self.spec.scopes),
                redirect_uris=document.redirect_uris,
            )
        if not registration.dynamic:
            return None
        raw = await self.store.get(self._key(client_id))
        if raw is None:
            return None
        return self._registered(client_id, msgspec.json.decode(raw, type=_Registered))

    def _registered(self, client_id: str, record: _Registered) -> Client:
        return Client(
            client_id=client_id,
            title=f"{record.name} (registered itself)",
            scopes=tuple(self.spec.scopes),
            secret_sha256=record.secret_sha256,
            redirect_uris=tuple(record.redirect_uris),
        )

    async def register(
        self, client_id: str, secret: str | None, metadata: dict[str, Any]
    ) -> Client:
        """Keep a client checked by authlib's registration endpoint (RFC 7591 3.2.1);
        ``secret`` None: a public client. Only the secret's hash is kept."""
        record = _Registered(
            name=_name(metadata.get("client_name"), "An unnamed app"),
            redirect_uris=[str(uri) for uri in metadata["redirect_uris"]],
            secret_sha256=digest(secret) if secret else "",
            issued_at=int(time.time()),
        )
        await self.store.set(self._key(client_id), msgspec.json.encode(record), REGISTERED_TTL)
        return self._registered(client_id, record)

    async def renew(self, client_id: str) -> None:
        """A registered client in use stays registered (called when tokens are issued)."""
        key = self._key(client_id)
        if client_id in self.configured or is_metadata_url(client_id):
            return
        raw = await self.store.get(key)
        if raw is not None:
            await self.store.set(key, raw, REGISTERED_TTL)
