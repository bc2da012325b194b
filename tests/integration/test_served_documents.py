"""The documents over real HTTP: every JSON document also as `application/yaml` (the same
document, a valid OpenAPI 3.1), encoded once per snapshot and fresh after a reload; /health
names the tools served, bounded, never a secret."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import validate

from gateway.compiler import compile_config
from gateway.config.load import load
from gateway.serve.documents import HEALTH_TOOLS_LIMIT, EncodedDocuments, ServedDocuments
from tests.conftest import REPO, GatewayFactory, write_config

PROBLEM = "application/problem+json"
SECRETS = {
    "GATEWAY_API_KEY": "api-key-b5c1d7e2f9",
    "OPENAI_API_KEY": "sk-openai-3f9a8b7c6d",
    "INTERCOM_ACCESS_TOKEN": "intercom-tok-1a2b3c",
    "GPT_TRAINER_API_KEY": "trainer-key-4d5e6f",
}
AMBIVO_TOOLS = ["execute_natural_query", "listTools", "naturalQuery", "runTool"]


def operations(document: dict[str, Any]) -> list[str]:
    """The operationIds of a document, read independently of the gateway's code."""
    return sorted(op["operationId"] for item in document["paths"].values() for op in item.values())


async def test_every_document_is_served_as_yaml_too(gateway: GatewayFactory) -> None:
    async with gateway(REPO, SECRETS) as gw:
        profiles = sorted(gw.state.switch.current.profiles)
        assert {"ambivo", "apps", "gmail", "omi", "openai", "support"} <= set(profiles)
        for base in ["", *(f"/actions/{name}" for name in profiles)]:
            async with gw.http.get(f"{gw.url}{base}/openapi.json") as r:
                assert r.status == 200
                from_json = await r.json()
            async with gw.http.get(f"{gw.url}{base}/openapi.yaml") as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "application/yaml"
                text = await r.text()
            document = yaml.safe_load(text)
            assert document == from_json, base
            validate(copy.deepcopy(document))
            assert "&id" not in text  # no YAML anchors: every schema written out
            for secret in SECRETS.values():
                assert secret not in text
        async with gw.http.get(f"{gw.url}/actions/nope/openapi.yaml") as r:
            assert r.status == 404
            assert r.content_type == PROBLEM
            assert (await r.json())["detail"] == (
                f"no action profile `nope` (known: {', '.join(profiles)})"
            )
        async with gw.http.get(f"{gw.url}/actions/ambivo/openapi.yaml") as r:
            ambivo = yaml.safe_load(await r.text())
    assert sorted(ambivo["paths"]) == ["/query", "/tools", "/tools/natural-query"]
    assert ambivo["paths"]["/query"]["post"]["x-openai-isConsequential"] is False


async def test_health_lists_the_tools_served_and_no_secret(gateway: GatewayFactory) -> None:
    async with gateway(REPO, SECRETS) as gw:
        async with gw.http.get(f"{gw.url}/health") as r:
            assert r.status == 200
            text = await r.text()
        async with gw.http.get(f"{gw.url}/openapi.json") as r:
            merged = await r.json()
        documents = {}
        for name in gw.state.switch.current.profiles:
            async with gw.http.get(f"{gw.url}/actions/{name}/openapi.json") as r:
                documents[name] = await r.json()
    health = json.loads(text)
    assert health["instance"] == socket.gethostname()  # which replica answered
    assert health["available_tools"] == operations(merged)
    assert {"naturalQuery", "listTools", "listModels", "sendGmailMessage"} <= set(
        health["available_tools"]
    )
    assert "gmailAuthCallback" not in health["available_tools"]  # include_in_schema: false
    assert health["available_tools_total"] == len(operations(merged))
    assert health["profiles"] == {
        name: operations(document) for name, document in sorted(documents.items())
    }
    assert health["profiles"]["ambivo"] == AMBIVO_TOOLS
    assert health["profiles"]["apps"] == ["controlApp", "listApps"]
    for secret in SECRETS.values():
        assert secret not in text


def many_routes(count: int) -> str:
    lines = ["routes:"]
    lines += [
        f"  - {{id: r{index:03d}, path: /r{index:03d}, static: true,"
        " response: {body: '{{ 1 }}'}}"
        for index in range(count)
    ]
    return "\n".join(lines) + "\n"


async def test_health_tool_lists_are_bounded(gateway: GatewayFactory, tmp_path: Path) -> None:
    folder = write_config(tmp_path, "defaults: {auth: none}\n", {"a": many_routes(120)})
    async with gateway(folder, {}) as gw, gw.http.get(f"{gw.url}/health") as r:
        health = await r.json()
    assert health["routes"] == 120
    assert health["available_tools_total"] == 120
    assert len(health["available_tools"]) == HEALTH_TOOLS_LIMIT == 100
    assert health["available_tools"][:2] == ["r000", "r001"]
    assert health["available_tools"][-1] == "r099"
    assert health["profiles"] == {}


async def test_documents_follow_a_reload(gateway: GatewayFactory, tmp_path: Path) -> None:
    gateway_yaml = (
        "defaults: {auth: none}\nprofiles:\n  - {id: p, title: P, description: D, tags: [t]}\n"
    )
    route = "  - {{id: {id}, path: /{id}, tags: [t], static: true, response: {{body: '{{{{ 1 }}}}'}}}}\n"
    folder = write_config(tmp_path, gateway_yaml, {"a": "routes:\n" + route.format(id="first")})
    async with gateway(folder, {}) as gw:
        async with gw.http.get(f"{gw.url}/actions/p/openapi.yaml") as r:
            before = yaml.safe_load(await r.text())
        (folder / "routes.d" / "a.yaml").write_text(
            "routes:\n" + route.format(id="first") + route.format(id="second")
        )
        assert gw.state.reloader is not None
        await gw.state.reloader.reload("test")
        async with gw.http.get(f"{gw.url}/actions/p/openapi.yaml") as r:
            after = yaml.safe_load(await r.text())
        async with gw.http.get(f"{gw.url}/openapi.yaml") as r:
            merged = yaml.safe_load(await r.text())
        async with gw.http.get(f"{gw.url}/health") as r:
            health = await r.json()
    assert sorted(before["paths"]) == ["/first"]
    assert sorted(after["paths"]) == ["/first", "/second"]
    assert sorted(merged["paths"]) == ["/first", "/second"]
    assert health["available_tools"] == ["first", "second"]
    assert health["profiles"] == {"p": ["first", "second"]}


def test_each_snapshot_is_encoded_once() -> None:
    first = compile_config(load(REPO, environ={}))
    second = compile_config(load(REPO, environ={}))
    served = ServedDocuments()
    encoded = served.of(first)
    assert served.of(first) is encoded
    assert encoded.yaml() is encoded.yaml()
    assert encoded.yaml("ambivo") is encoded.yaml("ambivo")
    assert encoded.json("ambivo") is encoded.json("ambivo")
    assert encoded.tools() is encoded.tools()
    # A new snapshot gets new encodings; the previous ones are let go.
    newer = served.of(second)
    assert newer is not encoded
    assert isinstance(newer, EncodedDocuments)
    assert served.of(second) is newer
    assert newer.yaml() == encoded.yaml()
