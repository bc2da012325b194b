"""Secrets kept in the store, encrypted at rest: users' upstream connections (tokens they
pasted, OAuth refresh tokens).

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under the operator's keys,
`store.encryption_keys`: the first key encrypts, every key decrypts, so a new key is put
first and the old one kept until :meth:`Sealer.rotate` has re-encrypted what it sealed.
With the memory store and no key, a key made for this process is used: nothing in that
store outlives the process anyway.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["InvalidKey", "SealedUnreadable", "Sealer", "new_key", "parse_keys", "process_sealer"]

_PROCESS_KEY = Fernet.generate_key()


class InvalidKey(ValueError):
    """An encryption key that is not a Fernet key (32 url-safe base64-encoded bytes)."""


class SealedUnreadable(Exception):
    """A sealed value none of the configured keys opens (a key was dropped too early)."""


def new_key() -> str:
    """A fresh key for `store.encryption_keys` (`gateway secret-key` prints one)."""
    return Fernet.generate_key().decode()


def parse_keys(entries: list[str]) -> tuple[bytes, ...]:
    """The keys of `store.encryption_keys`: each entry may hold several, separated by
    commas; empty ones (an unset `${VAR:-}`) are skipped. InvalidKey names the position
    only, never the key."""
    keys: list[bytes] = []
    for entry in entries:
        for part in entry.split(","):
            if key := part.strip():
                try:
                    Fernet(key.encode())
                except ValueError:
                    raise InvalidKey(
                        f"encryption key {len(keys) + 1} is not a Fernet key "
                        "(32 url-safe base64 bytes; `gateway secret-key` makes one)"
                    ) from None
                keys.append(key.encode())
    return tuple(keys)


class Sealer:
    """``seal(b"...")`` -> an opaque token; ``open(token)`` -> the bytes again."""

    __slots__ = ("_fernet", "_first", "ephemeral")

    def __init__(self, keys: tuple[bytes, ...], ephemeral: bool = False) -> None:
        if not keys:
            raise ValueError("a Sealer needs at least one key")
        self._first = Fernet(keys[0])
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self.ephemeral = ephemeral
        """True when the key was made for this process (memory store, no key set)."""

    def seal(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise SealedUnreadable(
                "a stored secret cannot be decrypted with the configured encryption keys"
            ) from None

    def open_current(self, sealed: bytes) -> tuple[bytes, bytes | None]:
        """(the plain bytes, the value sealed again under the first key when an older key
        sealed it, else None): readers write the second back, so that an old key can be
        dropped once every record has been read."""
        try:
            return self._first.decrypt(sealed), None
        except InvalidToken:
            plain = self.open(sealed)
            return plain, self._first.encrypt(plain)

    def rotate(self, sealed: bytes) -> bytes:
        """The same secret sealed under the first key."""
        try:
            return self._fernet.rotate(sealed)
        except InvalidToken:
            raise SealedUnreadable(
                "a stored secret cannot be decrypted with the configured encryption keys"
            ) from None


def process_sealer() -> Sealer:
    """The sealer of a memory store without keys: one key per process."""
    return Sealer((_PROCESS_KEY,), ephemeral=True)
