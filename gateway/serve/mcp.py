"""`/mcp` and `/mcp/<profile>`: the routes as MCP tools, on the official SDK.

The SDK's low-level ``Server`` answers the protocol (the `initialize` handshake of
2025-06-18 and 2025-11-25, and the stateless 2026-07-28 revision with `server/discover`,
`_meta` and the `Mcp-Method`/`Mcp-Name` headers); gateway.serve.mcp_sdk says what is listed
and what a call does, and is imported on the first MCP request. This module is what comes
before: the endpoint exists (404), `Origin` and `Host` are this gateway's (DNS rebinding:
403), and on an endpoint whose document uses the gateway's OAuth, a valid token: without
one a `401` with `WWW-Authenticate: Bearer resource_metadata=..., scope=...` (RFC 9728), the
way MCP clients discover where to sign in; a `tools/call` whose tool needs a scope the
token lacks is a `403 insufficient_scope`. It also serves each endpoint's Protected
Resource Metadata.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from litestar import Litestar, Request, Response, get
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send

from gateway import metrics
from gateway.oauth.runtime import OAuthRuntime, TokenRefused
from gateway.serve.answers import Problem, read_body, send_response
from gateway.serve.inbound import Unauthorized, bearer_token
from gateway.serve.mcp_paths import (
    MCP_PATH,
    PRM_PREFIX,
    endpoint_key,
    endpoint_path,
    full_path,
    replay,
    resource_metadata_url,
)
from gateway.serve.problems import PROBLEM_CONTENT_TYPE, problem_body
from gateway.snapshot import Snapshot
from gateway.snapshot.mcp import McpTool, McpToolset

if TYPE_CHECKING:
    from gateway.serve.mcp_sdk import Dispatch, McpSdk

__all__ = ["CLAUDE_ORIGINS", "McpEndpoint"]

CLAUDE_ORIGINS = ("https://claude.ai", "https://claude.com")
"""Browsers' origins of the MCP clients that run in a page (besides `cors.allow_origins`)."""
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


class McpEndpoint:
    """One per process: ``endpoint.handlers`` are mounted at /mcp; ``endpoint.lifespan``
    stops the SDK's session manager if a request started it (Litestar does not run a
    mounted app's lifespan, and nothing of the SDK loads until it is asked for)."""

    def __init__(
        self,
        current: Callable[[], Snapshot],
        dispatch: Dispatch,
        version: str,
        oauth: OAuthRuntime | None = None,
    ) -> None:
        self.current = current
        self.dispatch = dispatch
        self.version = version
        self.oauth = oauth
        self._sdk: McpSdk | None = None
        self._starting = asyncio.Lock()
        self._stop = asyncio.Event()
        self._running: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self._running is not None:
                self._stop.set()
                await asyncio.wait([self._running], timeout=5)

    async def sdk(self) -> McpSdk:
        """The SDK server, imported and started on first use; its session manager's task
        group lives in one task of its own until shutdown."""
        if self._sdk is not None:
            return self._sdk
        async with self._starting:
            if self._sdk is None:
                module = importlib.import_module("gateway.serve.mcp_sdk")
                sdk: McpSdk = module.McpSdk(self.current, self.dispatch, self.version)
                started = asyncio.Event()

                async def keep_running() -> None:
                    async with sdk.manager.run():
                        started.set()
                        await self._stop.wait()

                self._running = asyncio.create_task(keep_running(), name="mcp-session-manager")
                waiting = asyncio.ensure_future(started.wait())
                await asyncio.wait([waiting, self._running], return_when=asyncio.FIRST_COMPLETED)
                if not started.is_set():
                    waiting.cancel()
                    self._running.result()  # raises what stopped it
                self._sdk = sdk
        return self._sdk

    @property
    def handlers(self) -> list[Any]:
        """The endpoint itself and each endpoint's Protected Resource Metadata."""

        @asgi(MCP_PATH, is_mount=True, copy_scope=True)
        async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            await self.serve(dict(scope), receive, send)

        @get([PRM_PREFIX + MCP_PATH, PRM_PREFIX + MCP_PATH + "/{profile:str}"])
        async def protected_resource(request: Request[Any, Any, Any]) -> Response[Any]:
            profile = request.path_params.get("profile")
            return self.resource_metadata(profile)

        return [mcp_endpoint, protected_resource]

    def resource_metadata(self, key: str | None) -> Response[Any]:
        """RFC 9728: what the endpoint is, who issues its tokens, which scopes it takes."""
        snapshot = self.current()
        toolset = snapshot.mcp.get(key)
        if toolset is None:
            body = problem_body(404, "not-found", f"no MCP endpoint at {endpoint_path(key)}")
            return Response(body, status_code=404, media_type=PROBLEM_CONTENT_TYPE.decode())
        metadata: dict[str, Any] = {
            "resource": snapshot.public_url + endpoint_path(key),
            "authorization_servers": [snapshot.oauth.issuer] if snapshot.oauth else [],
            "scopes_supported": list(toolset.scopes),
            "bearer_methods_supported": ["header"],
            "resource_name": str(snapshot.openapi.get("info", {}).get("title") or "gateway"),
        }
        return Response(metadata, headers={"Cache-Control": "max-age=300"})

    # --- HTTP -------------------------------------------------------------------------------

    async def serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        snapshot = self.current()
        key = endpoint_key(scope)
        toolset = snapshot.mcp.get(key) if key != "" else None
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        if toolset is None:
            await _refuse(send, 404, "not-found", f"no MCP endpoint at {full_path(scope)}")
            return
        refusal = _origin_refusal(snapshot, headers)
        if refusal is not None:
            await _refuse(send, 403, "origin-not-allowed", refusal)
            return
        if toolset.scheme_type == "oauth" and scope["method"] == "POST":
            try:
                body = await read_body(receive, headers, snapshot.max_body_bytes)
            except Problem as problem:
                await _refuse(send, problem.status, problem.slug, problem.detail)
                return
            denied = await self._token_refusal(snapshot, key, toolset, headers, body)
            if denied is not None:
                status, slug, detail, challenge = denied
                await _refuse(send, status, slug, detail, [(b"www-authenticate", challenge)])
                return
            receive = replay(body)  # the SDK reads the body again
        await (await self.sdk()).manager.handle_request(scope, receive, send)

    async def _token_refusal(
        self,
        snapshot: Snapshot,
        key: str | None,
        toolset: McpToolset,
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, str, str, bytes] | None:
        """(status, slug, detail, WWW-Authenticate) of a request the gateway's OAuth does
        not let through, or None."""
        metadata = resource_metadata_url(snapshot.public_url, key)
        scopes = " ".join(toolset.scopes)
        challenge = f'Bearer resource_metadata="{metadata}", scope="{scopes}"'
        if self.oauth is None:
            return None
        try:
            resource = snapshot.public_url + endpoint_path(key)
            grant = await self.oauth.verify(bearer_token(headers), (), resource)
        except Unauthorized as exc:
            metrics.auth_failed("oauth_token")
            return 401, "unauthorized", exc.detail, challenge.encode()
        except TokenRefused as exc:
            metrics.auth_failed("oauth_token")
            refused = f'{challenge}, error="{exc.error}", error_description="{exc.detail}"'
            return exc.status, "invalid-token", exc.detail, refused.encode()
        tool = _called_tool(body, headers, toolset)
        if tool is not None and not set(tool.scopes) <= grant.scopes:
            missing = " ".join(scope for scope in tool.scopes if scope not in grant.scopes)
            metrics.auth_failed("oauth_scope")
            detail = f"the token lacks the scope {missing}"
            needed = " ".join(tool.scopes)
            denied = (
                f'Bearer error="insufficient_scope", scope="{needed}", '
                f'resource_metadata="{metadata}", error_description="{detail}"'
            )
            return 403, "insufficient-scope", detail, denied.encode()
        return None


def _called_tool(body: bytes, headers: Mapping[str, str], toolset: McpToolset) -> McpTool | None:
    """The tool a `tools/call` names (its body, or the 2026-07-28 `Mcp-Name` header)."""
    name = None
    if headers.get("mcp-method") == "tools/call":
        name = headers.get("mcp-name")
    try:
        message = json.loads(body) if body else None
    except ValueError:
        message = None
    if isinstance(message, dict) and message.get("method") == "tools/call":
        params = message.get("params")
        if isinstance(params, dict) and isinstance(params.get("name"), str):
            name = params["name"]
    return toolset.by_name.get(name) if name else None


def _origin_refusal(snapshot: Snapshot, headers: Mapping[str, str]) -> str | None:
    """Why a request's `Origin` or `Host` is refused (DNS rebinding), or None."""
    public = urlsplit(snapshot.public_url)
    host = headers.get("host", "")
    host_name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host and host != public.netloc and host_name not in _LOOPBACK_HOSTS:
        return f"Host {host!r} is not this gateway's ({public.netloc})"
    origin = headers.get("origin")
    if origin is None:
        return None
    allowed = {f"{public.scheme}://{public.netloc}", *CLAUDE_ORIGINS, *snapshot.cors.allow_origins}
    if origin in allowed or "*" in snapshot.cors.allow_origins:
        return None
    return f"Origin {origin!r} may not call this MCP endpoint"


async def _refuse(
    send: Any, status: int, slug: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = problem_body(status, slug, detail)
    await send_response(send, status, PROBLEM_CONTENT_TYPE, body, headers or [])
