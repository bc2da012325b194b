"""A wrong `type:` of a tagged union is refused with the union's own tags, in declaration order."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from gateway.config import model
from gateway.config.load import load
from gateway.errors import ConfigErrors
from tests.conftest import write_config

WRONG_TAG = "nope"


def errors_of(tmp_path: Path, gateway: str, routes: dict[str, str] | None = None) -> list[str]:
    write_config(tmp_path, gateway, routes or {})
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, environ={})
    return [str(error) for error in caught.value.errors]


def test_inbound_auth_type_lists_every_scheme(tmp_path: Path) -> None:
    gateway = "auth:\n  - id: key\n    type: apikey\n    keys: [k]\n"
    assert errors_of(tmp_path, gateway) == [
        "gateway.yaml:3:11: Invalid value 'apikey' (expected one of: \"api_key\","
        ' "bearer_passthrough", "oauth") - at `$.auth[0].type`'
    ]


def test_outbound_auth_type_lists_every_scheme(tmp_path: Path) -> None:
    routes = {
        "a": "upstream:\n  name: crm\n  base_url: http://x.test\n  auth:\n    type: oauth2\n",
    }
    assert errors_of(tmp_path, "", routes) == [
        'routes.d/a.yaml:5:11: Invalid value \'oauth2\' (expected one of: "none", "bearer",'
        ' "header", "passthrough", "oauth2_authorization_code", "user_token") - at `$.upstream.auth.type`'
    ]


def test_webhook_verify_type_lists_every_method(tmp_path: Path) -> None:
    routes = {
        "a": "webhooks:\n  - id: hook\n    path: /hook\n    handler: hooks:handle\n"
        "    verify: {type: hmac256, header: X-Sig}\n",
    }
    assert errors_of(tmp_path, "", routes) == [
        'routes.d/a.yaml:5:20: Invalid value \'hmac256\' (expected one of: "none", "hmac")'
        " - at `$.webhooks[0].verify.type`"
    ]


# --- every tagged union of the model, found by walking the file Structs -----------------------


def _members(type_: Any) -> tuple[Any, ...]:
    if typing.get_origin(type_) is typing.Annotated:
        return _members(typing.get_args(type_)[0])
    if typing.get_origin(type_) in (typing.Union, types.UnionType):
        return tuple(arg for arg in typing.get_args(type_) if arg is not type(None))
    return (type_,)


def _structs(type_: Any) -> list[type[msgspec.Struct]]:
    return [
        member
        for member in _members(type_)
        if isinstance(member, type) and issubclass(member, msgspec.Struct)
    ]


def _tags_of_union(type_: Any) -> list[str] | None:
    """The declared tags when ``type_`` is a union of tagged Structs, else None."""
    members = _structs(type_)
    if not members or len(members) != len(_members(type_)):
        return None
    configs = [member.__struct_config__ for member in members]
    if any(config.tag is None for config in configs):
        return None
    return [str(config.tag) for config in configs]


def _tagged_unions(
    struct: type[msgspec.Struct], data: Any, seen: frozenset[type[msgspec.Struct]]
) -> Iterator[tuple[Any, list[str], str]]:
    """(config data with a wrong tag, the union's tags, the place of the tag) for every union.

    ``data`` builds the nesting from the file down to ``struct``: a callable over the value.
    """
    for field in msgspec.structs.fields(struct):
        name = field.encode_name
        field_type = field.type
        in_list = typing.get_origin(field_type) is list
        item_type = typing.get_args(field_type)[0] if in_list else field_type
        index = "[0]" if in_list else ""

        def wrap(value: Any, name: str = name, in_list: bool = in_list) -> Any:
            return data({name: [value] if in_list else value})

        tags = _tags_of_union(item_type)
        if tags is not None:
            tag_field = _structs(item_type)[0].__struct_config__.tag_field
            yield wrap({tag_field: WRONG_TAG}), tags, f".{name}{index}.{tag_field}"
            continue
        for member in _structs(item_type):
            if member not in seen:
                for found, found_tags, place in _tagged_unions(member, wrap, seen | {member}):
                    yield found, found_tags, f".{name}{index}{place}"


FILES = {"gateway.yaml": model.GatewayFile, "routes.d/a.yaml": model.RouteFile}
UNIONS = [
    pytest.param(file, data, tags, f"${place}", id=f"{file}:{place}")
    for file, struct in FILES.items()
    for data, tags, place in _tagged_unions(struct, lambda value: value, frozenset({struct}))
]


def test_every_tagged_union_of_the_model_is_checked() -> None:
    places = {param.values[3] for param in UNIONS}
    assert {"$.auth[0].type", "$.upstream.auth.type", "$.webhooks[0].verify.type"} <= places
    checked = {tuple(param.values[2]) for param in UNIONS}
    declared = {
        name: tuple(tags)
        for name, value in vars(model).items()
        if not isinstance(value, type) and (tags := _tags_of_union(value))
    }
    assert set(declared) >= {"InboundAuth", "OutboundAuth"}
    assert {name for name, tags in declared.items() if tags not in checked} == set()


@pytest.mark.parametrize(("file", "data", "tags", "place"), UNIONS)
def test_wrong_tag_lists_exactly_the_union_tags(
    tmp_path: Path, file: str, data: Any, tags: list[str], place: str
) -> None:
    (tmp_path / "routes.d").mkdir()
    (tmp_path / file).write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, environ={})
    hints = [error.message for error in caught.value.errors if error.path == place]
    expected = ", ".join(json.dumps(tag) for tag in tags)
    assert hints == [f"Invalid value '{WRONG_TAG}' (expected one of: {expected})"]
