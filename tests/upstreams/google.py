"""A loopback Google OAuth 2.0 token endpoint and a Gmail API v1 subset, in one app.

Wire facts (shared/UPSTREAMS.md sections 2.2 and 2.3, field names from the Gmail v1 discovery
document): ``POST /token`` takes a form (``grant_type=authorization_code`` with ``code`` and
``redirect_uri``, or ``grant_type=refresh_token``); the client authenticates with
``client_id``/``client_secret`` in the form or HTTP Basic. A refresh answers without a
``refresh_token`` (Google does not rotate) and a revoked one gets ``invalid_grant`` /
``Token has been expired or revoked.``. Gmail lives under ``/gmail/v1/users/me/`` and wants
``Authorization: Bearer <access token>``; its errors use Google's ``{"error": {...}}`` envelope.

Several Google accounts may connect through the one OAuth client: ``issue_code(account)``
gives a code that signs in ``account``; the tokens issued for it (and refreshed from them)
belong to that account (``account_of(access_token)``), and ``GET profile`` names it. Codes in
``valid_codes`` belong to ``email_address``. The mailbox is shared by every account.

The mailbox holds real RFC 822 messages (bytes, CRLF line ends, built with the ``email``
package or given as they are); ``messages.get`` derives every format from them as the
discovery document says: ``raw`` is the base64url of those bytes (no ``payload``), ``full``
the parsed MessagePart tree (text parts' decoded bytes in ``body.data``, attachments as an
``attachmentId`` and their decoded size), ``metadata`` the headers only, ``minimal`` neither.
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
from email.message import EmailMessage, Message
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


def _text(value: object) -> str:
    """A header or text value as JSON can carry it (raw 8-bit bytes are read as UTF-8)."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def _headers_of(part: Message) -> list[dict[str, str]]:
    """A part's headers in order, their values decoded (RFC 2047 words), as Gmail lists them."""
    headers = []
    for name, raw in part.raw_items():
        try:
            value = str(email.policy.default.header_fetch_parse(name, raw))
        except Exception:
            value = "".join(str(raw).splitlines())
        headers.append({"name": name, "value": _text(value)})
    return headers


def _decoded(part: Message) -> bytes:
    """A leaf part's content with its transfer encoding undone (Gmail's ``body.data``)."""
    if part.is_multipart():
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        try:
            return first.as_bytes() if isinstance(first, Message) else b""
        except Exception:
            return b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


@dataclass
class StoredMessage:
    """One message of the mailbox: its RFC 822 bytes and Gmail's bookkeeping."""

    id: str
    thread_id: str
    raw: bytes
    label_ids: list[str]
    history_id: str
    internal_date: int
    """Epoch milliseconds (from the Date header, else the time it was added)."""

    def parsed(self) -> Message:
        return email.parser.BytesParser(policy=email.policy.default).parsebytes(self.raw)

    def headers(self) -> Message:
        """The top-level headers alone (however deep the parts nest)."""
        parser = email.parser.BytesParser(policy=email.policy.default)
        return parser.parsebytes(self.raw, headersonly=True)

    def header(self, name: str) -> str:
        for header in _headers_of(self.headers()):
            if header["name"].lower() == name.lower():
                return header["value"]
        return ""

    def snippet(self) -> str:
        """The start of the first text/plain part (else the text of a text/html one)."""
        found = {"text/plain": "", "text/html": ""}
        try:
            parts = list(self.parsed().walk())
        except RecursionError:
            return ""
        for part in parts:
            kind = part.get_content_type()
            if kind in found and not found[kind] and not part.get_filename():
                charset = part.get_content_charset() or "utf-8"
                try:
                    found[kind] = _decoded(part).decode(charset, "replace")
                except LookupError:
                    found[kind] = _decoded(part).decode("utf-8", "replace")
        text = found["text/plain"] or re.sub(r"<[^>]+>", " ", found["text/html"])
        return " ".join(text.split())[:100]

    def resource(self) -> dict[str, Any]:
        """The Message resource without ``payload`` or ``raw`` (what ``minimal`` returns)."""
        return {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": list(self.label_ids),
            "snippet": self.snippet(),
            "historyId": self.history_id,
            "internalDate": str(self.internal_date),
            "sizeEstimate": len(self.raw),
        }

    def full(self) -> dict[str, Any]:
        """``format=full``: the resource with the parsed ``payload`` (a message nested
        deeper than the parser goes: its headers, without parts)."""
        try:
            payload = message_part(self.parsed(), "")
        except RecursionError:
            headers = self.headers()
            payload = {
                "partId": "",
                "mimeType": headers.get_content_type(),
                "filename": "",
                "headers": _headers_of(headers),
                "body": {"size": 0},
            }
        return {**self.resource(), "payload": payload}


def message_part(part: Message, part_id: str) -> dict[str, Any]:
    """Gmail's MessagePart of ``part``: children numbered ``0``, ``1``, nested ``0.1``."""
    filename = _text(part.get_filename() or "")
    node: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": filename,
        "headers": _headers_of(part),
    }
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        node["body"] = {"size": 0}
        children = part.get_payload()
        assert isinstance(children, list)
        prefix = f"{part_id}." if part_id else ""
        node["parts"] = [message_part(child, f"{prefix}{i}") for i, child in enumerate(children)]
        return node
    data = _decoded(part)
    if filename:  # attachments are fetched on their own (messages.attachments.get)
        node["body"] = {"attachmentId": f"ANGjdJ{secrets.token_urlsafe(24)}", "size": len(data)}
    else:
        node["body"] = {"size": len(data), "data": b64url(data)}
    return node


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
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    """Gmail message id -> the stored message (every format is derived from its bytes)."""
    sent: list[dict[str, Any]] = field(default_factory=list)
    """JSON bodies POSTed to ``messages/send``, as received."""
    email_address: str = "me@example.com"
    """The mailbox owner, for ``GET profile``."""
    history_id: int = 100000
    corrupt_raw: set[str] = field(default_factory=set)
    """Message ids whose ``format=raw`` answer carries a ``raw`` that is not base64url."""
    token_accounts: dict[str, str] = field(default_factory=dict)
    """Authorization code, access or refresh token -> the Google account it belongs to
    (absent: ``email_address``)."""

    def issue_code(self, account: str) -> str:
        """A fresh authorization code (usable once) that signs in ``account``."""
        code = f"4/0A{secrets.token_urlsafe(24)}"
        self.valid_codes.add(code)
        self.token_accounts[code] = account
        return code

    def account_of(self, token: str) -> str | None:
        """The account an issued access or refresh token belongs to (None: never issued)."""
        if token not in self.access_tokens and token not in self.refresh_tokens | self.revoked:
            return None
        return self.token_accounts.get(token, self.email_address)

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
        """Store a UTF-8 message (``multipart/alternative`` with ``html``); returns ``full``."""
        mail = EmailMessage()
        mail["From"] = sender
        mail["To"] = to
        mail["Subject"] = subject
        mail["Date"] = date
        mail["Message-ID"] = message_id_header
        if references is not None:
            mail["References"] = references
        mail.set_content(text)
        if html is not None:
            mail.add_alternative(html, subtype="html")
        return self.add_raw(message_id, thread_id, mail)

    def add_raw(
        self,
        message_id: str,
        thread_id: str,
        message: EmailMessage | bytes,
        labels: tuple[str, ...] = ("INBOX", "UNREAD"),
    ) -> dict[str, Any]:
        """Store a message as it is on the wire (an ``EmailMessage`` is rendered with CRLF
        line ends, as Gmail keeps mail); returns its ``format=full`` resource."""
        raw = message if isinstance(message, bytes) else message.as_bytes(policy=email.policy.SMTP)
        self.history_id += 1
        stored = StoredMessage(message_id, thread_id, raw, list(labels), str(self.history_id), 0)
        try:
            date = parsedate_to_datetime(stored.header("Date"))
            stored.internal_date = int(date.timestamp() * 1000)
        except (TypeError, ValueError):
            stored.internal_date = int(time.time() * 1000)
        self.messages[message_id] = stored
        return stored.full()

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

    def issue_access_token(self, account: str | None = None) -> str:
        """A new access token, for ``account`` (None: ``email_address``)."""
        token = f"ya29.{secrets.token_urlsafe(32)}"
        self.access_tokens[token] = time.time() + self.access_ttl
        if account is not None:
            self.token_accounts[token] = account
        return token

    def access_valid(self, token: str) -> bool:
        expiry = self.access_tokens.get(token)
        return expiry is not None and expiry > time.time()


def _matches(message: StoredMessage, query: str) -> bool:
    """A small part of Gmail's search syntax: ``is:unread``, ``in:inbox``, ``from:``,
    ``subject:``, and otherwise a case-insensitive substring of subject, from or snippet."""
    labels = set(message.label_ids)
    subject = message.header("Subject").lower()
    sender = message.header("From").lower()
    snippet = message.snippet().lower()
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
            account = state.token_accounts.pop(code, None)
            refresh_token = f"1//{secrets.token_urlsafe(48)}"
            state.refresh_tokens.add(refresh_token)
            if account is not None:
                state.token_accounts[refresh_token] = account
            access_token = state.issue_access_token(account)
            return web.json_response(token_body(access_token, refresh_token))
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
            access_token = state.issue_access_token(state.token_accounts.get(refresh_token))
            return web.json_response(token_body(access_token, None))
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
            if _matches(message, query) and label_ids <= set(message.label_ids)
        ]
        found.sort(key=lambda message: message.internal_date, reverse=True)
        page = found[offset : offset + max_results]
        body: dict[str, Any] = {}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
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
            return web.json_response(message.full())
        reduced = message.resource()
        if fmt == "minimal":
            return web.json_response(reduced)
        if fmt == "raw":  # the whole message in `raw`; `payload` is not used
            raw = "%%% not base64 %%%" if message.id in state.corrupt_raw else b64url(message.raw)
            return web.json_response({**reduced, "raw": raw})
        if fmt == "metadata":
            wanted = {name.lower() for name in request.query.getall("metadataHeaders", [])}
            parsed = message.headers()
            headers = [
                header
                for header in _headers_of(parsed)
                if not wanted or header["name"].lower() in wanted
            ]
            reduced["payload"] = {
                "partId": "",
                "mimeType": parsed.get_content_type(),
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
        threads = {message.thread_id for message in state.messages.values()}
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        return web.json_response(
            {
                "emailAddress": state.account_of(token) or state.email_address,
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
