"""Golden error texts: every config mistake is refused with file:line:col and a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.errors import ConfigErrors
from tests.conftest import write_config

GATEWAY = """\
auth:
  - {id: key, type: api_key, keys: [k1]}
"""
UPSTREAM = """\
upstream:
  name: crm
  base_url: http://127.0.0.1:9
routes:
"""


def errors_of(tmp_path: Path, routes: dict[str, str], gateway: str = GATEWAY) -> list[str]:
    write_config(tmp_path, gateway, routes)
    with pytest.raises(ConfigErrors) as caught:
        compile_config(load(tmp_path, environ={}))
    return [str(error) for error in caught.value.errors]


CASES = [
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - id: one\n    path: /one\n   method: GET\n"
        },
        [
            "routes.d/a.yaml:7:4: YAML syntax error: did not find expected '-' indicator (while parsing a block collection)"
        ],
        id="yaml-syntax",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - id: one\n    path: /one\n    methd: GET\n"
        },
        ["routes.d/a.yaml:7:5: Object contains unknown field `methd` - at `$.routes[0].methd`"],
        id="unknown-route-key",
    ),
    pytest.param(
        {"a": "upstream_: {}\nroutes: []\n"},
        ["routes.d/a.yaml:1:1: Object contains unknown field `upstream_` - at `$.upstream_`"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - id: one\n    path: /one\n    response: {max_chars: lots}\n"
        },
        [
            "routes.d/a.yaml:7:27: Expected `int | null`, got `str` - at `$.routes[0].response.max_chars`"
        ],
        id="wrong-type",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - id: one\n    path: /one\n    query: [{name: n, type: int}]\n"
        },
        [
            'routes.d/a.yaml:7:29: Invalid enum value \'int\' (expected one of: "string", "integer", "number", "boolean") - at `$.routes[0].query[0].type`'
        ],
        id="bad-enum",
    ),
    pytest.param(
        {"a": "upstream: {name: crm, base_url: 'http://127.0.0.1:9', timeout: 10x}\n"},
        [
            "routes.d/a.yaml:1:64: Expected a duration like `10s`, `200ms` or `1.5m`, got '10x' - at `$.upstream.timeout`"
        ],
        id="bad-duration",
    ),
    pytest.param(
        {"a": "upstream: {name: crm, base_url: 'http://x.test', auth: {type: beare}}\n"},
        [
            'routes.d/a.yaml:1:63: Invalid value \'beare\' (expected one of: "none", "bearer", "header", "passthrough", "oauth2_authorization_code", "user_token") - at `$.upstream.auth.type`'
        ],
        id="bad-outbound-auth-tag",
    ),
    pytest.param(
        {"a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - id: one\n"},
        ["routes.d/a.yaml:5:5: Object missing required field `path` - at `$.routes[0]`"],
        id="missing-required",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - id: one\n    path: one\n"
        },
        [
            "routes.d/a.yaml:6:11: Invalid value: A path starting with `/`; `{name}` marks a path parameter. - at `$.routes[0].path`"
        ],
        id="bad-path",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - {id: one, path: /one}\n",
            "b": "upstream: {name: erp, base_url: 'http://127.0.0.1:9'}\nroutes:\n  - {id: one, path: /two}\n",
        },
        [
            "routes.d/b.yaml:3:10: route id `one` is already used at routes.d/a.yaml:5:10 - at `$.routes[0].id`"
        ],
        id="duplicate-route-id",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - {id: one, path: '/x/{a}'}\n  - {id: two, path: '/x/{b}'}\n"
        },
        [
            "routes.d/a.yaml:6:21: GET path of route `two` is already served by route `one` at routes.d/a.yaml:5:21 - at `$.routes[1].path`"
        ],
        id="duplicate-path",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - {id: one, path: /one, auth: keyz}\n"
        },
        [
            "routes.d/a.yaml:5:33: auth scheme `keyz` is not declared in gateway.yaml (known: none, key) - at `$.routes[0].auth`"
        ],
        id="unknown-auth-scheme",
    ),
    pytest.param(
        {"a": "upstream: {name: crm, base_url: '127.0.0.1:9'}\n"},
        [
            "routes.d/a.yaml:1:33: expected an absolute http(s) URL, got '127.0.0.1:9' - at `$.upstream.base_url`"
        ],
        id="relative-base-url",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - {id: one, path: /one, method: POST, body: {schema: {$ref: Nope}}}\n"
        },
        [
            "routes.d/a.yaml:5:56: schema `Nope` does not exist in schemas/ (known: none) - at `$.routes[0].body.schema`"
        ],
        id="missing-schema-ref",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - {id: one, path: /one, response: {body: '{{ body.x '}}\n"
        },
        [
            "routes.d/a.yaml:5:44: template syntax error on its line 1: unexpected end of template, expected 'end of print statement'. - at `$.routes[0].response.body`"
        ],
        id="template-syntax",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - {id: one, path: /one, upstream: {path: '/x/{{ bdy.id }}'}}\n"
        },
        [
            "routes.d/a.yaml:5:44: template uses unknown variable `bdy` (available: auth, body, headers, path, query, request_id, route) - at `$.routes[0].upstream.path`"
        ],
        id="template-unknown-variable",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - {id: one, path: /one, path_params: [{name: id}]}\n"
        },
        [
            "routes.d/a.yaml:5:48: path parameter `id` does not appear in `/one` - at `$.routes[0].path_params[0].name`"
        ],
        id="undeclared-path-param",
    ),
    pytest.param(
        {"a": "routes:\n  - {id: one, path: /one, static: true}\n"},
        ["routes.d/a.yaml:2:5: a static route needs `response.body` - at `$.routes[0].response`"],
        id="static-without-body",
    ),
    pytest.param(
        {
            "a": "upstream:\n  name: crm\n  base_url: http://127.0.0.1:9\nroutes:\n  - {id: one, path: /health}\n"
        },
        ["routes.d/a.yaml:5:21: path `/health` is reserved by the gateway - at `$.routes[0].path`"],
        id="reserved-path",
    ),
    pytest.param(
        {"a": "routes: []\nroutes: []\n"},
        ["routes.d/a.yaml:2:1: duplicate key `routes` - at `$.routes`"],
        id="duplicate-yaml-key",
    ),
    pytest.param(
        {"a": "routes:\n  - {id: one, path: /one}\n"},
        [
            "routes.d/a.yaml:2:5: route `one` has no upstream: add `upstream:` to routes.d/a.yaml or set `static: true` - at `$.routes[0]`"
        ],
        id="no-upstream",
    ),
]


@pytest.mark.parametrize(("routes", "expected"), CASES)
def test_config_mistake_is_refused_with_its_place(
    tmp_path: Path, routes: dict[str, str], expected: list[str]
) -> None:
    assert errors_of(tmp_path, routes) == expected


def test_inbound_auth_tag_lists_valid_types(tmp_path: Path) -> None:
    gateway = "auth:\n  - {id: key, type: apikey, keys: [k]}\n"
    assert errors_of(tmp_path, {}, gateway) == [
        "gateway.yaml:2:21: Invalid value 'apikey' (expected one of: \"api_key\","
        ' "bearer_passthrough", "oauth") - at `$.auth[0].type`'
    ]


def test_profile_naming_unknown_route(tmp_path: Path) -> None:
    gateway = GATEWAY + "profiles:\n  - {id: p, title: P, description: D, routes: [nope]}\n"
    assert errors_of(tmp_path, {}, gateway) == [
        "gateway.yaml:4:48: profile `p` names unknown route `nope` - at `$.profiles[0].routes[0]`"
    ]


def test_every_mistake_of_every_file_is_reported(tmp_path: Path) -> None:
    routes = {
        "a": UPSTREAM
        + "  - {id: one, path: /one, methd: GET}\n"
        + "  - {id: two, path: two}\n"
        + "  - {id: three, path: /three, timeout: 5y}\n",
        "b": "upstream: {name: erp, base_url: 'http://x.test', retry: {attempts: 0}}\n",
    }
    assert errors_of(tmp_path, routes) == [
        "routes.d/a.yaml:5:27: Object contains unknown field `methd` - at `$.routes[0].methd`",
        "routes.d/a.yaml:6:21: Invalid value: A path starting with `/`; `{name}` marks a path"
        " parameter. - at `$.routes[1].path`",
        "routes.d/a.yaml:7:40: Expected a duration like `10s`, `200ms` or `1.5m`, got '5y'"
        " - at `$.routes[2].timeout`",
        "routes.d/b.yaml:1:68: Expected `int` >= 1 - at `$.upstream.retry.attempts`",
    ]
