"""Gmail for ChatGPT (routes.d/gmail.yaml): connect once, then read, send and reply.

The `gmail` upstream uses `oauth2_authorization_code`: `ctx.clients["gmail"]` adds the
connected user's access token to every call (refreshed before expiry, once across
replicas), and its `connection` starts and completes the connection. Wire facts: the Gmail
v1 discovery document (messages.list / get with format=metadata|raw|full / send with `raw`).

A message is read with `format=raw` (the RFC 822 bytes, base64url) and parsed by the
standard library's `email` package (gmail_mime.py: each part's charset, text/plain before
text/html, attachments listed without their content). A message whose raw answer is over
the upstream's `max_answer_bytes` is read with `format=full` instead, where Gmail leaves the
attachments' content out: the answer is the same.
"""

from __future__ import annotations

import asyncio
import base64
import email.policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import msgspec
from gmail_mime import ReadMessage, decode_base64url, parse_payload, parse_rfc822

from gateway.plugin import (
    Context,
    OAuth2Connection,
    PluginError,
    PluginRequest,
    PluginResponse,
    UpstreamClient,
    UpstreamTooLarge,
)

MESSAGES = "/gmail/v1/users/me/messages"
LIST_HEADERS = ("From", "Subject", "Date")
DETAIL_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID")


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    upstream: str = "gmail"
    max_body_chars: int = 20_000
    """The body is cut after this many characters."""
    max_attachments: int = 100
    """At most this many attachments are listed."""


def _gmail(ctx: Context) -> UpstreamClient:
    return ctx.clients[ctx.settings.upstream]


def _connection(ctx: Context) -> OAuth2Connection:
    connection = _gmail(ctx).connection
    if connection is None:
        raise PluginError(500, "the gmail upstream must use oauth2_authorization_code")
    return connection


async def _json(client: UpstreamClient, method: str, path: str, **kwargs: Any) -> Any:
    answer = await client.request(method, path, **kwargs)
    if answer.status == 404:
        raise PluginError(404, "Message not found")
    if not answer.ok:
        raise PluginError(502, f"Gmail answered {answer.status}")
    return answer.json()


def _headers(message: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in (message.get("payload") or {}).get("headers") or []:
        found.setdefault(header["name"].lower(), header["value"])
    return found


# --- connection ----------------------------------------------------------------------------


async def auth_url(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    url = await _connection(ctx).authorization_url()
    return {"auth_url": url, "message": "Open auth_url in a browser to connect Gmail."}


async def auth_callback(ctx: Context, request: PluginRequest) -> dict[str, Any] | PluginResponse:
    if request.query.get("error"):
        raise PluginError(400, f"Google did not connect: {request.query['error']}")
    code, state = request.query.get("code"), request.query.get("state")
    if not code or not state:
        raise PluginError(400, "the callback needs `code` and `state`")
    user, return_to = await _connection(ctx).finish(str(code), str(state))
    if return_to:  # connected from the /connections page: back to it
        return PluginResponse(302, {"status": "connected"}, {"Location": return_to})
    return {"status": "connected", "user": user}


async def auth_status(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    return await _connection(ctx).status()


# --- reading -------------------------------------------------------------------------------


async def list_messages(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    gmail = _gmail(ctx)
    query = {"maxResults": str(request.query.get("max_results") or 10)}
    if request.query.get("q"):
        query["q"] = str(request.query["q"])
    listed = await _json(gmail, "GET", MESSAGES, query=query)
    ids = [item["id"] for item in listed.get("messages") or []]

    async def summary(message_id: str) -> dict[str, Any]:
        message = await _json(
            gmail,
            "GET",
            f"{MESSAGES}/{message_id}",
            query={"format": "metadata", "metadataHeaders": list(LIST_HEADERS)},
        )
        headers = _headers(message)
        return {
            "id": message["id"],
            "thread_id": message.get("threadId"),
            "from": headers.get("from", ""),
            "subject": headers.get("subject", ""),
            "date": headers.get("date", ""),
            "snippet": message.get("snippet", ""),
        }

    return {"messages": list(await asyncio.gather(*(summary(i) for i in ids)))}


async def get_message(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    settings: Settings = ctx.settings
    message_id = str(request.path_params["message_id"])
    message, read = await _read(ctx, f"{MESSAGES}/{message_id}")
    return {
        "id": message["id"],
        "thread_id": message.get("threadId"),
        "headers": {name: read.headers.get(name.lower(), "") for name in DETAIL_HEADERS},
        "body": read.body()[: settings.max_body_chars],
        "labels": message.get("labelIds") or [],
        "attachments": [item.as_dict() for item in read.attachments[: settings.max_attachments]],
    }


async def _read(ctx: Context, path: str) -> tuple[dict[str, Any], ReadMessage]:
    """The message resource and what it says: from `format=raw`, else from `format=full`
    (a raw answer over the upstream's size cap, or bytes the parser could not read)."""
    gmail = _gmail(ctx)
    try:
        message = await _json(gmail, "GET", path, query={"format": "raw"})
    except UpstreamTooLarge:
        ctx.logger.info("message %s is too large to read raw: reading format=full", path)
    else:
        try:
            data = decode_base64url(str(message.get("raw") or ""))
        except ValueError:
            raise PluginError(502, "Gmail sent a `raw` message that is not base64url") from None
        try:
            return message, await asyncio.to_thread(parse_rfc822, data)
        except Exception as exc:  # the parser's own failure: never a 500
            ctx.logger.warning("message %s: raw parse failed (%s): reading format=full", path, exc)
    message = await _json(gmail, "GET", path, query={"format": "full"})
    return message, parse_payload(message.get("payload") or {})


# --- writing -------------------------------------------------------------------------------


def _raw(message: EmailMessage) -> str:
    """RFC 2822 bytes as Gmail's `raw`: base64url."""
    return base64.urlsafe_b64encode(message.as_bytes(policy=email.policy.SMTP)).decode()


def _single_line(field: str, value: str | None) -> None:
    """A header value from the caller must stay one header (no injected Bcc: lines)."""
    if value and any(char in value for char in "\r\n\x00"):
        raise PluginError(400, f"`{field}` must not contain a line break")


def _message(to: str, subject: str, body: str, cc: str | None = None) -> EmailMessage:
    for field, value in (("to", to), ("cc", cc), ("subject", subject)):
        _single_line(field, value)
    message = EmailMessage()
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="gateway.local")
    message.set_content(body)
    return message


async def send(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    body = request.body
    message = _message(body["to"], body["subject"], body["body"], body.get("cc"))
    sent = await _json(_gmail(ctx), "POST", f"{MESSAGES}/send", json={"raw": _raw(message)})
    return {"status": "sent", "id": sent["id"], "thread_id": sent.get("threadId")}


async def reply(ctx: Context, request: PluginRequest) -> dict[str, Any]:
    """Reply in the same thread: threadId, In-Reply-To/References, "Re:" subject."""
    gmail = _gmail(ctx)
    original = await _json(
        gmail,
        "GET",
        f"{MESSAGES}/{request.body['message_id']}",
        query={
            "format": "metadata",
            "metadataHeaders": ["From", "Reply-To", "Subject", "Message-ID", "References"],
        },
    )
    headers = _headers(original)
    subject = headers.get("subject", "")
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    to = headers.get("reply-to") or headers.get("from", "")
    if not parseaddr(to)[1]:
        raise PluginError(422, "the original message has no sender to reply to")
    message = _message(to, subject, request.body["body"])
    original_id = headers.get("message-id")
    if original_id:
        message["In-Reply-To"] = original_id
        message["References"] = f"{headers.get('references', '')} {original_id}".strip()
    sent = await _json(
        gmail,
        "POST",
        f"{MESSAGES}/send",
        json={"raw": _raw(message), "threadId": original.get("threadId")},
    )
    return {"status": "sent", "id": sent["id"], "thread_id": sent.get("threadId")}
