"""Real RFC 822 messages for the loopback Gmail, built with the standard library's `email`
package (charsets, transfer encodings, encoded words and RFC 2231 filenames as real mail
clients write them), and a few broken ones written by hand, as broken senders write them.

Each builder returns the message's bytes (CRLF line ends, as Gmail keeps mail) with the
texts it holds, so that tests can state the exact answer.
"""

from __future__ import annotations

import email.policy
from email import encoders
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.utils import formataddr

WIRE = email.policy.compat32.clone(linesep="\r\n")
"""How the builders write: the classic MIME classes' policy, CRLF line ends."""

LATIN1_TEXT = "Bonjour, le café crème est prêt à 10 h."
CP1252_TEXT = "“Smart quotes” cost 5 € \u2013 not 4 €."  # an en dash
ISO2022JP_TEXT = "日本語のメールです。"
SHIFT_JIS_TEXT = "会議は明日の十時です。"
HTML_IN_ALTERNATIVE = "<p>日本語の<b>メール</b>です。</p>"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 12 + b"\n%%EOF\n"
CSV_TEXT = "nom,ville\r\nRené,Montréal\r\n"
SUBJECT = "Café crème à 10 h"
SENDER = "René Lévesque"


def wire(message: Message) -> bytes:
    return message.as_bytes(policy=WIRE)


def multi_charset_message() -> bytes:
    """``multipart/mixed``: an encoded-word Subject and From (ISO-8859-1), text/plain parts
    in ISO-8859-1 and windows-1252 (quoted-printable), ISO-2022-JP (7bit, inside a
    ``multipart/alternative`` with an HTML twin) and Shift_JIS (base64), then a PDF and a
    CSV with a non-ASCII RFC 2231 filename as attachments."""
    message = MIMEMultipart("mixed")
    message["From"] = formataddr((SENDER, "rene@example.com"), charset="iso-8859-1")
    message["To"] = "me@example.com"
    message["Subject"] = Header(SUBJECT, "iso-8859-1")
    message["Date"] = "Wed, 03 Jul 2024 08:30:00 +0200"
    message["Message-ID"] = "<multi-1@example.com>"
    message.attach(MIMEText(LATIN1_TEXT, "plain", "iso-8859-1"))
    message.attach(MIMEText(CP1252_TEXT, "plain", "windows-1252"))
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText(ISO2022JP_TEXT, "plain", "iso-2022-jp"))
    alternative.attach(MIMEText(HTML_IN_ALTERNATIVE, "html", "utf-8"))
    message.attach(alternative)
    # MIMEText would convert Shift_JIS to ISO-2022-JP (email.charset's output charset): the
    # bytes are set as they are, then base64-encoded.
    shift_jis = MIMENonMultipart("text", "plain", charset="shift_jis")
    shift_jis.set_payload(SHIFT_JIS_TEXT.encode("shift_jis"))
    encoders.encode_base64(shift_jis)
    message.attach(shift_jis)
    pdf = MIMEApplication(PDF, "pdf")
    pdf.add_header("Content-Disposition", "attachment", filename="report.pdf")
    message.attach(pdf)
    csv = MIMEText(CSV_TEXT, "csv", "utf-8")
    csv.add_header("Content-Disposition", "attachment", filename=("utf-8", "", "résumé.csv"))
    message.attach(csv)
    return wire(message)


MULTI_CHARSET_BODY = "\n".join([LATIN1_TEXT, CP1252_TEXT, ISO2022JP_TEXT, SHIFT_JIS_TEXT])
MULTI_CHARSET_ATTACHMENTS = [
    {"filename": "report.pdf", "mime_type": "application/pdf", "size": len(PDF)},
    {"filename": "résumé.csv", "mime_type": "text/csv", "size": len(CSV_TEXT.encode())},
]
MULTI_CHARSET_HEADERS = {
    "From": f"{SENDER} <rene@example.com>",
    "To": "me@example.com",
    "Cc": "",
    "Subject": SUBJECT,
    "Date": "Wed, 03 Jul 2024 08:30:00 +0200",
    "Message-ID": "<multi-1@example.com>",
}

HTML_ONLY = (
    "<html><head><style>p {color: red}</style></head><body>"
    "<p>Le menu “du jour” &amp; ses prix&nbsp;: 12 €</p><p>À bientôt</p></body></html>"
)


def html_only_message() -> bytes:
    """A single text/html part in windows-1252 (quoted-printable), no text/plain."""
    message = MIMEText(HTML_ONLY, "html", "windows-1252")
    message["From"] = "Bistro <bistro@example.com>"
    message["To"] = "me@example.com"
    message["Subject"] = "Menu"
    message["Date"] = "Thu, 04 Jul 2024 11:00:00 +0000"
    message["Message-ID"] = "<menu-1@example.com>"
    return wire(message)


LATIN1_MISLABELLED = "“Quoted” \u2013 in ISO-8859-1 (Windows wrote it)"


def mislabelled_latin1_message() -> bytes:
    """A part labelled ISO-8859-1 whose bytes hold windows-1252 "smart quotes" (0x93/0x94),
    as Outlook writes them: read as windows-1252, like every mail client and browser does."""
    message = MIMEText("", "plain", "iso-8859-1")
    message.set_payload(LATIN1_MISLABELLED.encode("cp1252"))
    message.replace_header("Content-Transfer-Encoding", "8bit")
    message["Subject"] = "=?iso-8859-1?q?Caf=E9?="
    message["Message-ID"] = "<latin-1@example.com>"
    return wire(message)


# Broken mail, written by hand: no library would write it.
MALFORMED = (
    b"From: Broken Sender <broken@example.com>\r\n"
    b"To: me@example.com\r\n"
    b"Subject: =?x-no-such-charset?q?caf=E9?= \xe9t\xe9\r\n"
    b"Date: not a date\r\n"
    b"Message-ID: <broken-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
    b"\r\n"
    b"--XYZ\r\n"
    b'Content-Type: text/plain; charset="x-no-such-charset"\r\n'
    b"\r\n"
    b"caf\xe9 ok\r\n"
    b"--XYZ\r\n"
    b'Content-Type: application/octet-stream; name="broken.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAEC!!!AwQ=\r\n"
)
"""An unknown charset in a header's encoded word and in a part, raw 8-bit bytes in the
Subject, a Date that is not one, broken base64, and no closing boundary (cut short)."""

NO_BOUNDARY = (
    b"From: a@example.com\r\n"
    b"Subject: no boundary\r\n"
    b"Content-Type: multipart/mixed\r\n"
    b"\r\n"
    b"Just text where the parts should be.\r\n"
)
"""A multipart that names no boundary: its body is read as text."""
