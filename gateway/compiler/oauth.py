"""Compile gateway.yaml `oauth:`: the authorization server's clients, scopes, users, login.

The accounts are `oauth.users` and the entries of `oauth.users_from` (one value, from the
environment or a file, holding `username:password:user_id` entries separated by commas or
line breaks); :func:`oauth_accounts` reads both, for the server and for the webhooks'
`user` check alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway.compiler.collect import Compilation
from gateway.compiler.plugins import resolve_handler
from gateway.config.model import OAuthServer, OpenIdIdentity
from gateway.snapshot import (
    IdentitySpec,
    OAuthClientSpec,
    OAuthSpec,
    PluginTarget,
    RegistrationSpec,
)

__all__ = ["Account", "Accounts", "compile_oauth", "oauth_accounts"]

DEFAULT_ACCESS_TTL = 3600.0
DEFAULT_REFRESH_TTL = 30 * 86400.0
DEFAULT_CODE_TTL = 300.0
DEFAULT_SESSION_TTL = 12 * 3600.0
IDENTITY_CALLBACK = "/oauth/identity/callback"
"""Where an OpenID provider sends the browser back (gateway.oauth.accounts serves it)."""
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")
USERS_FROM = "$.oauth.users_from"
_WHITESPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Account:
    """One person who can sign in on the consent page, and the user id of their tokens."""

    username: str
    password: str = field(repr=False)
    user_id: str


@dataclass(frozen=True)
class Accounts:
    """The accounts that can sign in, and the mistakes found as ``($.path, message)``
    (which quote no entry: entries hold passwords)."""

    accounts: tuple[Account, ...]
    errors: tuple[tuple[str, str], ...]


def oauth_accounts(settings: OAuthServer) -> Accounts:
    """`oauth.users` entries whose three values are set (unset variables leave an entry
    out: nobody signs in as ""), then the entries of `oauth.users_from`."""
    accounts: list[Account] = []
    errors: list[tuple[str, str]] = []
    declared: dict[str, str] = {}  # username -> where it was declared first
    for index, user in enumerate(settings.users):
        if not (user.username and user.password and user.user_id):
            continue
        where = f"`oauth.users[{index}]`"
        if user.username in declared:
            errors.append(
                (
                    f"$.oauth.users[{index}].username",
                    f"this username is also {declared[user.username]}",
                )
            )
            continue
        declared[user.username] = f"declared at {where}"
        accounts.append(Account(user.username, user.password, user.user_id))
    several_lines = "\n" in settings.users_from.strip()
    for number, line, entry in _entries(settings.users_from):
        name = f"`users_from` entry {number}" + (f" (line {line})" if several_lines else "")
        account, problem = _account(entry)
        if account is not None and account.username in declared:
            problem = f"the username is also {declared[account.username]}"
        if problem is not None or account is None:
            errors.append((USERS_FROM, f"{name}: {problem}"))
            continue
        declared[account.username] = f"declared by {name}"
        accounts.append(account)
    return Accounts(tuple(accounts), tuple(errors))


def _entries(text: str) -> Iterator[tuple[int, int, str]]:
    """(entry number, line number, entry) of each entry; `#` lines and blanks skipped."""
    number = 0
    for line_number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for part in line.split(","):
            if entry := part.strip():
                number += 1
                yield number, line_number, entry


def _account(entry: str) -> tuple[Account | None, str | None]:
    """The account an entry declares, or why it declares none."""
    username, _, rest = entry.partition(":")
    password, separator, user_id = rest.rpartition(":")
    if not separator:
        fields = entry.count(":") + 1
        return None, (
            "expected `username:password:user_id` (three fields separated by `:`), "
            f"got {fields} field{'s' if fields > 1 else ''}"
        )
    for value, what in ((username, "username"), (password, "password"), (user_id, "user id")):
        if not value:
            return None, f"the {what} is empty"
    for value, what in ((username, "username"), (user_id, "user id")):
        if _WHITESPACE.search(value):
            return None, f"the {what} holds a space"
    return Account(username, password, user_id), None


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
    accounts = oauth_accounts(settings)
    for path, message in accounts.errors:
        run.error(source, path, message)
    return OAuthSpec(
        identity=_identity(run, settings.identity),
        issuer=run.config.gateway.server.public_url.rstrip("/"),
        clients=tuple(clients),
        scopes=dict(settings.scopes),
        users={user.username: (user.password, user.user_id) for user in accounts.accounts},
        login=login,
        access_ttl=settings.access_token_ttl or DEFAULT_ACCESS_TTL,
        refresh_ttl=settings.refresh_token_ttl or DEFAULT_REFRESH_TTL,
        code_ttl=settings.code_ttl or DEFAULT_CODE_TTL,
        session_ttl=settings.session_ttl or DEFAULT_SESSION_TTL,
        registration=RegistrationSpec(
            dynamic=settings.registration.dynamic,
            per_hour=settings.registration.per_hour,
            metadata_documents=settings.registration.metadata_documents,
            allow_private_networks=settings.registration.allow_private_networks,
        ),
    )


def _listed(entries: list[str]) -> list[str]:
    """Entries, each possibly holding several separated by commas (one `${VAR}`)."""
    return [part.strip() for entry in entries for part in entry.split(",") if part.strip()]


def _identity(run: Compilation, identity: OpenIdIdentity | None) -> IdentitySpec | None:
    """The OpenID Connect provider users sign in with; off while its issuer or client id
    is empty (optional variables left unset)."""
    if identity is None or not (identity.issuer and identity.client_id):
        return None
    where = "$.oauth.identity"
    issuer = identity.issuer.rstrip("/")
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
        run.error(run.gateway_source, f"{where}.issuer", f"expected an https URL, got {issuer!r}")
    if not identity.client_secret:
        run.error(run.gateway_source, f"{where}.client_secret", "the client secret is empty")
    allow_domains = _listed(identity.allow_domains)
    allow_emails = _listed(identity.allow_emails)
    for position, domain in enumerate(allow_domains):
        if "@" in domain or not _DOMAIN.fullmatch(domain.lower()):
            run.error(
                run.gateway_source,
                f"{where}.allow_domains[{position}]",
                f"expected a domain such as example.com, got {domain!r}",
            )
    for position, address in enumerate(allow_emails):
        if address.count("@") != 1:
            run.error(
                run.gateway_source,
                f"{where}.allow_emails[{position}]",
                f"expected an email address, got {address!r}",
            )
    scopes = tuple(dict.fromkeys(["openid", *identity.scopes]))
    return IdentitySpec(
        issuer=issuer,
        client_id=identity.client_id,
        client_secret=identity.client_secret,
        scopes=scopes,
        name=identity.name,
        allow_emails=frozenset(address.lower() for address in allow_emails),
        allow_domains=frozenset(domain.lower() for domain in allow_domains),
        redirect_uri=run.config.gateway.server.public_url.rstrip("/") + IDENTITY_CALLBACK,
    )
