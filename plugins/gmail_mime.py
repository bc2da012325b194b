"""A Gmail message as text: headers, the body and the attachments' names and sizes.

Used by plugins/gmail.py. ``parse_rfc822`` reads the RFC 822 bytes of ``format=raw`` with
the standard library (``email.message_from_bytes(..., policy=email.policy.default)``);
``parse_payload`` reads the MessagePart tree of ``format=full`` (Gmail's answer for messages
too large to fetch raw: attachments come as ids, not content). Both give the same
:class:`ReadMessage`:

- every text part is decoded with its own declared charset (``decode_text``); an unknown
  or missing charset, or bytes that do not fit it, give replacement characters, never an
  error;
- the body is the text/plain parts, else the text/html ones made plain (``html_to_text``);
- a part with a filename, a ``Content-Disposition: attachment`` or content that is not
  text (images, PDFs, forwarded messages) is an attachment: filename, type and the size
  of its decoded content, never the content;
- a malformed message (a missing boundary, broken base64, headers the parser cannot read)
  gives what can be read.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.policy
from dataclasses import dataclass
from email.message import Message
from typing import Any

from gateway.plugin import html_to_text

__all__ = [
    "Attachment",
    "ReadMessage",
    "decode_base64url",
    "decode_text",
    "parse_payload",
    "parse_rfc822",
]

TEXT_TYPES = ("text/plain", "text/html")
MAX_DEPTH = 32
"""Parts nested deeper than this are not read (a message built to exhaust the parser)."""

# What mail clients and browsers (the WHATWG Encoding Standard) decode these labels as:
# supersets that read every valid byte the same way and also the bytes senders put there
# by mistake (Windows "smart quotes" in a message labelled ISO-8859-1, NEC and IBM
# extensions in Shift_JIS).
_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}
_ALIASES = {"x-sjis": "cp932", "windows-31j": "cp932", "x-euc-jp": "euc_jp"}


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    mime_type: str
    size: int
    """Bytes of the decoded content."""

    def as_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "mime_type": self.mime_type, "size": self.size}


@dataclass(frozen=True, slots=True)
class ReadMessage:
    headers: dict[str, str]
    """Lower-case header name -> its first value, decoded."""
    plain: tuple[str, ...]
    html: tuple[str, ...]
    attachments: tuple[Attachment, ...]

    def body(self) -> str:
        """The text/plain parts; without any, the text/html parts made plain."""
        if any(text.strip() for text in self.plain):
            return "\n".join(self.plain).strip()
        return "\n".join(html_to_text(text) for text in self.html).strip()


def decode_base64url(raw: str) -> bytes:
    """Gmail's ``raw``: base64url, padded or not; ``ValueError`` when it is not base64url."""
    text = "".join(raw.split())
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url: {exc}") from None


def _codec(charset: str | None) -> str | None:
    """The Python codec for a declared charset; None when unknown or not a text encoding."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):  # base64, hex, zlib...: not charsets
        return None
    return _SUPERSETS.get(info.name, info.name)


def decode_text(data: bytes, charset: str | None) -> str:
    """Text from a part's bytes in its declared ``charset``, line ends made ``\\n``.

    No charset: UTF-8 when the bytes are UTF-8, else Windows-1252. An unknown charset: UTF-8.
    Bytes the charset cannot decode become U+FFFD.
    """
    codec = _codec(charset)
    if codec is None and charset is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    else:
        try:
            text = data.decode(codec or "utf-8", "replace")
        except (LookupError, UnicodeError, ValueError):  # a codec refusing "replace"
            text = data.decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _clean(value: str) -> str:
    """A value JSON can carry: raw 8-bit bytes the parser kept as surrogates read as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


# --- format=raw: the RFC 822 bytes ---------------------------------------------------------


def parse_rfc822(data: bytes) -> ReadMessage:
    """Headers, text and attachments of a whole message (the bytes of ``format=raw``)."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    _walk(message, plain, html, attachments, 0)
    return ReadMessage(_raw_headers(message), tuple(plain), tuple(html), tuple(attachments))


def _raw_headers(message: Message) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, raw in message.raw_items():
        key = name.lower()
        if key in found:
            continue
        try:
            value = str(email.policy.default.header_fetch_parse(name, raw))
        except Exception:  # a header the parser cannot read: its text, unfolded
            value = "".join(str(raw).splitlines())
        found[key] = _clean(value)
    return found


def _walk(
    part: Message,
    plain: list[str],
    html: list[str],
    attachments: list[Attachment],
    depth: int,
) -> None:
    if depth > MAX_DEPTH:
        return
    kind = _safe(part.get_content_type, "application/octet-stream")
    if kind.startswith("multipart/") and part.is_multipart():
        for child in part.get_payload():
            if isinstance(child, Message):
                _walk(child, plain, html, attachments, depth + 1)
        return
    if kind.startswith("multipart/"):
        kind = "text/plain"  # a multipart without its boundary: its text, as it is
    filename = _clean(_safe(part.get_filename, None) or "")
    disposition = _safe(part.get_content_disposition, None)
    if filename or disposition == "attachment" or kind not in TEXT_TYPES:
        attachments.append(Attachment(filename, kind, len(_content(part))))
        return
    text = decode_text(_content(part), _safe(part.get_content_charset, None))
    (plain if kind == "text/plain" else html).append(text)


def _content(part: Message) -> bytes:
    """A leaf's content with its transfer encoding undone (broken base64: what decodes)."""
    if part.is_multipart():  # message/rfc822: the enclosed message
        inner = part.get_payload()
        enclosed = inner[0] if isinstance(inner, list) and inner else None
        if not isinstance(enclosed, Message):
            return b""
        try:
            return enclosed.as_bytes()
        except Exception:  # an enclosed message that cannot be written back
            return b""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # undecodable content counts as empty
        return b""
    return payload if isinstance(payload, bytes) else b""


def _safe(read: Any, default: Any) -> Any:
    """A parser accessor that may trip over a malformed header: its default then."""
    try:
        return read()
    except Exception:
        return default


# --- format=full: Gmail's MessagePart tree -------------------------------------------------


def parse_payload(payload: dict[str, Any]) -> ReadMessage:
    """The same from ``format=full`` (``payload``): text parts carry their bytes in
    ``body.data``, attachments only an ``attachmentId`` and their size."""
    headers: dict[str, str] = {}
    for header in payload.get("headers") or []:
        name, value = str(header.get("name", "")), str(header.get("value", ""))
        if name.lower() not in headers:  # RFC 2047 words left as they were: decoded here
            headers[name.lower()] = _clean(_decoded_header(name, value))
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    _walk_parts(payload, plain, html, attachments, 0)
    return ReadMessage(headers, tuple(plain), tuple(html), tuple(attachments))


def _walk_parts(
    node: dict[str, Any],
    plain: list[str],
    html: list[str],
    attachments: list[Attachment],
    depth: int,
) -> None:
    if depth > MAX_DEPTH:
        return
    kind = str(node.get("mimeType") or "application/octet-stream").lower()
    children = node.get("parts") or []
    if kind.startswith("multipart/") and children:
        for child in children:
            _walk_parts(child, plain, html, attachments, depth + 1)
        return
    if kind.startswith("multipart/"):
        kind = "text/plain"  # a multipart without its parts: its text, as it is
    body = node.get("body") or {}
    part_headers = {
        str(h.get("name", "")).lower(): str(h.get("value", "")) for h in node.get("headers") or []
    }
    filename = str(node.get("filename") or "")
    disposition = part_headers.get("content-disposition", "").split(";")[0].strip().lower()
    if (
        filename
        or disposition == "attachment"
        or kind not in TEXT_TYPES
        or body.get("attachmentId")
    ):
        attachments.append(Attachment(filename, kind, int(body.get("size") or 0)))
        return
    try:
        data = decode_base64url(str(body.get("data") or ""))
    except ValueError:
        data = b""
    text = decode_text(data, _charset(part_headers.get("content-type", "")))
    (plain if kind == "text/plain" else html).append(text)


def _decoded_header(name: str, value: str) -> str:
    try:
        return str(email.policy.default.header_fetch_parse(name, value))
    except Exception:  # a value the parser cannot read: as Gmail sent it
        return value


def _charset(content_type: str) -> str | None:
    if not content_type:
        return None
    try:
        header = email.policy.default.header_factory("content-type", content_type)
        charset = header.params.get("charset")
    except Exception:
        return None
    return str(charset) if charset else None
