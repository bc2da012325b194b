"""`${VAR}`, `${VAR:-default}`, `${file:PATH}` and nested defaults (`${A:-${B:-x}}`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.compiler.build import compile_config
from gateway.config.interpolate import Interpolator, MissingVariable
from gateway.config.load import load
from gateway.errors import ConfigErrors
from tests.conftest import write_config

ENV = {"NEW": "new-value", "OLD": "old-value", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("${NEW:-${OLD:-x}}", ("new-value", True)),
        ("${UNSET:-${OLD:-x}}", ("old-value", True)),
        ("${UNSET:-${EMPTY:-x}}", ("x", True)),  # empty counts as unset, as in the shell
        ("${UNSET:-${OTHER:-}}", ("", True)),
        ("${A:-${B:-${OLD}}}", ("old-value", True)),  # three deep
        ("id-${UNSET:-${OLD}}-end", ("id-old-value-end", False)),
        ("${UNSET:-a}}b", ("a}b", False)),  # a `}` after the expression is text
        ("${UNSET:-$${NEW}}", ("${NEW}", False)),  # `$${` stays a literal inside a default
        ("$${NEW:-${OLD}}", ("${NEW:-old-value}", False)),
        ("cost: 5$", ("cost: 5$", False)),
    ],
)
def test_defaults_nest(text: str, expanded: tuple[str, bool]) -> None:
    assert Interpolator(ENV, Path(".")).expand(text, "$.x") == expanded


def test_a_chain_with_nothing_set_names_every_variable() -> None:
    interpolator = Interpolator(ENV, Path("."))
    assert interpolator.expand("${A:-${B:-${C}}}", "$.token") == ("", True)
    assert interpolator.missing == [MissingVariable("$.token", "A or B or C")]
    assert [item.variable for item in interpolator.defaulted] == ["A", "B"]


def test_values_from_a_nested_default_are_secrets_in_secret_places() -> None:
    interpolator = Interpolator(ENV, Path("."))
    interpolator.expand("${UNSET:-${OLD}}", "$.oauth.clients[0].client_secret")
    interpolator.expand("${UNSET:-${NEW}}", "$.oauth.clients[0].client_id")
    assert interpolator.secrets == {"old-value"}
    assert interpolator.outside == {"old-value", "new-value"}


def test_a_file_can_be_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("from-the-file\n")
    interpolator = Interpolator({}, tmp_path)
    assert interpolator.expand("${UNSET:-${file:secret.txt}}", "$.x") == ("from-the-file", True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "${A:-${B}",
            "unclosed `${` in '${A:-${B}': expected `${NAME}`, `${NAME:-default}` or "
            "`${file:PATH}` (write `$${` for a literal `${`)",
        ),
        (
            "${A:-${B-x}}",
            "invalid expression `${B-x}`: expected `${NAME}`, `${NAME:-default}` or `${file:PATH}`",
        ),
    ],
)
def test_broken_nested_expressions_are_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        Interpolator(ENV, Path(".")).expand(text, "$.x")
    assert str(caught.value) == message


def test_oauth_client_falls_back_to_the_omi_servers_variables(tmp_path: Path) -> None:
    """The shipped gateway.yaml's form: the gateway's own name first, then the old one."""
    gateway = (
        "oauth:\n  clients:\n    - id: chatgpt\n"
        '      client_id: "${OAUTH_CLIENT_ID:-${OPENAI_CLIENT_ID:-}}"\n'
        '      client_secret: "${OAUTH_CLIENT_SECRET:-${OPENAI_CLIENT_SECRET:-}}"\n'
        "  scopes: {read: Read}\n"
    )
    folder = write_config(tmp_path, gateway, {})
    old = {"OPENAI_CLIENT_ID": "omi-client", "OPENAI_CLIENT_SECRET": "omi-secret-1"}
    snapshot = compile_config(load(folder, environ=old))
    assert snapshot.oauth is not None
    (client,) = snapshot.oauth.clients
    assert (client.client_id, client.client_secret) == ("omi-client", "omi-secret-1")
    assert "omi-secret-1" in snapshot.secrets
    both = {**old, "OAUTH_CLIENT_ID": "gw-client", "OAUTH_CLIENT_SECRET": "gw-secret-1"}
    snapshot = compile_config(load(folder, environ=both))
    assert snapshot.oauth is not None
    (client,) = snapshot.oauth.clients
    assert (client.client_id, client.client_secret) == ("gw-client", "gw-secret-1")
    snapshot = compile_config(load(folder, environ={}))
    assert snapshot.oauth is not None
    assert snapshot.oauth.clients[0].client_id == ""  # generated at the first start


def test_a_typed_value_can_nest(tmp_path: Path) -> None:
    plain = write_config(tmp_path, "server:\n  access_log: ${LOG:-${OLD_LOG:-false}}\n", {})
    assert compile_config(load(plain, environ={})).access_log is False
    assert compile_config(load(plain, environ={"OLD_LOG": "true"})).access_log is True
    with pytest.raises(ConfigErrors) as caught:
        load(plain, environ={"OLD_LOG": "yes-please"})
    assert str(caught.value) == (
        "gateway.yaml:2:15: Expected `bool`, got `str` - at `$.server.access_log`"
    )
