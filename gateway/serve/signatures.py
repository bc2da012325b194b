"""Webhook signatures: an HMAC of the raw request bytes, compared in constant time.

The bytes verified are exactly the bytes received: a body that was parsed and serialised
again (other spacing, other key order) no longer matches, which is the point.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Mapping

from gateway.snapshot import HmacSpec

__all__ = ["SignatureRefused", "sign", "verify_signature"]


class SignatureRefused(Exception):
    """Why a request is refused: 401 for a missing or wrong signature, 400 for malformed input."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail


def sign(spec: HmacSpec, secret: bytes, body: bytes, timestamp: bytes = b"") -> str:
    """The header value a sender holding ``secret`` would send (also used by tests)."""
    content = spec.signed.replace(b"{timestamp}", timestamp).replace(b"{body}", body)
    digest = hmac.new(secret, content, getattr(hashlib, spec.algorithm)).digest()
    encoded = digest.hex() if spec.encoding == "hex" else base64.b64encode(digest).decode()
    return spec.prefix + encoded


def verify_signature(
    spec: HmacSpec, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> None:
    """Return if one configured secret signed ``body``; raise :class:`SignatureRefused` if not."""
    timestamp = b""
    if spec.timestamp_header is not None:
        raw = headers.get(spec.timestamp_header)
        if raw is None:
            raise SignatureRefused(
                401,
                "signature-missing",
                f"missing timestamp: send the {spec.timestamp_header} header",
            )
        try:
            sent_at = float(raw.strip())
        except ValueError:
            sent_at = math.nan
        if not math.isfinite(sent_at):  # `nan` compares false with everything: no tolerance
            raise SignatureRefused(
                400, "timestamp-invalid", f"the {spec.timestamp_header} header is not a number"
            )
        if sent_at > 1e11:  # milliseconds
            sent_at /= 1000
        now = time.time() if now is None else now
        if abs(now - sent_at) > spec.tolerance:
            raise SignatureRefused(
                401,
                "timestamp-outside-tolerance",
                f"the request timestamp is more than {spec.tolerance:g}s from now "
                "(a replay, or a wrong clock)",
            )
        timestamp = raw.strip().encode()
    presented = headers.get(spec.header)
    if presented is None:
        raise SignatureRefused(
            401, "signature-missing", f"missing signature: send the {spec.header} header"
        )
    presented = presented.strip()
    if not presented.startswith(spec.prefix):
        raise SignatureRefused(
            401, "signature-invalid", f"the signature must start with `{spec.prefix}`"
        )
    if spec.encoding == "hex":
        presented = spec.prefix + presented[len(spec.prefix) :].lower()
    candidate = presented.encode()
    matched = False
    for secret in spec.secrets:  # every secret, so timing tells nothing about which one
        matched |= hmac.compare_digest(candidate, sign(spec, secret, body, timestamp).encode())
    if not matched:
        raise SignatureRefused(401, "signature-invalid", "the signature does not match the body")
