"""The config folder's `.env`: python-dotenv's format, the environment over it, its values
secret exactly like environment values, and a warning with file:line for a line it skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.compiler import compile_config
from gateway.config.dotenv import DotEnv, environment, read_dotenv
from gateway.config.load import load
from gateway.errors import ConfigErrors
from tests.conftest import write_config

TOKEN = "tok-from-dotenv-5c2e9a"


def dotenv_in(folder: Path, text: str) -> DotEnv:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".env").write_text(text)
    found = read_dotenv(folder, environ={})
    assert found is not None
    return found


def test_no_file_is_none(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path) is None
    assert environment(None, {"A": "1"}) == {"A": "1"}


def test_python_dotenv_format(tmp_path: Path) -> None:
    found = dotenv_in(
        tmp_path,
        "# a comment\n"
        "PLAIN=1\n"
        'export QUOTED="two words # not a comment"\n'
        "SINGLE='${PLAIN} stays'\n"
        "EXPANDED=${PLAIN}-x\n"
        "TRAILING=5 # a comment\n"
        "EMPTY=\n"
        "NO_VALUE\n",
    )
    assert found.values == {
        "PLAIN": "1",
        "QUOTED": "two words # not a comment",
        "SINGLE": "1 stays",  # python-dotenv expands inside single quotes too
        "EXPANDED": "1-x",
        "TRAILING": "5",
        "EMPTY": "",
    }
    assert found.warnings == ()


def test_malformed_lines_are_warned_with_file_and_line_never_their_text(tmp_path: Path) -> None:
    found = dotenv_in(
        tmp_path,
        'GOOD=1\nthis is not a binding sk-secret-1\nUNCLOSED="sk-secret-2\nAFTER=2\n',
    )
    assert found.values == {"GOOD": "1", "AFTER": "2"}
    hint = "not a `KEY=value` line; ignored (quote a value with spaces or `#`, close every quote)"
    assert found.warnings == (f"{tmp_path}/.env:2: {hint}", f"{tmp_path}/.env:3: {hint}")
    assert "sk-secret" not in "".join(found.warnings)


def test_a_file_that_is_not_utf8_is_one_warning(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"A=\xff\xfe\n")
    assert read_dotenv(tmp_path) == DotEnv(
        tmp_path / ".env", {}, (f"{tmp_path}/.env: cannot be read (it is not UTF-8); ignored",)
    )


def test_the_environment_wins_even_when_empty(tmp_path: Path) -> None:
    found = dotenv_in(tmp_path, "A=from-file\nB=from-file\nC=from-file\n")
    real = {"A": "from-env", "B": ""}
    assert environment(found, real) == {"A": "from-env", "B": "", "C": "from-file"}
    assert found.overridden(real) == ["A", "B"]


def test_expansion_reads_the_environment_over_earlier_lines(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HOST=file-host\nURL=http://${HOST}:${PORT}/x\n")
    found = read_dotenv(tmp_path, environ={"HOST": "env-host", "PORT": "81"})
    assert found is not None
    assert found.values["URL"] == "http://env-host:81/x"


def config_with_token(folder: Path) -> Path:
    return write_config(
        folder,
        "defaults: {auth: none}\n",
        {
            "crm": "upstream:\n"
            "  name: crm\n"
            "  base_url: ${CRM_URL:-http://127.0.0.1:9}\n"
            '  auth: {type: bearer, token: "${CRM_TOKEN}"}\n'
            "routes:\n  - {id: ask, path: /ask}\n",
        },
    )


def test_a_dotenv_value_is_a_secret_exactly_like_an_environment_value(tmp_path: Path) -> None:
    folder = config_with_token(tmp_path)
    (folder / ".env").write_text(f"CRM_TOKEN={TOKEN}\n")
    from_file = compile_config(load(folder, environ=environment(read_dotenv(folder), {})))
    from_env = compile_config(load(folder, environ={"CRM_TOKEN": TOKEN}))
    assert from_file.unconfigured == {} == from_env.unconfigured
    assert TOKEN in from_file.secrets
    assert from_file.secrets == from_env.secrets
    assert from_file.redact(f"upstream said {TOKEN}") == "upstream said ***"
    assert from_file.version == from_env.version


def test_a_dotenv_value_in_a_broken_field_is_not_quoted(tmp_path: Path) -> None:
    folder = config_with_token(tmp_path)
    (folder / ".env").write_text("CRM_URL=ftp://hunter2-host\n")
    with pytest.raises(ConfigErrors) as caught:
        compile_config(load(folder, environ=environment(read_dotenv(folder), {})))
    assert [str(error) for error in caught.value.errors] == [
        "routes.d/crm.yaml:3:13: expected an absolute http(s) URL, got '***'"
        " - at `$.upstream.base_url`"
    ]
