"""`oauth.users_from`: many sign-in accounts in one value from the environment or a file.

Entries `username:password:user_id`, separated by commas or line breaks; a malformed entry
is a config error at the setting's place that quotes nothing of the entry (it holds a
password); the passwords are secrets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.errors import ConfigErrors
from gateway.snapshot import Snapshot
from tests.conftest import write_config

GATEWAY = """\
oauth:
  clients: [{id: chatgpt}]
  scopes: {read:memories: Read}
  users:
    - {username: "${OMI_LOGIN_USER:-}", password: "${OMI_LOGIN_PASSWORD:-}", user_id: "${OMI_UID:-}"}
  users_from: "${OMI_USERS:-}"
"""


def compiled(tmp_path: Path, environ: dict[str, str], gateway: str = GATEWAY) -> Snapshot:
    return compile_config(load(write_config(tmp_path, gateway, {}), environ=environ))


def errors(tmp_path: Path, environ: dict[str, str], gateway: str = GATEWAY) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        compiled(tmp_path, environ, gateway)
    return [str(error) for error in caught.value.errors]


def users(snapshot: Snapshot) -> dict[str, tuple[str, str]]:
    assert snapshot.oauth is not None
    return dict(snapshot.oauth.users)


def test_entries_separated_by_commas_or_lines(tmp_path: Path) -> None:
    one_line = {"OMI_USERS": "ada:pw-ada-1:uid_ada, bob:pw:with:colons:uid_bob"}
    assert users(compiled(tmp_path, one_line)) == {
        "ada": ("pw-ada-1", "uid_ada"),
        "bob": ("pw:with:colons", "uid_bob"),  # the password is between the first and last `:`
    }
    lines = {"OMI_USERS": "# name:password:uid\nada:pw-ada-1:uid_ada\n\n  bob:pw-bob-2:uid_bob  \n"}
    assert users(compiled(tmp_path, lines)) == {
        "ada": ("pw-ada-1", "uid_ada"),
        "bob": ("pw-bob-2", "uid_bob"),
    }


def test_the_single_user_variables_still_work_beside_them(tmp_path: Path) -> None:
    environ = {
        "OMI_LOGIN_USER": "cy",
        "OMI_LOGIN_PASSWORD": "pw-cy-3",
        "OMI_UID": "uid_cy",
        "OMI_USERS": "ada:pw-ada-1:uid_ada",
    }
    snapshot = compiled(tmp_path, environ)
    assert users(snapshot) == {"cy": ("pw-cy-3", "uid_cy"), "ada": ("pw-ada-1", "uid_ada")}
    assert {"pw-cy-3", "pw-ada-1"} <= snapshot.secrets  # redacted from answers and logs
    assert "pw-ada-1" not in repr(snapshot.oauth)
    assert users(compiled(tmp_path, {})) == {}  # nothing set: nobody signs in


def test_a_users_file(tmp_path: Path) -> None:
    (tmp_path / "omi-users").write_text("ada:pw-ada-1:uid_ada\nbob:pw-bob-2:uid_bob\n")
    gateway = GATEWAY.replace('"${OMI_USERS:-}"', '"${file:omi-users}"')
    assert users(compiled(tmp_path, {}, gateway)) == {
        "ada": ("pw-ada-1", "uid_ada"),
        "bob": ("pw-bob-2", "uid_bob"),
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "ada:pw-ada-1:uid_ada, bob-secret-password",
            "`users_from` entry 2: expected `username:password:user_id` (three fields "
            "separated by `:`), got 1 field",
        ),
        (
            "ada:pw-ada-1",
            "`users_from` entry 1: expected `username:password:user_id` (three fields "
            "separated by `:`), got 2 fields",
        ),
        ("ada::uid_ada", "`users_from` entry 1: the password is empty"),
        (":pw-ada-1:uid_ada", "`users_from` entry 1: the username is empty"),
        ("ada:pw-ada-1:", "`users_from` entry 1: the user id is empty"),
        ("ada:pw-ada-1:uid ada", "`users_from` entry 1: the user id holds a space"),
        (
            "ada:pw-ada-1:uid_ada\n# a comment\nada:pw-other:uid_other",
            "`users_from` entry 2 (line 3): the username is also declared by `users_from` "
            "entry 1 (line 1)",
        ),
    ],
)
def test_a_malformed_entry_is_a_config_error_at_the_setting(
    tmp_path: Path, value: str, message: str
) -> None:
    assert errors(tmp_path, {"OMI_USERS": value}) == [
        f"gateway.yaml:6:15: {message} - at `$.oauth.users_from`"
    ]


def test_errors_quote_no_entry(tmp_path: Path) -> None:
    found = errors(tmp_path, {"OMI_USERS": "ada:pw-very-secret-1:uid_ada, bob:pw-bob-secret-2"})
    assert found == [
        "gateway.yaml:6:15: `users_from` entry 2: expected `username:password:user_id` "
        "(three fields separated by `:`), got 2 fields - at `$.oauth.users_from`"
    ]
    assert "secret" not in " ".join(found)


def test_a_username_declared_twice(tmp_path: Path) -> None:
    environ = {
        "OMI_LOGIN_USER": "ada",
        "OMI_LOGIN_PASSWORD": "pw-ada-1",
        "OMI_UID": "uid_ada",
        "OMI_USERS": "bob:pw-bob-2:uid_bob,ada:pw-ada-2:uid_ada",
    }
    assert errors(tmp_path, environ) == [
        "gateway.yaml:6:15: `users_from` entry 2: the username is also declared at "
        "`oauth.users[0]` - at `$.oauth.users_from`"
    ]
    listed = GATEWAY.replace(
        "  users_from:",
        "    - {username: ada, password: pw-ada-3, user_id: uid_ada}\n  users_from:",
    )
    assert errors(tmp_path, environ, listed) == [
        "gateway.yaml:6:18: this username is also declared at `oauth.users[0]`"
        " - at `$.oauth.users[1].username`",
        "gateway.yaml:7:15: `users_from` entry 2: the username is also declared at "
        "`oauth.users[0]` - at `$.oauth.users_from`",
    ]
