"""The route table's trie finds what trying every route's regex in declaration order would
find (that is the contract), at a cost that does not grow with the number of routes."""

from __future__ import annotations

import dataclasses
import itertools
import re

import pytest

from gateway.boot import boot
from gateway.compiler.table import build_table
from gateway.snapshot import CompiledRoute, RouteTable
from gateway.snapshot.routes import SCAN_AT_MOST
from tests.conftest import write_config

PATHS = [
    ("GET", "/{kind}/new"),
    ("GET", "/items/{id}"),
    ("POST", "/items/{id}"),
    ("GET", "/items/{id}/parts/{part}"),
    ("GET", "/files/{name}.json"),
    ("GET", "/files/{name}"),
    ("GET", "/v{major}/status"),
    ("DELETE", "/items/{id}/parts/{part}"),
    ("GET", "/{a}/{b}/{c}"),
    ("GET", "/users/{user}/items/{id}"),
    ("PUT", "/users/{user}"),
    ("GET", "/reports/{year}-{month}"),
    ("GET", "/a/{x}"),
    ("GET", "/{y}/b"),
]
REQUESTS = [
    "/items/new",
    "/items/7",
    "/items/7/parts/2",
    "/items//parts/2",
    "/files/report.json",
    "/files/report.csv",
    "/files/.json",
    "/v2/status",
    "/v/status",
    "/x/y/z",
    "/users/ann/items/3",
    "/users/ann",
    "/reports/2026-12",
    "/reports/2026",
    "/a/b",
    "/nothing",
    "/",
    "",
    "/items/7/",
    "/items/%2F/parts/1",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> CompiledRoute:
    folder = write_config(
        tmp_path_factory.mktemp("cfg"),
        "defaults: {auth: none}\n",
        {"a": "routes:\n  - {id: a, path: '/x/{id}', static: true, response: {body: '{{ 1 }}'}}\n"},
    )
    route = boot(folder, environ={}, watch=False).snapshot.table.match("GET", "/x/1")
    assert route is not None
    return route.route


def table_of(base: CompiledRoute, paths: list[tuple[str, str]]) -> RouteTable:
    routes = [
        dataclasses.replace(base, id=f"r{index}", method=method, path=path)
        for index, (method, path) in enumerate(paths)
    ]
    return build_table(routes)


def by_regex(
    paths: list[tuple[str, str]], method: str, path: str
) -> tuple[str, dict[str, str]] | None:
    """The reference: every route's regex, in declaration order."""
    for index, (route_method, route_path) in enumerate(paths):
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route_path))
        found = re.fullmatch(regex, path)
        if route_method == method and found:
            return f"r{index}", found.groupdict()
    return None


def test_the_trie_is_in_use(base: CompiledRoute) -> None:
    assert len(PATHS) > SCAN_AT_MOST


@pytest.mark.parametrize("count", [3, len(PATHS)])
def test_every_request_finds_what_declaration_order_finds(base: CompiledRoute, count: int) -> None:
    paths = PATHS[:count]
    table = table_of(base, paths)
    for method, path in itertools.product(("GET", "POST", "PUT", "DELETE"), REQUESTS):
        found = table.match(method, path)
        expected = by_regex(paths, method, path)
        assert (None if found is None else (found.route.id, found.params)) == expected, (
            method,
            path,
        )


def test_the_first_declared_of_overlapping_routes_wins(base: CompiledRoute) -> None:
    table = table_of(base, PATHS)
    first = table.match("GET", "/a/b")  # /{kind}/new no, /{a}/{b}/{c} no, /a/{x} yes
    assert first is not None
    assert (first.route.id, first.params) == ("r12", {"x": "b"})
    swapped = table_of(base, [*PATHS[:12], PATHS[13], PATHS[12]])
    second = swapped.match("GET", "/a/b")
    assert second is not None
    assert (second.route.id, second.params) == ("r12", {"y": "a"})


def test_allowed_methods_come_from_every_matching_route(base: CompiledRoute) -> None:
    table = table_of(base, PATHS)
    assert table.allowed_methods("/items/7/parts/2") == {"GET", "DELETE"}
    assert table.allowed_methods("/items/7") == {"GET", "POST"}
    assert table.allowed_methods("/users/ann") == {"PUT"}
    assert table.allowed_methods("/nothing") == frozenset()


def test_the_last_of_5000_routes_is_found(base: CompiledRoute) -> None:
    paths = [("GET", f"/items{index}/{{id}}") for index in range(5000)]
    table = table_of(base, paths)
    found = table.match("GET", "/items4999/abc")
    assert found is not None
    assert (found.route.id, found.params) == ("r4999", {"id": "abc"})
    assert table.match("GET", "/items5000/abc") is None
