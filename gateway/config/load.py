"""load(config_dir) -> Config: read, interpolate and decode every configuration file.

Pure apart from reading files and the environment. Every mistake of every file is collected
and raised together as :class:`ConfigErrors`, each with ``file:line:col`` and its ``$.path``.
msgspec stops at the first error of a value, so a file that fails is decoded again item by
item (each route, each auth scheme, ...) to report one error per item instead of one per file.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from gateway.config.fields import dec_hook
from gateway.config.interpolate import Interpolator
from gateway.config.model import GatewayFile, RouteFile
from gateway.config.source import SourceFile, read_yaml
from gateway.errors import ConfigError, ConfigErrors

__all__ = ["Config", "LoadedRoutes", "LoadedSchema", "load"]

GATEWAY_FILE = "gateway.yaml"
ROUTES_DIR = "routes.d"
SCHEMAS_DIR = "schemas"
PLUGINS_DIR = "plugins"
CONFIG_SCHEMAS_DIR = "config"  # schemas/config/: generated schemas of our own files
MIN_HIDDEN_CHARS = 6  # shorter interpolated values (ports, "true") would hide ordinary text
_MSGSPEC_ERROR = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedRoutes:
    """One decoded routes.d file and where it came from."""

    source: SourceFile
    content: RouteFile


@dataclass(frozen=True)
class LoadedSchema:
    """One shared JSON Schema from schemas/, referenced by routes as `{$ref: name}`."""

    name: str
    source: SourceFile
    schema: dict[str, Any]


@dataclass(frozen=True)
class Config:
    """Everything the files say, decoded and typed; input of the compiler."""

    directory: Path
    gateway: GatewayFile
    gateway_source: SourceFile | None
    route_files: tuple[LoadedRoutes, ...]
    schemas: tuple[LoadedSchema, ...]
    plugin_digests: tuple[tuple[str, str], ...] = ()
    interpolated: frozenset[str] = frozenset()
    """Values taken from the environment or files: compile errors quote none of them."""
    """(file name, sha256) of every plugins/*.py: an edited plugin is a new version."""

    def sources(self) -> list[SourceFile]:
        found = [self.gateway_source] if self.gateway_source else []
        found += [loaded.source for loaded in self.route_files]
        found += [loaded.source for loaded in self.schemas]
        return found


def load(directory: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load gateway.yaml, routes.d/*.yaml and schemas/*; raise ConfigErrors listing all mistakes."""
    directory = directory.resolve()
    env = dict(environ) if environ is not None else None
    errors: list[ConfigError] = []
    outside: set[str] = set()  # every interpolated value, for redacting errors

    def read(path: Path) -> SourceFile | None:
        interpolator = (
            Interpolator(env, directory)
            if env is not None
            else Interpolator.from_environment(directory)
        )
        try:
            return read_yaml(path, path.relative_to(directory).as_posix(), interpolator)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            return None
        finally:
            outside.update(interpolator.outside)

    gateway = GatewayFile()
    gateway_source = None
    if (directory / GATEWAY_FILE).is_file():
        gateway_source = read(directory / GATEWAY_FILE)
        if gateway_source is not None:
            gateway = _decode(gateway_source, GatewayFile, errors) or gateway

    route_files: list[LoadedRoutes] = []
    for path in _files(directory / ROUTES_DIR, (".yaml", ".yml")):
        source = read(path)
        if source is None:
            continue
        content = _decode(source, RouteFile, errors)
        if content is not None:
            route_files.append(LoadedRoutes(source, content))

    schemas: list[LoadedSchema] = []
    for path in _files(directory / SCHEMAS_DIR, (".json", ".yaml", ".yml")):
        source = read(path)
        if source is None:
            continue
        if not isinstance(source.data, dict):
            errors.append(source.error("$", "a schema file must hold a JSON Schema object"))
            continue
        schemas.append(LoadedSchema(path.stem.removesuffix(".schema"), source, source.data))

    hidden = frozenset(value for value in outside if len(value) >= MIN_HIDDEN_CHARS)
    if errors:
        raise ConfigErrors([error.redacted(hidden) for error in errors])
    plugins = tuple(
        (path.name, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in _files(directory / PLUGINS_DIR, (".py",))
    )
    return Config(
        directory, gateway, gateway_source, tuple(route_files), tuple(schemas), plugins, hidden
    )


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix in suffixes and path.is_file() and not path.name.startswith(".")
    )


def _decode(source: SourceFile, type_: type[T], errors: list[ConfigError]) -> T | None:
    try:
        return msgspec.convert(source.data, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        found = _item_errors(source, type_) or [_to_config_error(source, exc, "$", type_)]
        errors.extend(found)
        return None


def _item_errors(source: SourceFile, type_: type[Any]) -> list[ConfigError]:
    """Decode each top-level field (and each item of list fields) alone to find every mistake."""
    data = source.data
    if not isinstance(data, dict):
        return []
    fields = {field.encode_name: field.type for field in msgspec.structs.fields(type_)}
    found: list[ConfigError] = []
    for key, value in data.items():
        path = f"$.{key}"
        if key not in fields:
            found.append(source.error(path, f"Object contains unknown field `{key}`", at_key=True))
            continue
        field_type = fields[key]
        if typing.get_origin(field_type) is list and isinstance(value, list):
            (item_type,) = typing.get_args(field_type)
            for index, item in enumerate(value):
                found += _convert_errors(source, item, item_type, f"{path}[{index}]")
        else:
            found += _convert_errors(source, value, field_type, path)
    return found


def _convert_errors(source: SourceFile, value: Any, type_: Any, path: str) -> list[ConfigError]:
    try:
        msgspec.convert(value, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        return [_to_config_error(source, exc, path, type_)]
    return []


def _to_config_error(
    source: SourceFile, exc: msgspec.ValidationError, prefix: str, root: Any
) -> ConfigError:
    match = _MSGSPEC_ERROR.match(str(exc))
    assert match is not None  # the pattern matches any text
    message = match["message"]
    relative = match["path"] or "$"
    path = prefix + relative[1:]
    # A missing field is reported at the object that lacks it; an unknown one at itself.
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    if unknown:
        path = f"{path}.{unknown[1]}"
        return source.error(path, message, at_key=True)
    if message.startswith("Invalid value"):
        message += _valid_tags_hint(root, relative)
    elif message.startswith("Invalid enum value") or "matching regex" in message:
        message = _explain(message, _field_type(root, relative))
    return source.error(path, message)


def _field_type(type_: Any, path: str) -> Any:
    """The declared type at a msgspec path relative to ``type_`` (None when unknown)."""
    for segment in re.findall(r"\.([^.\[]+)|\[\d+\]", path):
        type_ = _unwrap(type_)
        if segment == "":  # a list index
            args = typing.get_args(type_)
            type_ = args[0] if typing.get_origin(type_) is list and args else None
        else:
            fields = _struct_fields(type_)
            type_ = fields.get(segment)
        if type_ is None:
            return None
    return type_


def _unwrap(type_: Any) -> Any:
    """Drop `| None` so that the remaining member is looked into."""
    members = [arg for arg in typing.get_args(type_) if arg is not type(None)]
    if typing.get_origin(type_) in (typing.Union, types.UnionType) and len(members) == 1:
        return members[0]
    return type_


def _struct_fields(type_: Any) -> dict[str, Any]:
    members = (
        typing.get_args(type_)
        if typing.get_origin(type_) in (typing.Union, types.UnionType)
        else (type_,)
    )
    fields: dict[str, Any] = {}
    for member in members:
        if isinstance(member, type) and issubclass(member, msgspec.Struct):
            fields.update({f.encode_name: f.type for f in msgspec.structs.fields(member)})
    return fields


def _explain(message: str, type_: Any) -> str:
    type_ = _unwrap(type_)
    if typing.get_origin(type_) is typing.Literal:
        allowed = ", ".join(json.dumps(value) for value in typing.get_args(type_))
        return f"{message.split(' - ')[0]} (expected one of: {allowed})"
    for meta in typing.get_args(type_)[1:] if typing.get_origin(type_) is typing.Annotated else ():
        if isinstance(meta, msgspec.Meta) and meta.description:
            return f"Invalid value: {meta.description}"
    return message


def _valid_tags_hint(root: Any, relative: str) -> str:
    """msgspec does not list the valid tags of a union; name them, as the union declares them."""
    parent, _, field = relative.rpartition(".")
    tags = _union_tags(_field_type(root, parent), field) if parent else ()
    if not tags:
        return ""
    return f" (expected one of: {', '.join(json.dumps(tag) for tag in tags)})"


def _union_tags(type_: Any, tag_field: str) -> tuple[str | int, ...]:
    """The tags of a union of tagged Structs (declaration order) whose tag is in ``tag_field``.

    Empty when ``type_`` is not such a union; `| None` is ignored.
    """
    members = (
        typing.get_args(type_)
        if typing.get_origin(type_) in (typing.Union, types.UnionType)
        else (type_,)
    )
    tags: list[str | int] = []
    for member in members:
        if member is type(None):
            continue
        config = _struct_config(member)
        if config is None or config.tag is None or config.tag_field != tag_field:
            return ()
        tags.append(config.tag)
    return tuple(tags)


def _struct_config(type_: Any) -> msgspec.structs.StructConfig | None:
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return type_.__struct_config__
    return None
