"""Compile each route file's `upstream:`: client settings, static headers and credentials,
the per-call auth kind, and the retry policy its calls get."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.compiler.collect import Compilation, missing_under
from gateway.config.load import LoadedRoutes
from gateway.config.model import (
    BearerAuth,
    HeaderAuth,
    OAuth2AuthorizationCode,
    PassthroughAuth,
    Retry,
    Upstream,
    UserTokenAuth,
)
from gateway.sealed import Sealer
from gateway.snapshot import (
    ConnectableAuth,
    OAuth2ClientSpec,
    OutboundAuth,
    RetryPolicy,
    UpstreamBinding,
    UpstreamSettings,
    UserTokenSpec,
)
from gateway.snapshot import PassthroughAuth as PassthroughSpec

__all__ = [
    "CONNECTIONS_PATH",
    "DEFAULT_TIMEOUT",
    "DeclaredUpstream",
    "compile_upstreams",
    "retry_policy",
]

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_BACKOFF = 0.2
DEFAULT_DEADLINE = 40.0  # under ChatGPT's 45 s
DEFAULT_REFRESH_MARGIN = 60.0
CONNECTIONS_PATH = "/connections"
NO_ENCRYPTION_KEY = (
    "keeps users' credentials, and the store is durable: set `store.encryption_keys` "
    "(GATEWAY_ENCRYPTION_KEYS; `gateway secret-key` makes one)"
)


@dataclass(frozen=True, slots=True)
class DeclaredUpstream:
    """One compiled upstream and the file that declares it."""

    settings: UpstreamSettings
    config: Upstream
    loaded: LoadedRoutes
    headers: dict[str, str]
    """Static headers of every call, static credentials included."""
    auth: OutboundAuth | None

    @property
    def unconfigured(self) -> str | None:
        """The 503 message while a variable of the `upstream:` section is unset, or while
        users' credentials cannot be kept (no encryption key for a durable store)."""
        variables = missing_under(self.loaded.source.missing, "$.upstream")
        if variables:
            return f'upstream "{self.settings.name}" is not configured: set {", ".join(variables)}'
        if isinstance(self.auth, (OAuth2ClientSpec, UserTokenSpec)) and self.auth.sealer is None:
            return f'upstream "{self.settings.name}" {NO_ENCRYPTION_KEY}'
        return None

    @property
    def connectable(self) -> ConnectableAuth | None:
        """How a user connects this upstream, if users hold their own credentials for it."""
        return self.auth if isinstance(self.auth, (OAuth2ClientSpec, UserTokenSpec)) else None

    def binding(self, retry: RetryPolicy) -> UpstreamBinding:
        return UpstreamBinding(self.settings, self.headers, retry, self.auth)


def compile_upstreams(run: Compilation, sealer: Sealer | None) -> dict[str, DeclaredUpstream]:
    """``sealer``: encrypts users' credentials in the store (None: no key, durable store)."""
    found: dict[str, DeclaredUpstream] = {}
    defaults = run.config.gateway.defaults
    public_url = run.config.gateway.server.public_url.rstrip("/")
    for loaded in run.config.route_files:
        upstream = loaded.content.upstream
        if upstream is None:
            continue
        if upstream.name in found:
            other = found[upstream.name].loaded.source
            run.error(
                loaded.source,
                "$.upstream.name",
                f"upstream `{upstream.name}` is already declared in {other.name}",
            )
            continue
        url = urlsplit(upstream.base_url)
        unset = missing_under(loaded.source.missing, "$.upstream.base_url")
        if not unset and (url.scheme not in ("http", "https") or not url.hostname):
            run.error(
                loaded.source,
                "$.upstream.base_url",
                f"expected an absolute http(s) URL, got {upstream.base_url!r}",
            )
        settings = UpstreamSettings(
            name=upstream.name,
            base_url=upstream.base_url.rstrip("/"),
            timeout=upstream.timeout or defaults.timeout or DEFAULT_TIMEOUT,
            connect_timeout=upstream.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
            max_connections=upstream.max_connections,
            max_answer_bytes=upstream.max_answer_bytes,
        )
        headers, auth = _outbound(upstream, public_url, sealer)
        found[upstream.name] = DeclaredUpstream(settings, upstream, loaded, headers, auth)
    return found


def retry_policy(run: Compilation, retry: Retry | None, upstream: Upstream | None) -> RetryPolicy:
    """The route's retry, else its upstream's, else the gateway default, else one attempt."""
    retry = retry or (upstream.retry if upstream else None)
    retry = retry or run.config.gateway.defaults.retry
    deadline = run.config.gateway.defaults.deadline or DEFAULT_DEADLINE
    if retry is None:
        return RetryPolicy(1, frozenset(), 0.0, deadline)
    return RetryPolicy(
        retry.attempts, frozenset(retry.on_status), retry.backoff or DEFAULT_BACKOFF, deadline
    )


def _outbound(
    upstream: Upstream, public_url: str, sealer: Sealer | None
) -> tuple[dict[str, str], OutboundAuth | None]:
    """Static headers of every call (upstream headers + static credentials), and the auth
    that acts per call (passthrough, a user's OAuth token) if any. A header whose value is
    empty (an optional `${VAR:-}` left unset) is not sent."""
    headers = {name: value for name, value in upstream.headers.items() if value}
    auth = upstream.auth
    if isinstance(auth, BearerAuth):
        headers["Authorization"] = f"Bearer {auth.token}"
    elif isinstance(auth, HeaderAuth):
        headers[auth.name] = auth.value
    elif isinstance(auth, PassthroughAuth):
        return headers, PassthroughSpec(auth.header)
    elif isinstance(auth, UserTokenAuth):
        return headers, UserTokenSpec(
            upstream=upstream.name,
            header=auth.header,
            prefix=auth.prefix,
            jwt_only=auth.format == "jwt",
            title=auth.title or f"{upstream.name} token",
            instructions=auth.instructions,
            max_length=auth.max_length,
            connect_url=f"{public_url}{CONNECTIONS_PATH}/{upstream.name}",
            sealer=sealer,
        )
    elif isinstance(auth, OAuth2AuthorizationCode):
        return headers, OAuth2ClientSpec(
            upstream=upstream.name,
            client_id=auth.client_id,
            client_secret=auth.client_secret,
            authorize_url=auth.authorize_url,
            token_url=auth.token_url,
            redirect_uri=public_url + auth.redirect_path,
            scopes=tuple(auth.scopes),
            authorize_params=dict(auth.authorize_params),
            refresh_margin=DEFAULT_REFRESH_MARGIN
            if auth.refresh_margin is None
            else auth.refresh_margin,
            connect_url=f"{public_url}{CONNECTIONS_PATH}/{upstream.name}",
            sealer=sealer,
        )
    return headers, None
