"""What every plugin call is given, built in one place for routes, webhooks and schedules."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gateway.compiler.plugins import PluginTarget
from gateway.oauth.upstream_tokens import UpstreamTokens
from gateway.plugin import Context, OAuth2Connection, UpstreamClient
from gateway.snapshot import OAuth2ClientSpec, PluginUpstream
from gateway.store.backend import Backend
from gateway.upstream.call import UpstreamCaller

__all__ = ["PluginRuntime"]


class PluginRuntime:
    """One per process: the upstream caller, the store and each plugin's ``state``."""

    def __init__(self, caller: UpstreamCaller, backend: Backend) -> None:
        self.caller = caller
        self.backend = backend
        self.upstream_tokens = UpstreamTokens(backend.store, backend.locks)
        self.state: dict[str, dict[str, Any]] = {}
        """Per plugin module, kept for the life of the process (across reloads)."""

    def context(
        self,
        target: PluginTarget,
        upstreams: Mapping[str, PluginUpstream],
        request_id: str,
        user: str | None = None,
    ) -> Context:
        """``user``: whose upstream connections the clients use (default: `default`)."""
        clients = {
            name: UpstreamClient(
                up.settings,
                up.static_headers,
                up.retry,
                self.caller.send,
                request_id,
                self.connection(up.oauth2, user),
            )
            for name, up in upstreams.items()
        }
        return Context(
            settings=target.settings,
            clients=clients,
            store=self.backend.store,
            state=self.state.setdefault(target.module, {}),
            logger=logging.getLogger(f"gateway.plugins.{target.module}"),
            request_id=request_id,
            locks=self.backend.locks,
            limiter=self.backend.limiter,
        )

    def connection(
        self, spec: OAuth2ClientSpec | None, user: str | None
    ) -> OAuth2Connection | None:
        if spec is None:
            return None
        return OAuth2Connection(spec, self.upstream_tokens, user or "default")
