"""Inbound authentication: how a caller proves itself to the gateway.

``authenticate(spec, headers, query)`` returns an :class:`Identity` or raises
:class:`Unauthorized` with a message that says what to send. Keys are compared in constant
time, against every configured key, so timing tells nothing about which key nearly matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.snapshot import InboundAuthSpec

__all__ = ["Identity", "Unauthorized", "authenticate", "bearer_token"]

_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who called: the scheme, and the bearer token to pass through (if any)."""

    scheme: str
    token: str | None = None
    subject: str | None = None
    """Who, without the credential itself: a hash of the key or token (for rate limits)."""
    user: str | None = None
    """The user the credential stands for (an api key mapped to a user), if any."""

    def as_context(self) -> dict[str, str]:
        if self.user is None:
            return {"scheme": self.scheme}
        return {"scheme": self.scheme, "user": self.user}


class Unauthorized(Exception):
    def __init__(self, detail: str, challenge: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.challenge = challenge


def authenticate(
    spec: InboundAuthSpec, headers: Mapping[str, str], query: Mapping[str, str]
) -> Identity:
    if spec.type == "api_key":
        return _api_key(spec, headers, query)
    return _bearer(spec, headers)


def _api_key(
    spec: InboundAuthSpec, headers: Mapping[str, str], query: Mapping[str, str]
) -> Identity:
    presented = None
    if spec.header:
        presented = headers.get(spec.header.lower())
    if presented is None and spec.query:
        presented = query.get(spec.query)
    if not presented:
        where = (
            f"the {spec.header} header" if spec.header else f"the `{spec.query}` query parameter"
        )
        raise Unauthorized(f"missing API key: send it in {where}")
    candidate = presented.encode()
    matched = False
    user = None
    for position, key in enumerate(spec.keys):  # every key, so timing tells nothing
        if hmac.compare_digest(candidate, key):
            matched = True
            if spec.users:
                user = spec.users[position]
    if not matched:
        raise Unauthorized("invalid API key")
    return Identity(spec.id, subject=_fingerprint(presented), user=user)


def _bearer(spec: InboundAuthSpec, headers: Mapping[str, str]) -> Identity:
    token = bearer_token(headers)
    challenge = 'Bearer realm="gateway"'
    if spec.jwt_only and not (10 <= len(token) <= 4096 and _JWT.match(token)):
        raise Unauthorized("the bearer token is not a JWT (three base64url parts)", challenge)
    return Identity(spec.id, token, subject=_fingerprint(token))


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of `Authorization: Bearer <token>`; Unauthorized saying what is wrong."""
    value = headers.get("authorization")
    challenge = 'Bearer realm="gateway"'
    if not value:
        raise Unauthorized(
            "Authorization header required: send `Authorization: Bearer <token>`", challenge
        )
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        raise Unauthorized(
            "Bearer token required: the Authorization header must start with `Bearer `", challenge
        )
    if not token:
        raise Unauthorized("Token cannot be empty", challenge)
    return token


def _fingerprint(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()[:16]
