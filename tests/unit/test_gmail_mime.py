"""plugins/gmail_mime.py: charsets as declared (and as mail clients read them), and the same
answer from `format=raw` bytes and from a `format=full` MessagePart tree."""

from __future__ import annotations

import email
import email.policy

import pytest

from plugins.gmail_mime import decode_base64url, decode_text, parse_payload, parse_rfc822
from tests.upstreams import mail
from tests.upstreams.google import b64url, message_part


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ("café".encode("iso-8859-1"), "iso-8859-1", "café"),
        ("café".encode("iso-8859-1"), '"ISO-8859-1"', "café"),  # quoted, upper case
        (b"\x93quoted\x94", "iso-8859-1", "“quoted”"),  # C1 bytes: windows-1252
        (b"\x93quoted\x94 \x80", "us-ascii", "“quoted” €"),
        ("“€”".encode("cp1252"), "windows-1252", "“€”"),
        ("日本語".encode("iso2022_jp"), "iso-2022-jp", "日本語"),
        ("日本語".encode("shift_jis"), "shift_jis", "日本語"),
        ("①ｱ".encode("cp932"), "shift_jis", "①ｱ"),  # NEC extension: read as cp932
        ("한국어".encode("cp949"), "ks_c_5601-1987", "한국어"),
        ("中文".encode("gb18030"), "gb2312", "中文"),
        (b"caf\xc3\xa9", None, "café"),  # no charset: UTF-8 when it is
        (b"caf\xe9", None, "café"),  # else windows-1252
        (b"caf\xe9", "x-no-such-charset", "caf\ufffd"),  # unknown: UTF-8, replaced
        (b"caf\xe9", "base64", "caf\ufffd"),  # a codec, not a charset
        (b"caf\xe9", "utf-8", "caf\ufffd"),
        (b"one\r\ntwo\rthree\n", "utf-8", "one\ntwo\nthree\n"),
    ],
)
def test_decode_text(data: bytes, charset: str | None, text: str) -> None:
    assert decode_text(data, charset) == text


def test_decode_base64url_with_or_without_padding() -> None:
    assert decode_base64url("SGk_-w==") == decode_base64url("SGk_-w") == b"Hi?\xfb"
    with pytest.raises(ValueError, match="not base64url"):
        decode_base64url("a")


@pytest.mark.parametrize(
    "raw",
    [
        mail.multi_charset_message(),
        mail.html_only_message(),
        mail.mislabelled_latin1_message(),
        mail.MALFORMED,
        mail.NO_BOUNDARY,
    ],
    ids=["multi-charset", "html-only", "latin1", "malformed", "no-boundary"],
)
def test_raw_and_full_give_the_same_message(raw: bytes) -> None:
    """What Gmail's `format=full` tree holds (the loopback builds it like Gmail from the
    same bytes) reads the same as the bytes themselves."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    from_raw = parse_rfc822(raw)
    from_full = parse_payload(message_part(parsed, ""))
    assert (from_full.body(), from_full.attachments) == (from_raw.body(), from_raw.attachments)
    for name in ("from", "to", "subject", "date", "message-id"):
        assert from_full.headers.get(name) == from_raw.headers.get(name)


def test_full_headers_left_encoded_are_decoded() -> None:
    payload = {
        "mimeType": "text/plain",
        "headers": [
            {"name": "Subject", "value": "=?iso-8859-1?q?Caf=E9?="},
            {"name": "Content-Type", "value": "text/plain; charset=iso-8859-1"},
        ],
        "body": {"size": 4, "data": b64url(b"caf\xe9")},
    }
    read = parse_payload(payload)
    assert (read.headers["subject"], read.body()) == ("Café", "café")
