"""Secrets at rest: Fernet under the operator's keys, the first encrypting, all decrypting;
a record sealed under an older key is sealed again under the first when it is read."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from litestar.stores.memory import MemoryStore

from gateway.sealed import InvalidKey, SealedUnreadable, Sealer, parse_keys, process_sealer
from gateway.snapshot import UserTokenSpec
from gateway.upstream.credentials import (
    CredentialRejected,
    UserCredentials,
    check_pasted,
    connection_key,
)

OLD, NEW = Fernet.generate_key(), Fernet.generate_key()
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2ln"


def spec(sealer: Sealer | None, **changes: object) -> UserTokenSpec:
    values: dict[str, object] = {
        "upstream": "crm",
        "header": "Authorization",
        "prefix": "Bearer ",
        "jwt_only": True,
        "title": "CRM token",
        "instructions": "",
        "max_length": 100,
        "connect_url": "https://gw.example.com/connections/crm",
        "sealer": sealer,
    }
    values.update(changes)
    return UserTokenSpec(**values)  # type: ignore[arg-type]


def test_seal_and_open() -> None:
    sealer = Sealer((NEW,))
    sealed = sealer.seal(b"secret")
    assert sealed.startswith(b"gAAAAA")
    assert b"secret" not in sealed
    assert sealer.open(sealed) == b"secret"
    assert sealer.open_current(sealed) == (b"secret", None)


def test_rotation_reseals_under_the_first_key() -> None:
    old = Sealer((OLD,)).seal(b"secret")
    both = Sealer((NEW, OLD))
    plain, resealed = both.open_current(old)
    assert plain == b"secret"
    assert resealed is not None
    assert Sealer((NEW,)).open(resealed) == b"secret"
    with pytest.raises(SealedUnreadable) as refused:
        Sealer((NEW,)).open(old)  # the old key dropped too early
    assert str(refused.value) == (
        "a stored secret cannot be decrypted with the configured encryption keys"
    )


def test_keys_are_parsed_and_checked() -> None:
    assert parse_keys([f"{NEW.decode()}, {OLD.decode()}", ""]) == (NEW, OLD)
    assert parse_keys(["", " "]) == ()
    with pytest.raises(InvalidKey) as refused:
        parse_keys([NEW.decode(), "short"])
    assert str(refused.value) == (
        "encryption key 2 is not a Fernet key (32 url-safe base64 bytes;"
        " `gateway secret-key` makes one)"
    )
    assert "short" not in str(refused.value)


def test_the_process_key_outlives_reloads() -> None:
    sealed = process_sealer().seal(b"x")
    assert process_sealer().open(sealed) == b"x"
    assert process_sealer().ephemeral is True


async def test_a_credential_read_under_an_old_key_is_rotated_in_the_store() -> None:
    store = MemoryStore()
    credentials = UserCredentials(store)
    await credentials.put(spec(Sealer((OLD,))), "ann", JWT)
    stored = await store.get(connection_key("crm", "ann"))
    assert stored is not None
    assert JWT.encode() not in stored
    rotated = spec(Sealer((NEW, OLD)))
    saved = await credentials.get(rotated, "ann")
    assert saved is not None
    assert saved.token == JWT
    # Now readable with the new key alone: the old one can go.
    again = await credentials.get(spec(Sealer((NEW,))), "ann")
    assert again is not None
    assert again.token == JWT
    await credentials.delete(rotated, "ann")
    assert await store.get(connection_key("crm", "ann")) is None


@pytest.mark.parametrize(
    ("pasted", "kept"),
    [
        pytest.param(f"  {JWT}\n", JWT, id="blanks"),
        pytest.param(f"Bearer {JWT}", JWT, id="bearer-copied-along"),
        pytest.param(f"bearer {JWT}", JWT, id="any-case"),
    ],
)
def test_a_pasted_token_is_tidied(pasted: str, kept: str) -> None:
    assert check_pasted(spec(None), pasted) == kept


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        pytest.param("", "paste your CRM token", id="empty"),
        pytest.param("a" * 101, "that is longer than 100 characters", id="long"),
        pytest.param(
            "abc def", "that holds spaces or characters a token does not have", id="space"
        ),
        pytest.param("ab\x00c", "that holds spaces or characters a token does not have", id="nul"),
        pytest.param(
            "abc.def",
            "that is not a JWT (three parts separated by dots); paste your CRM token",
            id="not-jwt",
        ),
    ],
)
def test_a_pasted_token_of_the_wrong_shape_is_refused(pasted: str, message: str) -> None:
    with pytest.raises(CredentialRejected) as refused:
        check_pasted(spec(None), pasted)
    assert str(refused.value) == message
