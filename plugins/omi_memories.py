"""OMI memories for ChatGPT (routes.d/omi.yaml).

OMI posts each finished memory (a conversation) to our webhook with `?uid=<user>`; the
handler runs from the webhook queue and keeps the memory per user in the store. Only events
that passed the webhook's guards reach it (routes.d/omi.yaml: the URL secret, OMI's signature
when set, `uid` a user of this gateway, the per-uid rate limit), and never the URL secret:
`request.query` holds `uid` alone. ChatGPT reads them back: `GET /api/conversations` (a
list of summaries) and `/api/conversations/{id}` (the transcript as text and the structured
fields), for the user its credential maps to.

OMI's payloads vary between app versions (UPSTREAMS.md 3.1): `speakerId` or `speaker_id`,
`plugins_results`, `apps_response` or `apps_results`, string or integer ids. They are
normalised here once, when stored.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import msgspec

from gateway.plugin import Context, PluginError, PluginRequest


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keep_per_user: int = 1000
    """The newest memories kept in each user's list (older ones drop out of it)."""
    lock_seconds: float = 10.0


_SPEAKER_NUMBER = re.compile(r"(\d+)$")


def _speaker_id(segment: dict[str, Any]) -> int | None:
    for key in ("speakerId", "speaker_id"):
        value = segment.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    found = _SPEAKER_NUMBER.search(str(segment.get("speaker") or ""))
    return int(found[1]) if found else None


def normalise(memory: dict[str, Any], fallback_id: str) -> dict[str, Any]:
    """One memory in the shape we store, whatever the sender's field names."""
    found = memory.get("structured")
    structured: dict[str, Any] = found if isinstance(found, dict) else {}
    segments = []
    for segment in memory.get("transcript_segments") or []:
        if not isinstance(segment, dict):
            continue
        segments.append(
            {
                "text": str(segment.get("text") or ""),
                "speaker_id": _speaker_id(segment),
                "is_user": bool(segment.get("is_user")),
                "start": float(segment.get("start") or 0),
                "end": float(segment.get("end") or 0),
            }
        )
    apps = []
    for key in ("apps_results", "apps_response", "plugins_results"):
        for result in memory.get(key) or []:
            if isinstance(result, dict):
                app_id = result.get("app_id") or result.get("plugin_id")
                apps.append({"app_id": app_id, "content": result.get("content")})
    identifier = memory.get("id")
    return {
        "id": str(identifier) if identifier not in (None, "") else fallback_id,
        "created_at": memory.get("created_at"),
        "started_at": memory.get("started_at"),
        "finished_at": memory.get("finished_at"),
        "discarded": bool(memory.get("discarded")),
        "segments": segments,
        "structured": {
            "title": structured.get("title") or "",
            "overview": structured.get("overview") or "",
            "emoji": structured.get("emoji") or "",
            "category": structured.get("category") or "other",
            "action_items": structured.get("action_items") or [],
            "events": structured.get("events") or [],
        },
        "apps_results": apps,
    }


def _clock(seconds: float) -> str:
    return str(dt.timedelta(seconds=int(seconds)))


def transcript(segments: list[dict[str, Any]]) -> str:
    """`[0:00:10 - 0:00:15] Speaker 0: text`, the user's own lines as `User:`."""
    lines = []
    for segment in segments:
        if segment["is_user"]:
            who = "User"
        else:
            who = f"Speaker {segment['speaker_id'] if segment['speaker_id'] is not None else '?'}"
        lines.append(
            f"[{_clock(segment['start'])} - {_clock(segment['end'])}] {who}: {segment['text']}"
        )
    return "\n\n".join(lines)


def _summary(memory: dict[str, Any]) -> dict[str, Any]:
    structured = memory["structured"]
    return {
        "id": memory["id"],
        "title": structured["title"],
        "created_at": memory["created_at"],
        "category": structured["category"],
        "overview": structured["overview"],
    }


def _memory_key(uid: str, memory_id: str) -> str:
    return f"omi:{uid}:memory:{memory_id}"


def _index_key(uid: str) -> str:
    return f"omi:{uid}:index"


async def store_memory(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """Webhook handler (from the queue): keep the memory for `?uid=`."""
    uid = str(request.query["uid"])
    if not isinstance(request.body, dict):
        raise PluginError(422, "an OMI memory is a JSON object")  # never retried
    memory = normalise(request.body, fallback_id=request.event_id or request.request_id)
    if memory["discarded"]:
        ctx.logger.info("memory %s of a user is discarded by OMI: not kept", memory["id"])
        return {"kept": False}
    await ctx.store.set(_memory_key(uid, memory["id"]), msgspec.json.encode(memory))
    # The list is read-modify-write: one writer per user at a time (replicas included).
    lock = await ctx.locks.acquire(f"omi:{uid}", ctx.settings.lock_seconds)
    if lock is None:
        raise RuntimeError("another worker is updating this user's memories; retrying")
    try:
        raw = await ctx.store.get(_index_key(uid))
        index: list[dict[str, Any]] = msgspec.json.decode(raw) if raw else []
        index = [entry for entry in index if entry["id"] != memory["id"]]
        index.append(_summary(memory))
        index.sort(key=lambda entry: str(entry["created_at"] or ""), reverse=True)
        dropped = index[ctx.settings.keep_per_user :]
        await ctx.store.set(
            _index_key(uid), msgspec.json.encode(index[: ctx.settings.keep_per_user])
        )
        for entry in dropped:
            await ctx.store.delete(_memory_key(uid, entry["id"]))
    finally:
        await lock.release()
    return {"kept": True, "id": memory["id"]}


def _user(request: PluginRequest) -> str:
    if not request.user:
        raise PluginError(403, "this credential is not linked to an OMI user")
    return request.user


async def list_conversations(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """`GET /api/conversations`: the caller's memories, newest first."""
    raw = await ctx.store.get(_index_key(_user(request)))
    index = msgspec.json.decode(raw) if raw else []
    limit = int(request.query.get("limit") or 50)
    return {"conversations": index[:limit]}


async def get_conversation(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """`GET /api/conversations/{id}`: one memory with its transcript as text."""
    raw = await ctx.store.get(_memory_key(_user(request), str(request.path_params["id"])))
    if raw is None:
        raise PluginError(404, "Conversation not found")
    memory = msgspec.json.decode(raw)
    return {
        "id": memory["id"],
        "created_at": memory["created_at"],
        "started_at": memory["started_at"],
        "finished_at": memory["finished_at"],
        "transcript": transcript(memory["segments"]),
        "structured": memory["structured"],
        "apps_results": memory["apps_results"],
    }
