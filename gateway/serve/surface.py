"""The fixed surface on Litestar: health, readiness, the OpenAPI documents, docs, the admin
API and the authorization server's endpoints. Its handlers read the current snapshot; its
lifespan runs this process's watcher, webhook worker and scheduler."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from gateway.lean import litestar_without_pydantic
from gateway.logs import REQUEST_ID, logger
from gateway.oauth.accounts import account_handlers
from gateway.oauth.client_endpoints import client_handlers
from gateway.oauth.endpoints import oauth_handlers
from gateway.oauth.runtime import OAuthRuntime
from gateway.queue.events import dead_letter_summary
from gateway.queue.worker import CANCEL_WAIT, STOP_GRACE
from gateway.reload import Reloader, ReloadOutcome
from gateway.serve.docs_pages import docs_handlers
from gateway.serve.documents import ServedDocuments
from gateway.serve.keys import is_admin, require_admin
from gateway.serve.mcp import McpEndpoint
from gateway.serve.problems import PROBLEM_CONTENT_TYPE, problem_body
from gateway.serve.scrape import metrics_handler
from gateway.serve.state import GatewayState, freeze_heap
from gateway.snapshot import Snapshot
from gateway.store.throttle import Throttle

__all__ = ["fixed_surface"]

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
YAML_MEDIA_TYPE = "application/yaml"  # RFC 9512


STORE_PROBE_SECONDS = 0.5
INSTANCE = socket.gethostname()
WORKER = os.environ.get("GATEWAY_WORKER")
"""`<index>/<count>` in a worker of `gateway serve --workers N` (gateway.workers); else None."""
"""Which replica answered (a container's hostname): tells replicas apart behind a balancer."""


def _reload_error(
    reloader: Reloader | None, request: Request[Any, Any, Any], snapshot: Snapshot
) -> str | None:
    """The last refused reload: in full for the admin key, else its places and kinds only
    (a value that landed in a broken edit is nobody else's business)."""
    if reloader is None:
        return None
    return reloader.last_error if is_admin(request, snapshot) else reloader.last_error_places


def _problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    status = exc.status_code if isinstance(exc, HTTPException) else HTTP_500_INTERNAL_SERVER_ERROR
    if isinstance(exc, HTTPException) and status == 404 and exc.detail == "Not Found":
        detail = f"no route for {request.method} {request.url.path}; see /openapi.json"
    elif isinstance(exc, HTTPException):
        detail = exc.detail
    else:
        logger.exception("unhandled error on %s", request.url.path)
        detail = "internal error"
    body = problem_body(
        status,
        "http-error" if status < 500 else "internal-error",
        detail,
        request_id=REQUEST_ID.get(),
    )
    headers = exc.headers if isinstance(exc, HTTPException) else None  # e.g. a 405's Allow
    return Response(
        body, status_code=status, media_type=PROBLEM_CONTENT_TYPE.decode(), headers=headers
    )


def fixed_surface(state: GatewayState, oauth: OAuthRuntime, mcp: McpEndpoint) -> Litestar:
    throttle = Throttle(state.backend.store, state.backend.limiter)
    switch = state.switch
    documents = ServedDocuments()  # encoded once per snapshot

    @get("/health")
    async def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
        snapshot = switch.current
        tools = documents.of(snapshot).tools()  # before any await: still the current one
        reloader = state.reloader
        try:  # bounded: /health answers within a second even while the store hangs
            pending: int | None = await asyncio.wait_for(
                state.backend.queue.pending(), STORE_PROBE_SECONDS
            )
        except Exception:  # the store is away: say so rather than fail the health check
            pending = None
        worker = state.worker
        return {
            "status": "ok",
            "version": snapshot.version,
            "routes": len(snapshot.routes),
            **tools,
            "unconfigured": [
                {"route": route_id, "reason": reason}
                for route_id, reason in snapshot.unconfigured.items()
            ],
            "reloads": reloader.reloads if reloader else 0,
            "failed_reloads": reloader.failed if reloader else 0,
            "last_reload_error": _reload_error(reloader, request, snapshot),
            "uptime_seconds": round(time.time() - state.started_at, 1),
            "instance": INSTANCE,
            "process": {"pid": os.getpid(), "worker": WORKER},
            "store": state.backend.kind,
            "webhooks": {
                "ids": sorted(snapshot.webhooks),
                "pending": pending,
                "processed": worker.processed if worker else 0,
                "failed_attempts": worker.failed if worker else 0,
            },
            "schedules": {
                schedule.id: {
                    "every_seconds": schedule.every,
                    "enabled": schedule.enabled,
                    "runs": state.scheduler.runs.get(schedule.id, 0) if state.scheduler else 0,
                }
                for schedule in snapshot.schedules
            },
        }

    @get("/ready")
    async def ready() -> Response[bytes]:
        """503 while the process drains or the store cannot be reached (a load balancer
        sends traffic elsewhere)."""
        if state.draining:
            body = problem_body(
                503,
                "draining",
                "this process is stopping; send requests to another replica",
                request_id=REQUEST_ID.get(),
            )
            return Response(body, status_code=503, media_type=PROBLEM_CONTENT_TYPE.decode())
        try:
            await asyncio.wait_for(state.backend.ping(), STORE_PROBE_SECONDS)
        except Exception as exc:
            body = problem_body(
                503,
                "not-ready",
                f"the store is unreachable: {type(exc).__name__}",
                request_id=REQUEST_ID.get(),
            )
            return Response(body, status_code=503, media_type=PROBLEM_CONTENT_TYPE.decode())
        ready = {"status": "ready", "version": switch.current.version}
        return Response(msgspec.json.encode(ready), media_type=MediaType.JSON)

    @get("/", sync_to_thread=False)
    def index() -> dict[str, Any]:
        snapshot = switch.current
        return {
            "name": snapshot.openapi["info"]["title"],
            "version": snapshot.version,
            "openapi": "/openapi.json",
            "docs": "/docs",
            "redoc": "/redoc",
            "profiles": {name: f"/actions/{name}/openapi.json" for name in snapshot.profiles},
        }

    @get("/openapi.json", sync_to_thread=False)
    def openapi_json() -> Response[bytes]:
        return Response(documents.of(switch.current).json(), media_type=MediaType.JSON)

    @get("/openapi.yaml")
    async def openapi_yaml() -> Response[bytes]:
        encoded = await documents.of(switch.current).yaml_bytes()
        return Response(encoded, media_type=YAML_MEDIA_TYPE)

    def profile_of(snapshot: Snapshot, profile: str) -> str:
        if profile not in snapshot.profiles:
            known = ", ".join(sorted(snapshot.profiles)) or "none"
            raise HTTPException(
                status_code=404, detail=f"no action profile `{profile}` (known: {known})"
            )
        return profile

    @get("/actions/{profile:str}/openapi.json", sync_to_thread=False)
    def profile_json(profile: FromPath[str]) -> Response[bytes]:
        snapshot = switch.current
        encoded = documents.of(snapshot).json(profile_of(snapshot, profile))
        return Response(encoded, media_type=MediaType.JSON)

    @get("/actions/{profile:str}/openapi.yaml")
    async def profile_yaml(profile: FromPath[str]) -> Response[bytes]:
        snapshot = switch.current
        encoded = await documents.of(snapshot).yaml_bytes(profile_of(snapshot, profile))
        return Response(encoded, media_type=YAML_MEDIA_TYPE)

    @get("/.well-known/ai-plugin.json", sync_to_thread=False)
    def ai_plugin() -> dict[str, Any]:
        return dict(switch.current.ai_plugin)

    @post("/admin/reload", status_code=200)
    async def admin_reload(request: Request[Any, Any, Any]) -> Response[bytes]:
        await require_admin(request, switch.current, throttle)
        if state.reloader is None:
            raise HTTPException(status_code=503, detail="this gateway runs without reloading")
        result = await state.reloader.reload("POST /admin/reload")
        if result.outcome is ReloadOutcome.FAILED:
            problem = problem_body(
                422,
                "config-refused",
                "the configuration was refused; the previous version keeps serving",
                request_id=REQUEST_ID.get(),
                version=result.version,
                errors=list(result.errors),
            )
            return Response(problem, status_code=422, media_type=PROBLEM_CONTENT_TYPE.decode())
        body: dict[str, Any] = {
            "status": result.outcome.value,
            "version": result.version,
            "changes": result.diff.lines() if result.diff else [],
        }
        return Response(msgspec.json.encode(body), media_type=MediaType.JSON)

    @get("/admin/webhooks/dead")
    async def dead_letters(
        request: Request[Any, Any, Any], limit: FromQuery[int] = 100
    ) -> dict[str, Any]:
        await require_admin(request, switch.current, throttle)
        letters = await state.backend.queue.dead(max(1, min(limit, 1000)))
        return {"dead_letters": [dead_letter_summary(letter) for letter in letters]}

    @post("/admin/webhooks/dead/{event_id:str}/replay", status_code=200)
    async def replay_dead_letter(
        request: Request[Any, Any, Any], event_id: FromPath[str]
    ) -> dict[str, Any]:
        await require_admin(request, switch.current, throttle)
        if not await state.backend.queue.replay(event_id):
            raise HTTPException(status_code=404, detail=f"no dead letter with id {event_id}")
        return {"status": "queued", "id": event_id}

    background: list[asyncio.Task[None]] = []  # cancelled at shutdown
    workers: list[asyncio.Task[None]] = []  # stopped by a flag at shutdown (see Worker.stop)

    async def start_background() -> None:
        if state.reloader is not None and state.reloader.watch_files:
            background.append(asyncio.create_task(state.reloader.watch()))
        if state.worker is not None and switch.current.queue.consume:
            workers.append(asyncio.create_task(state.worker.run()))
        elif state.worker is not None:
            logger.info("queue: receive only (queue.consume is false)")
        if state.scheduler is not None:
            workers.append(asyncio.create_task(state.scheduler.run()))
        await oauth.server()  # creates (and prints once) generated client credentials
        freeze_heap()  # start-up's objects live as long as the process

    async def close_pool() -> None:
        # Handlers get what is left of server.shutdown_timeout after the requests in flight
        # (`gateway serve` sets the deadline; elsewhere the worker's own bound).
        grace = STOP_GRACE if state.stop_by is None else max(1.0, state.stop_by - time.monotonic())
        if state.worker is not None:
            state.worker.stop(grace)
        if state.scheduler is not None:
            state.scheduler.stop()
        for task in background:
            task.cancel()
        if workers:
            _, stuck = await asyncio.wait(workers, timeout=grace + CANCEL_WAIT + 1)
            for task in stuck:  # bounded: past its grace the worker is cancelled
                task.cancel()
        if background or workers:  # bounded: a task that swallows its cancellation stays behind
            done, _ = await asyncio.wait([*background, *workers], timeout=CANCEL_WAIT)
            await asyncio.gather(*done, return_exceptions=True)
        await state.pool.close()
        await state.backend.close()

    with litestar_without_pydantic():
        app = Litestar(
            route_handlers=[
                health,
                ready,
                index,
                openapi_json,
                openapi_yaml,
                profile_json,
                profile_yaml,
                ai_plugin,
                *docs_handlers(switch, profile_of),
                admin_reload,
                dead_letters,
                replay_dead_letter,
                metrics_handler(state, throttle, STORE_PROBE_SECONDS),
                *oauth_handlers(oauth),
                *client_handlers(oauth),
                *account_handlers(oauth),
                *mcp.handlers,
            ],
            lifespan=[mcp.lifespan],
            exception_handlers={Exception: _problem_response},
            openapi_config=None,
            logging_config=None,  # ours (gateway.logs) stays in charge of the format
            on_startup=[start_background],
            on_shutdown=[close_pool],
            debug=False,
        )
    return app
