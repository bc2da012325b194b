"""gateway.tracing's pure parts: span names from the route table, query values redacted.

(Importing the module sets nothing up; tests/e2e/test_traces.py runs it for real.)
"""

from __future__ import annotations

import pytest

from gateway import compile_config, load
from gateway.tracing import redacted_query, redacted_url, span_details
from tests.conftest import REPO

SNAPSHOT = compile_config(load(REPO, environ={}))


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        pytest.param(
            "GET",
            "/gmail/messages/18c2f",
            (
                "GET /gmail/messages/{message_id}",
                {"http.route": "/gmail/messages/{message_id}", "gateway.route": "getGmailMessage"},
            ),
            id="route-template",
        ),
        pytest.param(
            "POST",
            "/webhook/intercom",
            (
                "POST /webhook/intercom",
                {"http.route": "/webhook/intercom", "gateway.webhook": "intercomEvents"},
            ),
            id="webhook",
        ),
        pytest.param("GET", "/no/such/path/123", ("GET", {}), id="unknown-path"),
        pytest.param("BREW", "/gmail/messages/18c2f", ("HTTP", {}), id="unknown-method"),
    ],
)
def test_spans_are_named_by_what_answers_never_the_raw_path(
    method: str, path: str, expected: tuple[str, dict[str, str]]
) -> None:
    assert span_details(SNAPSHOT, {"type": "http", "method": method, "path": path}) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("api_key=secret", "api_key=REDACTED"),
        ("a=1&b=&flag&c=x=y", "a=REDACTED&b=REDACTED&flag&c=REDACTED"),
    ],
)
def test_query_values_are_redacted(query: str, expected: str) -> None:
    assert redacted_query(query) == expected


def test_urls_keep_their_path_and_query_names() -> None:
    assert redacted_url("http://h:1/p/x?sig=s3&n=2") == "http://h:1/p/x?sig=REDACTED&n=REDACTED"
    assert redacted_url("http://h:1/p/x") == "http://h:1/p/x"
    assert redacted_url("http://h:1/p/x?") == "http://h:1/p/x"
