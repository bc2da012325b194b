"""A user's connections to upstreams, whatever their kind: whether one is there, connecting
(a pasted credential, or the OAuth redirect) and disconnecting. What /connections and the
consent page use; calls read the same records through the auth flows."""

from __future__ import annotations

from gateway.snapshot import ConnectableAuth, OAuth2ClientSpec, UserTokenSpec
from gateway.upstream.credentials import UserCredentials, check_pasted
from gateway.upstream.tokens import UpstreamTokens

__all__ = ["Connections"]


class Connections:
    def __init__(self, tokens: UpstreamTokens, credentials: UserCredentials) -> None:
        self.tokens = tokens
        self.credentials = credentials

    async def connected_at(self, spec: ConnectableAuth, user: str) -> float | None:
        """When ``user`` connected ``spec``'s upstream, or None."""
        if isinstance(spec, UserTokenSpec):
            saved = await self.credentials.get(spec, user)
            return saved.connected_at if saved is not None else None
        return await self.tokens.connected_at(spec, user)

    async def save_pasted(self, spec: UserTokenSpec, user: str, pasted: str) -> None:
        """Keep a pasted credential (CredentialRejected when it has the wrong shape)."""
        await self.credentials.put(spec, user, check_pasted(spec, pasted))

    async def start_oauth(self, spec: OAuth2ClientSpec, user: str, return_to: str) -> str:
        """The provider's authorization URL; its callback comes back to ``return_to``."""
        return await self.tokens.authorization_url(spec, user, return_to)

    async def disconnect(self, spec: ConnectableAuth, user: str) -> None:
        """Forget the user's stored secret for ``spec``'s upstream."""
        if isinstance(spec, UserTokenSpec):
            await self.credentials.delete(spec, user)
        else:
            await self.tokens.disconnect(spec, user)
