"""The config JSON Schema accepts `${...}` wherever a typed value is expected, so the shipped
files check clean in a YAML language server, while wrong literal values still fail."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from gateway.config.jsonschema import config_schemas
from tests.conftest import REPO


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(config_schemas()[name]))


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("gateway.schema.json", REPO / "gateway.yaml"),
        *(("routes.schema.json", path) for path in sorted((REPO / "routes.d").glob("*.yaml"))),
    ],
    ids=lambda value: getattr(value, "name", value),
)
def test_every_shipped_file_checks_clean(schema: str, path: object) -> None:
    document = yaml.safe_load(path.read_text())  # type: ignore[attr-defined]
    assert [error.message for error in validator(schema).iter_errors(document)] == []


def test_variables_stand_for_typed_values_and_wrong_literals_still_fail() -> None:
    gateway = validator("gateway.schema.json")
    good = {"server": {"access_log": "${LOG:-true}"}, "store": {"namespace": "${NS}"}}
    assert list(gateway.iter_errors(good)) == []
    bad = {"server": {"access_log": "yes"}}
    assert [error.message for error in gateway.iter_errors(bad)] == [
        "'yes' is not valid under any of the given schemas"
    ]
