"""The Ambivo system end to end: caller's JWT passed through to a loopback Ambivo API.

The gateway runs the SHIPPED configuration (this repository) in-process under uvicorn, with
only AMBIVO_API_BASE_URL pointing at the loopback upstream.
"""

from __future__ import annotations

import datetime as dt
import json

from tests.conftest import REPO, GatewayFactory
from tests.upstreams.ambivo import answer
from tests.upstreams.server import Upstream

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiMSJ9.c2lnbmF0dXJl"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = "Natural Query Results:\n\n"
PROBLEM = "application/problem+json"


def env(ambivo: Upstream) -> dict[str, str]:
    return {"AMBIVO_API_BASE_URL": ambivo.url}


async def test_query_maps_to_natural_query_and_back(
    gateway: GatewayFactory, ambivo: Upstream
) -> None:
    async with gateway(REPO, env(ambivo)) as gw:
        headers = {**AUTH, "X-Request-ID": "req-ambivo-1"}
        async with gw.http.post(
            f"{gw.url}/query", json={"query": "new leads"}, headers=headers
        ) as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            assert r.headers["X-Request-ID"] == "req-ambivo-1"
            body = await r.json()
    (seen,) = ambivo.seen
    assert (seen.method, seen.path) == ("POST", "/entity/natural_query")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["X-Request-ID"] == "req-ambivo-1"
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json() == {"query": "new leads", "response_format": "both"}
    assert set(body) == {"query", "result", "response_format", "timestamp", "success"}
    assert body["query"] == "new leads"
    assert body["response_format"] == "both"
    assert body["success"] is True
    # The facade's text: the upstream JSON pretty-printed with indent 2, keys in its order.
    assert body["result"] == PREFIX + json.dumps(answer("new leads"), indent=2)
    stamp = dt.datetime.fromisoformat(body["timestamp"])
    assert stamp.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60


async def test_optional_fields_are_forwarded_and_format_kept(
    gateway: GatewayFactory, ambivo: Upstream
) -> None:
    request = {
        "query": "deals",
        "response_format": "table",
        "enable_memory": True,
        "session_id": "s-1",
    }
    async with gateway(REPO, env(ambivo)) as gw:
        async with gw.http.post(f"{gw.url}/query", json=request, headers=AUTH) as r:
            assert r.status == 200
            body = await r.json()
    assert body["response_format"] == "table"
    assert ambivo.seen[0].json() == request


async def test_tools_list_run_and_per_tool_route(gateway: GatewayFactory, ambivo: Upstream) -> None:
    async with gateway(REPO, env(ambivo)) as gw:
        async with gw.http.get(f"{gw.url}/tools", headers=AUTH) as r:
            assert r.status == 200
            tools = await r.json()
        body = {
            "name": "natural_query",
            "arguments": {"query": "deals", "response_format": "table", "session_id": "s1"},
        }
        async with gw.http.post(f"{gw.url}/tools", json=body, headers=AUTH) as r:
            assert r.status == 200
            ran = await r.json()
        async with gw.http.post(
            f"{gw.url}/tools/natural-query", json={"query": "contacts"}, headers=AUTH
        ) as r:
            assert r.status == 200
            per_tool = await r.json()
    assert [tool["name"] for tool in tools["tools"]] == ["natural_query"]
    assert tools["tools"][0]["parameters"]["required"] == ["query"]
    assert tools["server_info"]["capabilities"] == ["natural_language_queries", "crm_data_access"]
    assert ran == {
        "result": PREFIX + json.dumps(answer("deals"), indent=2),
        "tool_name": "natural_query",
        "success": True,
    }
    assert per_tool == {
        "result": PREFIX + json.dumps(answer("contacts"), indent=2),
        "tool_name": "natural_query",
        "success": True,
    }
    # GET /tools is static: only the two runs reached Ambivo.
    assert [(seen.path, seen.json()) for seen in ambivo.seen] == [
        (
            "/entity/natural_query",
            {"query": "deals", "response_format": "table", "session_id": "s1"},
        ),
        ("/entity/natural_query", {"query": "contacts", "response_format": "both"}),
    ]
    assert all(seen.headers["Authorization"] == f"Bearer {TOKEN}" for seen in ambivo.seen)


async def test_unknown_tool_name_is_a_400(gateway: GatewayFactory, ambivo: Upstream) -> None:
    body = {"name": "get_leads", "arguments": {"query": "x"}}
    async with (
        gateway(REPO, env(ambivo)) as gw,
        gw.http.post(f"{gw.url}/tools", json=body, headers=AUTH) as r,
    ):
        assert r.status == 400
        problem = await r.json()
    assert problem["errors"] == [
        {"in": "body", "field": "$.name", "message": "'get_leads' is not one of ['natural_query']"}
    ]
    assert ambivo.seen == []


async def test_error_inside_a_200_is_surfaced(gateway: GatewayFactory, ambivo: Upstream) -> None:
    async with gateway(REPO, env(ambivo)) as gw:
        async with gw.http.post(
            f"{gw.url}/query", json={"query": "fail please"}, headers=AUTH
        ) as r:
            assert r.status == 502
            assert r.content_type == PROBLEM
            problem = await r.json()
        tool = {"name": "natural_query", "arguments": {"query": "fail too"}}
        async with gw.http.post(f"{gw.url}/tools", json=tool, headers=AUTH) as r:
            assert r.status == 502
            tool_problem = await r.json()
    assert problem["detail"] == 'upstream "ambivo" reported an error: Query could not be parsed'
    assert problem["type"] == "urn:problem:gateway:upstream-reported-error"
    assert problem["status"] == 502
    assert problem["route"] == "naturalQuery"
    assert problem["upstream_status"] == 200
    assert tool_problem["detail"] == problem["detail"]
    assert tool_problem["route"] == "runTool"


async def test_upstream_500_is_a_502_and_post_is_not_retried(
    gateway: GatewayFactory, ambivo: Upstream
) -> None:
    async with gateway(REPO, env(ambivo)) as gw:
        async with gw.http.post(f"{gw.url}/query", json={"query": "boom"}, headers=AUTH) as r:
            assert r.status == 502
            assert r.content_type == PROBLEM
            problem = await r.json()
    assert problem["detail"] == 'upstream "ambivo" answered 500'
    assert problem["type"] == "urn:problem:gateway:upstream-error"
    assert problem["upstream_status"] == 500
    assert problem["upstream_excerpt"] == '{"detail": "internal failure"}'
    # 500 is not in the shipped on_status [502, 503, 504], and POST is never retried anyway.
    assert len(ambivo.seen) == 1


async def test_bearer_is_required_and_must_be_a_jwt(
    gateway: GatewayFactory, ambivo: Upstream
) -> None:
    challenge = 'Bearer realm="gateway"'
    async with gateway(REPO, env(ambivo)) as gw:
        async with gw.http.post(f"{gw.url}/query", json={"query": "x"}) as r:
            assert r.status == 401
            assert r.content_type == PROBLEM
            assert r.headers["WWW-Authenticate"] == challenge
            problem = await r.json()
        assert problem["detail"] == (
            "credentials required: send `Authorization: Bearer <token>` with a token of this"
            " gateway's sign-in or your own token"
        )
        assert problem["type"] == "urn:problem:gateway:unauthorized"
        cases = {
            "Bearer not-a-jwt": "the bearer token is not a JWT (three base64url parts)",
            f"Basic {TOKEN}": (
                "Bearer token required: the Authorization header must start with `Bearer `"
            ),
            "Bearer ": "Token cannot be empty",
        }
        for value, detail in cases.items():
            async with gw.http.post(
                f"{gw.url}/query", json={"query": "x"}, headers={"Authorization": value}
            ) as r:
                assert r.status == 401, value
                assert r.headers["WWW-Authenticate"] == challenge
                assert (await r.json())["detail"] == detail, value
        async with gw.http.get(f"{gw.url}/tools") as r:
            assert r.status == 401
    assert ambivo.seen == []


async def test_invalid_body_lists_every_field(gateway: GatewayFactory, ambivo: Upstream) -> None:
    async with gateway(REPO, env(ambivo)) as gw:
        async with gw.http.post(
            f"{gw.url}/query", json={"response_format": "csv"}, headers=AUTH
        ) as r:
            assert r.status == 400
            assert r.content_type == PROBLEM
            problem = await r.json()
        json_type = {**AUTH, "Content-Type": "application/json"}
        async with gw.http.post(f"{gw.url}/query", data=b"{not json", headers=json_type) as r:
            assert r.status == 400
            broken = await r.json()
        async with gw.http.post(f"{gw.url}/query", headers=AUTH) as r:
            assert r.status == 400
            empty = await r.json()
    assert problem["type"] == "urn:problem:gateway:validation-failed"
    assert problem["detail"] == "the request is invalid: 2 fields failed"
    assert problem["errors"] == [
        {"in": "body", "field": "$.query", "message": "is required"},
        {
            "in": "body",
            "field": "$.response_format",
            "message": "'csv' is not one of ['table', 'natural', 'both']",
        },
    ]
    assert broken["detail"] == "the request is invalid: 1 field failed"
    assert broken["errors"][0]["message"].startswith("is not valid JSON")
    assert empty["errors"] == [{"in": "body", "field": "$", "message": "a JSON body is required"}]
    assert ambivo.seen == []


async def test_unknown_path_and_wrong_method(gateway: GatewayFactory, ambivo: Upstream) -> None:
    async with gateway(REPO, env(ambivo)) as gw:
        async with gw.http.get(f"{gw.url}/nope", headers={"X-Request-ID": "r-404"}) as r:
            assert r.status == 404
            assert r.content_type == PROBLEM
            assert r.headers["X-Request-ID"] == "r-404"
            not_found = await r.json()
        async with gw.http.delete(f"{gw.url}/tools", headers=AUTH) as r:
            assert r.status == 405
            assert r.content_type == PROBLEM
            assert r.headers["Allow"] == "GET, POST"
            wrong = await r.json()
        async with gw.http.get(f"{gw.url}/query", headers=AUTH) as r:
            assert r.status == 405
            assert r.headers["Allow"] == "POST"
    assert not_found["detail"] == "no route for GET /nope; see /openapi.json"
    assert not_found["status"] == 404
    assert not_found["request_id"] == "r-404"
    assert wrong["detail"] == "DELETE is not allowed here; use GET, POST"
    assert ambivo.seen == []


async def test_cors(gateway: GatewayFactory, ambivo: Upstream) -> None:
    preflight = {
        "Origin": "https://chatgpt.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with gateway(REPO, env(ambivo)) as gw:
        async with gw.http.options(f"{gw.url}/query", headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://chatgpt.com"
            assert r.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
        async with gw.http.options(
            f"{gw.url}/query", headers={**preflight, "Origin": "https://evil.example"}
        ) as r:
            assert r.status == 400
            assert r.content_type == PROBLEM
            assert "Access-Control-Allow-Origin" not in r.headers
            assert "X-Request-ID" in r.headers
            assert (await r.json())["detail"] == "origin https://evil.example is not allowed"
        async with gw.http.post(
            f"{gw.url}/query",
            json={"query": "leads"},
            headers={**AUTH, "Origin": "https://chatgpt.com"},
        ) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "https://chatgpt.com"
            assert r.headers["Vary"] == "Origin"
        # Problems carry CORS headers too, or the browser would hide them from the caller.
        async with gw.http.post(
            f"{gw.url}/query", json={"query": "x"}, headers={"Origin": "https://chatgpt.com"}
        ) as r:
            assert r.status == 401
            assert r.headers["Access-Control-Allow-Origin"] == "https://chatgpt.com"
        async with gw.http.get(
            f"{gw.url}/tools", headers={**AUTH, "Origin": "https://chat.openai.com"}
        ) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://chat.openai.com"
        async with gw.http.get(
            f"{gw.url}/tools", headers={**AUTH, "Origin": "https://evil.example"}
        ) as r:
            assert r.status == 200
            assert "Access-Control-Allow-Origin" not in r.headers
    assert len(ambivo.seen) == 1
