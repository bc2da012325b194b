"""A loopback Google OAuth 2.0 token endpoint and a Gmail API v1 subset, in one app.

Wire facts (shared/UPSTREAMS.md sections 2.2 and 2.3, field names from the Gmail v1 discovery
document): ``POST /token`` takes a form (``grant_type=authorization_code`` with ``code`` and
``redirect_uri``, or ``grant_type=refresh_token``); the client authenticates with
``client_id``/``client_secret`` in the form or HTTP Basic. A refresh answers without a
``refresh_token`` (Google does not rotate) and a revoked one gets ``invalid_grant`` /
``Token has been expired or revoked.``. Gmail lives under ``/gmail/v1/users/me/`` and wants
``Authorization: Bearer <access token>``; its errors use Google's ``{"error": {...}}`` envelope.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.parser
import email.policy
import re
import secrets
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from tests.upstreams.server import Recorder

GMAIL_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
GMAIL_PREFIX = "/gmail/v1/users/me"

UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential."
)
NOT_FOUND_MESSAGE = "Requested entity was not found."

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64url(data: bytes) -> str:
    """URL-safe base64 with padding, as Python's ``urlsafe_b64encode`` (and Gmail) gives."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def _b64url_decode(raw: str) -> bytes:
    """Strict base64url decoding that tolerates missing padding; ``ValueError`` when invalid."""
    text = "".join(raw.split())
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        raise ValueError("bad base64url length")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def decode_raw(raw: str) -> EmailMessage:
    """The RFC 2822 message in a ``raw`` field (base64url, with or without padding)."""
    data = _b64url_decode(raw)
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(data)


def google_error(
    code: int, message: str, status: str, reason: str, detail: str | None = None, **extra: str
) -> web.Response:
    """Google's standard JSON error envelope (``detail`` is the inner ``errors[0].message``)."""
    error = {"message": detail or message, "domain": "global", "reason": reason, **extra}
    body = {"error": {"code": code, "message": message, "errors": [error], "status": status}}
    return web.json_response(body, status=code)


def unauthenticated() -> web.Response:
    response = google_error(
        401,
        UNAUTHENTICATED_MESSAGE,
        "UNAUTHENTICATED",
        "authError",
        "Invalid Credentials",
        location="Authorization",
        locationType="header",
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
    return response


def invalid_argument(message: str) -> web.Response:
    return google_error(400, message, "INVALID_ARGUMENT", "invalid")


def not_found() -> web.Response:
    return google_error(404, NOT_FOUND_MESSAGE, "NOT_FOUND", "notFound")


def oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _header(message: dict[str, Any], name: str) -> str:
    for header in message.get("payload", {}).get("headers", []):
        if header["name"].lower() == name.lower():
            return str(header["value"])
    return ""


@dataclass
class GoogleState:
    """One OAuth client and one Gmail mailbox (``me``)."""

    client_id: str
    client_secret: str
    valid_codes: set[str] = field(default_factory=set)
    """Authorization codes the token endpoint accepts, each usable once."""
    access_ttl: int = 3600
    """``expires_in`` of issued access tokens."""
    access_tokens: dict[str, float] = field(default_factory=dict)
    """Access token -> expiry (epoch seconds)."""
    refresh_tokens: set[str] = field(default_factory=set)
    revoked: set[str] = field(default_factory=set)
    """Revoked refresh tokens."""
    refresh_calls: int = 0
    code_calls: int = 0
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Gmail message id -> the full Message resource (as ``format=full`` returns it)."""
    sent: list[dict[str, Any]] = field(default_factory=list)
    """JSON bodies POSTed to ``messages/send``, as received."""
    email_address: str = "me@example.com"
    """The mailbox owner, for ``GET profile``."""
    history_id: int = 100000

    def add_message(
        self,
        message_id: str,
        thread_id: str,
        *,
        sender: str,
        to: str,
        subject: str,
        date: str,
        message_id_header: str,
        text: str,
        html: str | None = None,
        references: str | None = None,
    ) -> dict[str, Any]:
        """Store (and return) a realistic ``multipart/alternative`` Message."""
        headers = [
            {"name": "From", "value": sender},
            {"name": "To", "value": to},
            {"name": "Subject", "value": subject},
            {"name": "Date", "value": date},
            {"name": "Message-ID", "value": message_id_header},
        ]
        if references is not None:
            headers.append({"name": "References", "value": references})
        boundary = f"000000000000{secrets.token_hex(8)}"
        headers += [
            {"name": "MIME-Version", "value": "1.0"},
            {"name": "Content-Type", "value": f'multipart/alternative; boundary="{boundary}"'},
        ]
        bodies = [("text/plain", text)]
        if html is not None:
            bodies.append(("text/html", html))
        parts = []
        for index, (mime_type, content) in enumerate(bodies):
            data = content.encode()
            parts.append(
                {
                    "partId": str(index),
                    "mimeType": mime_type,
                    "filename": "",
                    "headers": [{"name": "Content-Type", "value": f'{mime_type}; charset="UTF-8"'}],
                    "body": {"size": len(data), "data": b64url(data)},
                }
            )
        try:
            internal_ms = int(parsedate_to_datetime(date).timestamp() * 1000)
        except (TypeError, ValueError):
            internal_ms = int(time.time() * 1000)
        self.history_id += 1
        message: dict[str, Any] = {
            "id": message_id,
            "threadId": thread_id,
            "labelIds": ["INBOX", "UNREAD"],
            "snippet": text[:100],
            "historyId": str(self.history_id),
            "internalDate": str(internal_ms),
            "sizeEstimate": 512 + sum(len(content.encode()) for _, content in bodies),
            "payload": {
                "partId": "",
                "mimeType": "multipart/alternative",
                "filename": "",
                "headers": headers,
                "body": {"size": 0},
                "parts": parts,
            },
        }
        self.messages[message_id] = message
        return message

    def revoke_all(self) -> None:
        """Revoke every refresh token (the user removed the app's access)."""
        self.revoked |= self.refresh_tokens
        self.refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        """Make every issued access token already expired."""
        past = time.time() - 1
        for token in self.access_tokens:
            self.access_tokens[token] = past

    def refuse_access_tokens(self) -> None:
        """Revoke every access token before its expiry (a password change, a rotation):
        Google answers 401 although the client still thinks the token is fresh."""
        self.access_tokens.clear()

    def issue_access_token(self) -> str:
        token = f"ya29.{secrets.token_urlsafe(32)}"
        self.access_tokens[token] = time.time() + self.access_ttl
        return token

    def access_valid(self, token: str) -> bool:
        expiry = self.access_tokens.get(token)
        return expiry is not None and expiry > time.time()


def _matches(message: dict[str, Any], query: str) -> bool:
    """A small part of Gmail's search syntax: ``is:unread``, ``in:inbox``, ``from:``,
    ``subject:``, and otherwise a case-insensitive substring of subject, from or snippet."""
    labels = set(message.get("labelIds", []))
    subject = _header(message, "Subject").lower()
    sender = _header(message, "From").lower()
    snippet = str(message.get("snippet", "")).lower()
    for term in query.lower().split():
        key, _, value = term.partition(":")
        if (value and key == "is") or (value and key in ("in", "label")):
            if value.upper() not in labels:
                return False
        elif value and key == "from":
            if value not in sender:
                return False
        elif value and key == "subject":
            if value not in subject:
                return False
        elif term not in subject and term not in sender and term not in snippet:
            return False
    return True


def _raw_of(message: dict[str, Any]) -> str:
    """An RFC 2822 rendering of a stored message, for ``format=raw``."""
    mail = EmailMessage()
    payload = message["payload"]
    for header in payload["headers"]:
        if header["name"].lower() not in ("mime-version", "content-type"):
            mail[header["name"]] = header["value"]
    for index, part in enumerate(payload.get("parts", [])):
        content = _b64url_decode(part["body"].get("data", "")).decode()
        subtype = part["mimeType"].split("/", 1)[1]
        if index == 0:
            mail.set_content(content, subtype=subtype)
        else:
            mail.add_alternative(content, subtype=subtype)
    return b64url(mail.as_bytes())


def google_app(state: GoogleState) -> tuple[web.Application, Recorder]:
    """The app: ``POST /token`` and ``/gmail/v1/users/me/{messages,messages/{id},...}``."""
    recorder = Recorder()

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/gmail/"):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not state.access_valid(token.strip()):
                return unauthenticated()
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[recorder.middleware, guard])

    def client_of(request: web.Request, form: Any) -> tuple[str, str]:
        authorization = request.headers.get("Authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            client_id, _, client_secret = decoded.partition(":")
            return unquote_plus(client_id), unquote_plus(client_secret)
        return str(form.get("client_id", "")), str(form.get("client_secret", ""))

    def token_body(access_token: str, refresh_token: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": access_token, "expires_in": state.access_ttl}
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        body |= {"scope": GMAIL_SCOPE, "token_type": "Bearer"}
        return body

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        client_id, client_secret = client_of(request, form)
        if not secrets.compare_digest(client_id, state.client_id) or not secrets.compare_digest(
            client_secret, state.client_secret
        ):
            return oauth_error(401, "invalid_client", "The OAuth client was not found.")
        grant_type = str(form.get("grant_type", ""))
        if grant_type == "authorization_code":
            code = str(form.get("code", ""))
            if not code:
                return oauth_error(400, "invalid_request", "Missing required parameter: code")
            if not form.get("redirect_uri"):
                return oauth_error(400, "invalid_request", "Missing parameter: redirect_uri")
            if code not in state.valid_codes:
                return oauth_error(400, "invalid_grant", "Bad Request")
            state.valid_codes.discard(code)
            state.code_calls += 1
            refresh_token = f"1//{secrets.token_urlsafe(48)}"
            state.refresh_tokens.add(refresh_token)
            return web.json_response(token_body(state.issue_access_token(), refresh_token))
        if grant_type == "refresh_token":
            refresh_token = str(form.get("refresh_token", ""))
            if not refresh_token:
                return oauth_error(
                    400, "invalid_request", "Missing required parameter: refresh_token"
                )
            if refresh_token not in state.refresh_tokens or refresh_token in state.revoked:
                return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            state.refresh_calls += 1
            await asyncio.sleep(0.05)  # lets concurrent refreshes overlap
            return web.json_response(token_body(state.issue_access_token(), None))
        return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    async def list_messages(request: web.Request) -> web.Response:
        try:
            max_results = int(request.query.get("maxResults", "100"))
        except ValueError:
            return invalid_argument("Invalid value for maxResults")
        if not 1 <= max_results <= 500:
            return invalid_argument(
                f"Invalid maxResults: {max_results}; it must be between 1 and 500"
            )
        try:
            offset = int(request.query.get("pageToken", "0"))
        except ValueError:
            return invalid_argument("Invalid pageToken")
        query = request.query.get("q", "")
        label_ids = {label.upper() for label in request.query.getall("labelIds", [])}
        found = [
            message
            for message in state.messages.values()
            if _matches(message, query) and label_ids <= set(message.get("labelIds", []))
        ]
        found.sort(key=lambda message: int(message["internalDate"]), reverse=True)
        page = found[offset : offset + max_results]
        body: dict[str, Any] = {}
        if page:
            body["messages"] = [{"id": m["id"], "threadId": m["threadId"]} for m in page]
        if offset + max_results < len(found):
            body["nextPageToken"] = str(offset + max_results)
        body["resultSizeEstimate"] = len(found)
        return web.json_response(body)

    async def get_message(request: web.Request) -> web.Response:
        message = state.messages.get(request.match_info["message_id"])
        if message is None:
            return not_found()
        fmt = request.query.get("format", "full").lower()
        if fmt == "full":
            return web.json_response(message)
        reduced = {key: value for key, value in message.items() if key != "payload"}
        if fmt == "minimal":
            return web.json_response(reduced)
        if fmt == "raw":
            return web.json_response({**reduced, "raw": _raw_of(message)})
        if fmt == "metadata":
            wanted = {name.lower() for name in request.query.getall("metadataHeaders", [])}
            payload = message["payload"]
            headers = [
                header
                for header in payload["headers"]
                if not wanted or header["name"].lower() in wanted
            ]
            reduced["payload"] = {
                "partId": "",
                "mimeType": payload["mimeType"],
                "filename": "",
                "headers": headers,
            }
            return web.json_response(reduced)
        return invalid_argument(f"Invalid value at 'format' ({fmt})")

    async def send_message(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return invalid_argument("Invalid JSON payload received.")
        if not isinstance(body, dict):
            return invalid_argument("Invalid JSON payload received.")
        raw = body.get("raw")
        if not isinstance(raw, str) or not raw:
            return invalid_argument(
                "'raw' RFC822 payload message string or uploading message via /upload/* URL "
                "required"
            )
        try:
            _b64url_decode(raw)
        except ValueError:
            return invalid_argument("Invalid value for ByteString: " + raw[:40])
        state.sent.append(body)
        new_id = secrets.token_hex(8)
        thread_id = body.get("threadId") or new_id
        return web.json_response({"id": new_id, "threadId": thread_id, "labelIds": ["SENT"]})

    async def profile(request: web.Request) -> web.Response:
        threads = {message["threadId"] for message in state.messages.values()}
        return web.json_response(
            {
                "emailAddress": state.email_address,
                "messagesTotal": len(state.messages),
                "threadsTotal": len(threads),
                "historyId": str(state.history_id),
            }
        )

    app.router.add_post("/token", token)
    app.router.add_get(f"{GMAIL_PREFIX}/profile", profile)
    app.router.add_get(f"{GMAIL_PREFIX}/messages", list_messages)
    app.router.add_post(f"{GMAIL_PREFIX}/messages/send", send_message)
    app.router.add_get(f"{GMAIL_PREFIX}/messages/{{message_id}}", get_message)
    return app, recorder
