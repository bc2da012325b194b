"""ChatBETO: the OpenAI conversations listener (routes.d/openai.yaml, `/api/v1/openai/*`).

Projects hold conversations; a conversation is stored by the gateway (chatbeto_store: its
own id, project, title, messages) and lives upstream as an OpenAI conversation answered
with the Responses API (chatbeto_openai). Listing and reading come from the store alone.
A message to a conversation OpenAI no longer has (404) recreates it with its history first;
`POST /sync` does that for every stored conversation in the background (chatbeto_sync).

Every answer is the original service's envelope, `{"status": "success", "data": {...}}`;
errors are `{"status": "error", "message": ...}` (the routes' `response.error_body`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from chatbeto_openai import ConversationGone, OpenAI, Reply
from chatbeto_store import (
    Conversation,
    Message,
    Records,
    Role,
    SyncJob,
    metadata,
    new_id,
    now_iso,
)
from chatbeto_sync import ALIVE_SECONDS, SyncRun, alive_key, recreate

from gateway.plugin import Context, PluginError, PluginRequest, PluginResponse, UpstreamError

STATUS_KEY = "chatbeto:status"
FAILED_STATUS_SECONDS = 5
SYNC_LOCK, SYNC_CURRENT = "chatbeto:sync", "chatbeto:sync:current"


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str = "gpt-4o-mini"
    """The model used when the caller names none (`OPENAI_MODEL`)."""
    output_limit: int = 1000
    """Most tokens of one answer (`OPENAI_MAX_TOKENS`)."""
    temperature: float | None = 0.7
    """Sampling temperature (`OPENAI_TEMPERATURE`); None: the model's default."""
    status_cache_seconds: int = 30
    """How long a healthy `GET /status` is remembered (a failed check: 5 s at most)."""
    lock_seconds: float = 10.0
    """Lease of a conversation's lock (renewed while a message is answered)."""
    wait_seconds: float = 30.0
    """How long a message waits for its conversation's lock before a 503."""


def ok(data: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "data": data}


def _settings(ctx: Context) -> Settings:
    settings: Settings = ctx.settings
    return settings


def _records(ctx: Context) -> Records:
    settings = _settings(ctx)
    return Records(ctx, settings.lock_seconds, settings.wait_seconds)


def _openai(ctx: Context) -> OpenAI:
    settings = _settings(ctx)
    return OpenAI(ctx.clients["openai"], settings.output_limit, settings.temperature)


def _answer(reply: Reply) -> Message:
    return Message(
        id=new_id("msg"),
        role="assistant",
        content=reply.content,
        created_at=now_iso(),
        model=reply.model,
    )


def _response(message: Message, reply: Reply) -> dict[str, Any]:
    return {**message.public(), "finish_reason": reply.finish, "usage": reply.usage}


async def status(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """`GET /status`: healthy once a real `GET /models` worked (remembered for a while)."""
    cached = await ctx.store.get(STATUS_KEY)
    if cached is not None:
        health = msgspec.json.decode(cached)
    else:
        try:
            await _openai(ctx).check()
            health = {"status": "healthy"}
        except (PluginError, UpstreamError) as exc:
            detail = exc.detail if isinstance(exc, PluginError) else str(exc)
            health = {"status": "unhealthy", "error": detail}
        seconds = _settings(ctx).status_cache_seconds
        if health["status"] != "healthy":
            seconds = min(seconds, FAILED_STATUS_SECONDS)
        await ctx.store.set(STATUS_KEY, msgspec.json.encode(health), max(1, seconds))
    return ok({"openai": health, "initialized": True})


async def create_conversation(ctx: Context, request: PluginRequest) -> PluginResponse:
    """`POST /conversations {projectId, title?, initialMessage?, model?}` (201)."""
    body = request.body
    first = body.get("initialMessage")
    at = now_iso()
    conversation = Conversation(
        id=new_id("chat"),
        project_id=body["projectId"],
        title=body.get("title") or (first or "New conversation")[:80],
        created_at=at,
        updated_at=at,
        owner=request.user,
    )
    openai = _openai(ctx)
    openai_id = await openai.create_conversation(metadata(conversation), [])
    conversation = msgspec.structs.replace(conversation, openai_id=openai_id)
    data: dict[str, Any] = {}
    if first:
        user = Message(id=new_id("msg"), role="user", content=first, created_at=at)
        model = body.get("model") or _settings(ctx).model
        reply = await openai.respond(openai_id, "user", first, model)
        answer = _answer(reply)
        conversation = conversation.adding(user, answer)
        data["response"] = _response(answer, reply)
    await _records(ctx).add(conversation)
    ctx.logger.info("conversation %s created in %s", conversation.id, conversation.project_id)
    return PluginResponse(201, ok({"conversation": conversation.public(), **data}))


async def add_message(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """`POST /conversations/{id}/messages {message, role?, model?}`: the model's reply."""
    body = request.body
    conversation_id = str(request.path_params["id"])
    role: Role = body.get("role", "user")  # the schema allows user, assistant, system
    text: str = body["message"]
    model = body.get("model") or _settings(ctx).model
    records, openai = _records(ctx), _openai(ctx)
    async with records.locked(f"chatbeto:conversation:{conversation_id}"):
        conversation = await records.conversation(conversation_id)
        if conversation is None or not conversation.visible_to(request.user):
            raise PluginError(404, f"conversation {conversation_id} not found")
        user = Message(id=new_id("msg"), role=role, content=text, created_at=now_iso())
        if conversation.openai_id is None:  # recorded by a webhook, never created upstream
            conversation = await recreate(records, openai, conversation)
        try:
            reply = await openai.respond(conversation.upstream, role, text, model)
        except ConversationGone:
            ctx.logger.info("conversation %s is gone at OpenAI: recreated", conversation_id)
            conversation = await recreate(records, openai, conversation)
            reply = await openai.respond(conversation.upstream, role, text, model)
        answer = _answer(reply)
        await records.save(conversation.adding(user, answer))
    data = {"conversationId": conversation_id, "message": user.public()}
    return ok({**data, "response": _response(answer, reply)})


async def get_conversation(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """`GET /conversations/{id}`: the conversation with its messages, oldest first."""
    conversation_id = str(request.path_params["id"])
    conversation = await _records(ctx).conversation(conversation_id)
    if conversation is None or not conversation.visible_to(request.user):
        raise PluginError(404, f"conversation {conversation_id} not found")
    return ok({"conversation": conversation.detail()})


async def list_conversations(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """`GET /projects/{projectId}/conversations?limit=`: newest first, without messages."""
    project_id = str(request.path_params["projectId"])
    limit = int(request.query.get("limit") or 50)
    found = await _records(ctx).in_project(project_id, limit, request.user)
    return ok(
        {
            "projectId": project_id,
            "conversations": [conversation.public() for conversation in found],
            "count": len(found),
        }
    )


async def chat_completion(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """`POST /chat/completions {messages, model?, projectId?}`: `data.response.content`."""
    body = request.body
    project_id = body.get("projectId")
    # Only what the schema checked reaches OpenAI (a message's other keys are dropped).
    messages = [{"role": item["role"], "content": item["content"]} for item in body["messages"]]
    reply = await _openai(ctx).complete(
        messages,
        body.get("model") or _settings(ctx).model,
        {"project_id": project_id} if project_id else {},
    )
    return ok({"response": reply.public(), "projectId": project_id})


async def start_sync(ctx: Context, request: PluginRequest) -> PluginResponse:
    """`POST /sync` (202): start the background sync, or report the one already running."""
    records = _records(ctx)
    lock = await ctx.locks.acquire(SYNC_LOCK, ALIVE_SECONDS, renew=True)
    if lock is None:
        current = await ctx.store.get(SYNC_CURRENT)
        job = await records.job(current.decode()) if current else None
        if job is None:
            raise PluginError(409, "a sync is starting; retry in a moment")
    else:
        job = SyncJob(job_id=new_id("sync"), status="running", total=0, started_at=now_iso())
        await records.save_job(job)
        await ctx.store.set(alive_key(job.job_id), b"1", ALIVE_SECONDS)
        await ctx.store.set(SYNC_CURRENT, job.job_id.encode())
        run = SyncRun(records, _openai(ctx), job, lock, ctx.logger)
        tasks: set[asyncio.Task[None]] = ctx.state.setdefault("sync_tasks", set())
        task = asyncio.create_task(run.run(), name=f"chatbeto-{job.job_id}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    location = f"/api/v1/openai/sync/{job.job_id}"
    return PluginResponse(202, ok(msgspec.to_builtins(job)), {"Location": location})


async def sync_status(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """`GET /sync/{jobId}`: the job's progress (`interrupted` if its process stopped)."""
    job_id = str(request.path_params["jobId"])
    records = _records(ctx)
    job = await records.job(job_id)
    if job is None:
        raise PluginError(404, f"sync job {job_id} not found")
    if job.status == "running" and await ctx.store.get(alive_key(job_id)) is None:
        job = msgspec.structs.replace(job, status="interrupted")
        await records.save_job(job)
    return ok(msgspec.to_builtins(job))
