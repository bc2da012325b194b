"""What every plugin call is given, built in one place for routes, webhooks, schedules and
the login step."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gateway.host.clients import PluginClient
from gateway.plugin import Context
from gateway.snapshot import OAuth2ClientSpec, PluginTarget, UpstreamBinding
from gateway.store.backend import StoreBackend
from gateway.upstream.auth import Caller
from gateway.upstream.outbound import Upstreams
from gateway.upstream.tokens import DEFAULT_USER, UserConnection

__all__ = ["PluginHost"]


class PluginHost:
    """One per process: the upstreams, the store and each plugin module's ``state``."""

    def __init__(self, upstreams: Upstreams, backend: StoreBackend) -> None:
        self.upstreams = upstreams
        self.backend = backend
        self.state: dict[str, dict[str, Any]] = {}
        """Per plugin module, kept for the life of the process (across reloads)."""

    def context(
        self,
        target: PluginTarget,
        bindings: Mapping[str, UpstreamBinding],
        request_id: str,
        caller: Caller | None = None,
    ) -> Context:
        """``caller``: on whose behalf the clients call (default: nobody: the operator)."""
        caller = caller or Caller()
        clients = {
            name: PluginClient(
                binding,
                self.upstreams,
                caller,
                request_id,
                self._connection(binding, caller.user),
            )
            for name, binding in bindings.items()
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

    def _connection(self, binding: UpstreamBinding, user: str | None) -> UserConnection | None:
        if not isinstance(binding.auth, OAuth2ClientSpec):
            return None
        return UserConnection(binding.auth, self.upstreams.tokens, user or DEFAULT_USER)
