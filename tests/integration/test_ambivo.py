"""The Ambivo system end to end: caller's JWT passed through to a loopback Ambivo API."""

from __future__ import annotations

import json

from tests.conftest import REPO, GatewayFactory
from tests.upstreams.server import Upstream

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiMSJ9.c2lnbmF0dXJl"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_query_maps_to_natural_query_and_back(
    gateway: GatewayFactory, ambivo: Upstream
) -> None:
    async with gateway(REPO, {"AMBIVO_API_BASE_URL": ambivo.url}) as gw:
        headers = {**AUTH, "X-Request-ID": "req-ambivo-1"}
        async with gw.http.post(
            f"{gw.url}/query", json={"query": "new leads"}, headers=headers
        ) as r:
            assert r.status == 200
            assert r.headers["X-Request-ID"] == "req-ambivo-1"
            answer = await r.json()
    (seen,) = ambivo.seen
    assert (seen.method, seen.path) == ("POST", "/entity/natural_query")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["X-Request-ID"] == "req-ambivo-1"
    assert seen.json() == {"query": "new leads", "response_format": "both"}
    assert answer["query"] == "new leads"
    assert answer["response_format"] == "both"
    assert answer["success"] is True
    assert answer["timestamp"].endswith("+00:00")
    prefix = "Natural Query Results:\n\n"
    assert answer["result"].startswith(prefix)
    upstream_answer = json.loads(answer["result"][len(prefix) :])
    assert upstream_answer["natural_response"] == "Found 2 leads for: new leads"


async def test_tools_list_run_and_per_tool_route(gateway: GatewayFactory, ambivo: Upstream) -> None:
    async with gateway(REPO, {"AMBIVO_API_BASE_URL": ambivo.url}) as gw:
        async with gw.http.get(f"{gw.url}/tools", headers=AUTH) as r:
            tools = await r.json()
        assert [tool["name"] for tool in tools["tools"]] == ["natural_query"]
        body = {
            "name": "natural_query",
            "arguments": {"query": "deals", "response_format": "table", "session_id": "s1"},
        }
        async with gw.http.post(f"{gw.url}/tools", json=body, headers=AUTH) as r:
            assert r.status == 200
            ran = await r.json()
        assert ran["tool_name"] == "natural_query"
        assert ran["success"] is True
        async with gw.http.post(
            f"{gw.url}/tools/natural-query", json={"query": "contacts"}, headers=AUTH
        ) as r:
            assert (await r.json())["tool_name"] == "natural_query"
    assert [seen.json() for seen in ambivo.seen] == [
        {"query": "deals", "response_format": "table", "session_id": "s1"},
        {"query": "contacts", "response_format": "both"},
    ]


async def test_error_inside_a_200_is_surfaced(gateway: GatewayFactory, ambivo: Upstream) -> None:
    async with (
        gateway(REPO, {"AMBIVO_API_BASE_URL": ambivo.url}) as gw,
        gw.http.post(f"{gw.url}/query", json={"query": "fail please"}, headers=AUTH) as r,
    ):
        assert r.status == 502
        assert r.content_type == "application/problem+json"
        problem = await r.json()
    assert problem["detail"] == 'upstream "ambivo" reported an error: Query could not be parsed'
    assert problem["route"] == "naturalQuery"
    assert problem["upstream_status"] == 200


async def test_upstream_500_is_a_502_and_post_is_not_retried(
    gateway: GatewayFactory, ambivo: Upstream
) -> None:
    async with gateway(REPO, {"AMBIVO_API_BASE_URL": ambivo.url}) as gw:
        async with gw.http.post(f"{gw.url}/query", json={"query": "boom"}, headers=AUTH) as r:
            assert r.status == 502
            problem = await r.json()
    assert problem["detail"] == 'upstream "ambivo" answered 500'
    assert problem["upstream_status"] == 500
    assert problem["upstream_excerpt"] == '{"detail": "internal failure"}'
    assert len(ambivo.seen) == 1


async def test_bearer_is_required_and_must_be_a_jwt(
    gateway: GatewayFactory, ambivo: Upstream
) -> None:
    async with gateway(REPO, {"AMBIVO_API_BASE_URL": ambivo.url}) as gw:
        async with gw.http.post(f"{gw.url}/query", json={"query": "x"}) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
            assert (await r.json())["detail"] == (
                "Authorization header required: send `Authorization: Bearer <token>`"
            )
        async with gw.http.post(
            f"{gw.url}/query", json={"query": "x"}, headers={"Authorization": "Bearer not-a-jwt"}
        ) as r:
            assert r.status == 401
            assert (await r.json())[
                "detail"
            ] == "the bearer token is not a JWT (three base64url parts)"
    assert ambivo.seen == []


async def test_invalid_body_lists_every_field(gateway: GatewayFactory, ambivo: Upstream) -> None:
    async with gateway(REPO, {"AMBIVO_API_BASE_URL": ambivo.url}) as gw:
        async with gw.http.post(
            f"{gw.url}/query", json={"response_format": "csv"}, headers=AUTH
        ) as r:
            assert r.status == 400
            problem = await r.json()
        json_type = {**AUTH, "Content-Type": "application/json"}
        async with gw.http.post(f"{gw.url}/query", data=b"{not json", headers=json_type) as r:
            assert r.status == 400
            broken = await r.json()
    assert problem["detail"] == "the request is invalid: 2 fields failed"
    assert problem["errors"] == [
        {"in": "body", "field": "$.query", "message": "is required"},
        {
            "in": "body",
            "field": "$.response_format",
            "message": "'csv' is not one of ['table', 'natural', 'both']",
        },
    ]
    assert broken["errors"][0]["message"].startswith("is not valid JSON")
    assert ambivo.seen == []


async def test_unknown_path_wrong_method_and_cors(
    gateway: GatewayFactory, ambivo: Upstream
) -> None:
    async with gateway(REPO, {"AMBIVO_API_BASE_URL": ambivo.url}) as gw:
        async with gw.http.get(f"{gw.url}/nope") as r:
            assert r.status == 404
            assert r.content_type == "application/problem+json"
            assert (await r.json())["detail"] == "no route for GET /nope; see /openapi.json"
        async with gw.http.delete(f"{gw.url}/tools") as r:
            assert r.status == 405
            assert r.headers["Allow"] == "GET, POST"
        preflight = {
            "Origin": "https://chatgpt.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        async with gw.http.options(f"{gw.url}/query", headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://chatgpt.com"
            assert r.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
        async with gw.http.options(
            f"{gw.url}/query", headers={**preflight, "Origin": "https://evil.example"}
        ) as r:
            assert r.status == 400
        async with gw.http.get(
            f"{gw.url}/tools", headers={**AUTH, "Origin": "https://chat.openai.com"}
        ) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://chat.openai.com"
        async with gw.http.get(
            f"{gw.url}/tools", headers={**AUTH, "Origin": "https://evil.example"}
        ) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
