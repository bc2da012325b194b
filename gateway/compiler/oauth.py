"""Compile gateway.yaml `oauth:`: the authorization server's clients, scopes, users, login."""

from __future__ import annotations

from gateway.compiler.collect import Compilation
from gateway.compiler.plugins import resolve_handler
from gateway.snapshot import OAuthClientSpec, OAuthSpec, PluginTarget

__all__ = ["compile_oauth"]

DEFAULT_ACCESS_TTL = 3600.0
DEFAULT_REFRESH_TTL = 30 * 86400.0
DEFAULT_CODE_TTL = 300.0


def compile_oauth(run: Compilation) -> OAuthSpec | None:
    settings = run.config.gateway.oauth
    if settings is None:
        return None
    source = run.gateway_source
    login = None
    if settings.login_handler is not None:
        resolved = resolve_handler(run.config.directory, settings.login_handler, {})
        if isinstance(resolved, PluginTarget):
            login = resolved
        else:
            run.error(source, "$.oauth.login_handler", resolved.message)
    clients = []
    for index, client in enumerate(settings.clients):
        for position, scope in enumerate(client.scopes or []):
            if scope not in settings.scopes:
                run.error(
                    source,
                    f"$.oauth.clients[{index}].scopes[{position}]",
                    f"scope `{scope}` is not declared in `oauth.scopes`",
                )
        if bool(client.client_id) != bool(client.client_secret):
            run.error(
                source,
                f"$.oauth.clients[{index}]",
                "set both `client_id` and `client_secret`, or neither (generated)",
            )
        clients.append(
            OAuthClientSpec(
                id=client.id,
                client_id=client.client_id,
                client_secret=client.client_secret,
                redirect_uris=tuple(client.redirect_uris),
                scopes=tuple(client.scopes if client.scopes is not None else settings.scopes),
            )
        )
    return OAuthSpec(
        issuer=run.config.gateway.server.public_url.rstrip("/"),
        clients=tuple(clients),
        scopes=dict(settings.scopes),
        # Entries whose variables are unset (empty) are left out: nobody logs in as "".
        users={
            user.username: (user.password, user.user_id)
            for user in settings.users
            if user.username and user.password and user.user_id
        },
        login=login,
        access_ttl=settings.access_token_ttl or DEFAULT_ACCESS_TTL,
        refresh_ttl=settings.refresh_token_ttl or DEFAULT_REFRESH_TTL,
        code_ttl=settings.code_ttl or DEFAULT_CODE_TTL,
    )
