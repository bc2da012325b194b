"""One GPT for everyone: the merged /openapi.json of the shipped config, through the real
`gateway serve`, with the gateway's own OAuth server and an OpenID sign-in.

Each person signs in once at the loopback OpenID provider, connects their own Ambivo (a
pasted JWT) and Gmail (the loopback Google), and allows ChatGPT (authlib's client, with the
authorization and token URLs the document declares). Then every operation of the document
is called with each person's token, and each loopback upstream tells which credential it
got: that person's own JWT and Google account, the operator's Intercom, GPT Trainer and
OpenAI keys for everyone.

The browser is played by aiohttp without redirects: each Location is followed by hand and
cookies are kept per person (aiohttp's jar drops cookies set by an IP host), sent only
under their path. The config folder is the shipped one, except that the app-control
allowlist names one harmless Python process instead of real desktop programs.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from http.cookies import Morsel
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import yaml
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from multidict import CIMultiDictProxy
from redis.asyncio import Redis
from selectolax.lexbor import LexborHTMLParser

from tests.conftest import REDIS_URL, REPO, TEST_ENCRYPTION_KEY
from tests.e2e.helpers import CLEAN_ENV, serving
from tests.oauth_client import CALLBACK, GOOD_SECRET
from tests.upstreams.ambivo import ambivo_app
from tests.upstreams.ambivo import answer as ambivo_answer
from tests.upstreams.google import (
    GMAIL_PREFIX,
    GMAIL_SCOPE,
    GoogleState,
    decode_raw,
    google_app,
)
from tests.upstreams.gpt_trainer import TrainerState, gpt_trainer_app
from tests.upstreams.intercom import IntercomState, intercom_app
from tests.upstreams.oidc import OidcProvider, oidc_provider
from tests.upstreams.openai import MODELS, OpenAIState, openai_app
from tests.upstreams.server import Seen, Upstream, free_port, serve_upstream

SERVICE = "Integration Gateway"  # the shipped info.title
GPT_CLIENT_ID = "gpt-one-client"
OIDC_CLIENT_ID, OIDC_SECRET = "gateway-e2e.apps.example", "oidc-e2e-secret-5b1f"
GOOGLE_CLIENT_ID, GOOGLE_SECRET = "e2e.apps.googleusercontent.com", "GOCSPX-one-gpt-e2e"
INTERCOM_TOKEN, TRAINER_KEY = "ic-operator-token-e2e", "gt-operator-key-e2e"
OPENAI_KEY = "sk-operator-e2e-0123456789"
CHATBOT = "0123456789abcdef0123456789abcdef"
PROBLEM = "application/problem+json"
NATURAL = "Natural Query Results:\n\n"
SEALED = b"gAAAAA"  # how every Fernet token starts (version 0x80, base64url)


@dataclass(frozen=True)
class Person:
    """Someone with an account at the OpenID provider, an Ambivo JWT and a Google account."""

    sub: str
    email: str
    name: str
    jwt: str


ADA = Person(
    "1042",
    "ada@example.com",
    "Ada Lovelace",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEiLCJ0ZW5hbnQiOiJ0MSJ9.YWRhLXNpZ25hdHVyZS0x",
)
BOB = Person(
    "2077",
    "bob@example.org",
    "Bob Babbage",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJ0ZW5hbnQiOiJ0MiJ9.Ym9iLXNpZ25hdHVyZS0y",
)


# --- the config folder: the shipped one, with a harmless app allowlist --------------------


SLEEPER = {
    "name": "sleeper",
    "description": "A Python process that sleeps (the tests' stand-in for a desktop app)",
    "executable": sys.executable,
    "args": ["-c", "import time; time.sleep(30)"],
}


def shipped_config(tmp_path: Path) -> Path:
    """A copy of the repository's config (gateway.yaml, routes.d, plugins, schemas) whose
    routes.d/apps.yaml allows only SLEEPER: the shipped list starts real desktop programs."""
    folder = tmp_path / "config"
    folder.mkdir()
    shutil.copy(REPO / "gateway.yaml", folder / "gateway.yaml")
    for part in ("routes.d", "plugins", "schemas"):
        shutil.copytree(REPO / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    apps_file = folder / "routes.d" / "apps.yaml"
    apps = yaml.safe_load(apps_file.read_text())
    for route in apps["routes"]:
        route["settings"]["apps"] = [SLEEPER]
    apps_file.write_text(yaml.safe_dump(apps, sort_keys=False))
    return folder


# --- the loopback upstreams ---------------------------------------------------------------


@dataclass
class Loopbacks:
    provider: OidcProvider
    ambivo: Upstream
    refused: set[str]
    """JWTs the loopback Ambivo answers 401 for."""
    google: GoogleState
    gmail: Upstream
    intercom: IntercomState
    intercom_api: Upstream
    trainer: TrainerState
    trainer_api: Upstream
    openai: OpenAIState
    openai_api: Upstream

    def env(self) -> dict[str, str]:
        """What points the shipped routes at these upstreams, and the operator's keys."""
        return {
            "OIDC_ISSUER": self.provider.url,
            "OIDC_CLIENT_ID": OIDC_CLIENT_ID,
            "OIDC_CLIENT_SECRET": OIDC_SECRET,
            "OAUTH_CLIENT_ID": GPT_CLIENT_ID,
            "OAUTH_CLIENT_SECRET": GOOD_SECRET,
            "AMBIVO_API_BASE_URL": self.ambivo.url,
            "GOOGLE_CLIENT_ID": GOOGLE_CLIENT_ID,
            "GOOGLE_CLIENT_SECRET": GOOGLE_SECRET,
            "GOOGLE_AUTH_URL": f"{self.gmail.url}/o/oauth2/v2/auth",
            "GOOGLE_TOKEN_URL": f"{self.gmail.url}/token",
            "GMAIL_API_URL": self.gmail.url,
            "INTERCOM_API_URL": self.intercom_api.url,
            "INTERCOM_ACCESS_TOKEN": INTERCOM_TOKEN,
            "GPT_TRAINER_API_URL": self.trainer_api.url,
            "GPT_TRAINER_API_KEY": TRAINER_KEY,
            "GPT_TRAINER_CHATBOT_UUID": CHATBOT,
            "OPENAI_API_URL": self.openai_api.url,
            "OPENAI_API_KEY": OPENAI_KEY,
        }

    def marks(self) -> dict[str, int]:
        """How many requests each upstream has received so far."""
        return {name: len(upstream.seen) for name, upstream in self.apis().items()}

    def apis(self) -> dict[str, Upstream]:
        return {
            "ambivo": self.ambivo,
            "gmail": self.gmail,
            "intercom": self.intercom_api,
            "gpt_trainer": self.trainer_api,
            "openai": self.openai_api,
        }

    def since(self, marks: Mapping[str, int]) -> dict[str, list[Seen]]:
        """The requests each upstream received after ``marks`` (Google's token endpoint
        left out: Gmail's calls are the ones that carry a user's token)."""
        seen = {name: api.seen[marks[name] :] for name, api in self.apis().items()}
        seen["gmail"] = [one for one in seen["gmail"] if one.path.startswith(GMAIL_PREFIX)]
        return seen

    def credentials(self, upstream: str, requests: list[Seen]) -> list[str]:
        """Whose credential each request carried: a Google account for Gmail, else the
        Authorization header."""
        headers = [one.headers.get("Authorization", "") for one in requests]
        if upstream == "gmail":
            return [
                self.google.account_of(value.removeprefix("Bearer ")) or "?" for value in headers
            ]
        return headers


@asynccontextmanager
async def loopbacks(redirect_uri: str) -> AsyncIterator[Loopbacks]:
    """Every upstream of the shipped routes, and the OpenID provider with ``redirect_uri``
    (``<public url>/oauth/identity/callback``) registered for the gateway."""
    refused: set[str] = set()
    google = GoogleState(client_id=GOOGLE_CLIENT_ID, client_secret=GOOGLE_SECRET)
    google.add_message(
        "m-1",
        "t-1",
        sender="Carol <carol@example.com>",
        to="team@example.com",
        subject="Quarterly numbers",
        date="Mon, 01 Jul 2024 09:00:00 +0000",
        message_id_header="<m-1@example.com>",
        text="The numbers are in.",
    )
    intercom = IntercomState(token=INTERCOM_TOKEN)
    intercom.add_conversation("77", "<p>Is it <b>open</b>?</p>", created_at=1_720_000_000)
    trainer = TrainerState(api_key=TRAINER_KEY, chatbot_uuid=CHATBOT)
    openai = OpenAIState(api_key=OPENAI_KEY)
    async with AsyncExitStack() as stack:
        provider = await stack.enter_async_context(
            oidc_provider(
                client_id=OIDC_CLIENT_ID, client_secret=OIDC_SECRET, redirect_uri=redirect_uri
            )
        )
        ambivo = await stack.enter_async_context(serve_upstream(*ambivo_app(refused)))
        gmail = await stack.enter_async_context(serve_upstream(*google_app(google)))
        intercom_api = await stack.enter_async_context(serve_upstream(*intercom_app(intercom)))
        trainer_api = await stack.enter_async_context(serve_upstream(*gpt_trainer_app(trainer)))
        openai_api = await stack.enter_async_context(serve_upstream(*openai_app(openai)))
        yield Loopbacks(
            provider,
            ambivo,
            refused,
            google,
            gmail,
            intercom,
            intercom_api,
            trainer,
            trainer_api,
            openai,
            openai_api,
        )


def gateway_env(upstreams: Loopbacks, **settings: str) -> dict[str, str]:
    return {**CLEAN_ENV, **upstreams.env(), **settings}


def redis_env(namespace: str) -> dict[str, str]:
    return {
        "GATEWAY_STORE_URL": REDIS_URL,
        "GATEWAY_STORE_NAMESPACE": namespace,
        "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
    }


# --- a person's browser -------------------------------------------------------------------


@dataclass
class Page:
    status: int
    headers: CIMultiDictProxy[str]
    text: str
    set_cookies: dict[str, Morsel[str]]

    @property
    def location(self) -> str:
        return self.headers["Location"]

    def html(self) -> LexborHTMLParser:
        return LexborHTMLParser(self.text)

    def form(self, action: str) -> dict[str, str]:
        """The hidden fields of the form that posts to ``action``."""
        form = self.html().css_first(f'form[method="post"][action="{action}"]')
        assert form is not None, self.text
        return {
            str(node.attributes["name"]): str(node.attributes.get("value") or "")
            for node in form.css('input[type="hidden"]')
        }

    def links(self, text: str) -> list[str]:
        """The targets of the links whose text is ``text``."""
        return [
            str(node.attributes["href"])
            for node in self.html().css("a")
            if " ".join(node.text().split()) == text
        ]

    def accounts(self) -> dict[str, str]:
        """The consent page's "Your accounts these need:": title -> `connected` or the
        link that connects it."""
        found = {}
        for item in self.html().css("ul.connections li"):
            title, _, rest = item.text().partition(":")
            link = item.css_first("a")
            if link is None:
                assert " ".join(rest.split()) == "connected", item.html
                found[title.strip()] = "connected"
            else:
                assert " ".join(rest.split()) == f"not connected Connect {title.strip()}"
                found[title.strip()] = str(link.attributes["href"])
        return found

    def heading(self) -> str:
        node = self.html().css_first("h1")
        assert node is not None, self.text
        return node.text()


class Browser:
    """One person's browser on one gateway: its cookies (by path), no automatic redirects.

    Requests to a path, or to the gateway's public URL, go to ``gateway`` (a load balancer
    choosing a replica); other URLs (the OpenID provider, Google) go where they say.
    """

    def __init__(self, http: aiohttp.ClientSession, public: str, gateway: str | None = None):
        self.http = http
        self.public = public
        self.gateway = gateway or public
        self.cookies: dict[str, tuple[str, str]] = {}
        """Name -> (value, path)."""

    def url(self, target: str) -> str:
        if target.startswith("/"):
            return f"{self.gateway}{target}"
        if target == self.public or target.startswith((f"{self.public}/", f"{self.public}?")):
            return f"{self.gateway}{target[len(self.public) :]}"
        return target

    async def get(self, target: str) -> Page:
        return await self._send("GET", target, None)

    async def post(self, target: str, form: Mapping[str, str]) -> Page:
        return await self._send("POST", target, dict(form))

    async def _send(self, method: str, target: str, form: dict[str, str] | None) -> Page:
        url = self.url(target)
        path = urlsplit(url).path or "/"
        sent = "; ".join(
            f"{name}={value}"
            for name, (value, scope) in self.cookies.items()
            if path == scope or path.startswith(scope.rstrip("/") + "/")
        )
        headers = {"Cookie": sent} if sent and url.startswith(self.gateway) else {}
        async with self.http.request(
            method, url, data=form, headers=headers, allow_redirects=False
        ) as answer:
            text = await answer.text()
            set_cookies = dict(answer.cookies.items())
            for name, morsel in set_cookies.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = (morsel.value, morsel["path"] or "/")
                else:
                    self.cookies.pop(name, None)
            return Page(answer.status, answer.headers, text, set_cookies)


# --- ChatGPT's side -----------------------------------------------------------------------


@dataclass
class Action:
    """The GPT's Action: the document's OAuth scheme, as ChatGPT reads it."""

    authorization_url: str
    token_url: str
    scopes: list[str]

    @classmethod
    def of(cls, document: dict[str, Any]) -> Action:
        schemes = document["components"]["securitySchemes"]
        assert list(schemes) == ["oauth"]
        flow = schemes["oauth"]["flows"]["authorizationCode"]
        return cls(flow["authorizationUrl"], flow["tokenUrl"], list(flow["scopes"]))

    def client(self, scope: str | None = None) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=GPT_CLIENT_ID,
            client_secret=GOOD_SECRET,
            redirect_uri=CALLBACK,
            scope=scope if scope is not None else " ".join(self.scopes),
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_post",
        )


async def document_of(http: aiohttp.ClientSession, gateway: str) -> dict[str, Any]:
    async with http.get(f"{gateway}/openapi.json") as answer:
        assert answer.status == 200
        document: dict[str, Any] = await answer.json()
        return document


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def same_request(url: str, other: str) -> bool:
    """The same path and query parameters (however they are encoded)."""
    one, two = urlsplit(url), urlsplit(other)
    return (one.path, parse_qs(one.query)) == (two.path, parse_qs(two.query))


# --- the flows ----------------------------------------------------------------------------


async def sign_in(
    browser: Browser,
    provider: OidcProvider,
    person: Person,
    page: str,
    callback_on: str | None = None,
) -> None:
    """From the consent page at ``page`` (not signed in), through the OpenID provider, back
    to ``page`` signed in as ``person``. ``callback_on``: the replica the provider's
    redirect reaches (the browser stays there)."""
    consent = await browser.get(page)
    assert consent.status == 200, consent.text
    assert consent.heading() == f"Sign in to {SERVICE}"
    assert consent.set_cookies["gateway_oauth_browser"]["path"] == "/oauth"
    assert "Signed in as" not in consent.text
    assert consent.form("/oauth/authorize")["csrf"]
    assert 'value="allow"' not in consent.text  # nobody to allow for yet
    (start,) = consent.links("Sign in with Google")  # OIDC_NAME's default
    assert start.startswith("/oauth/identity/start?next=")
    assert same_request(parse_qs(urlsplit(start).query)["next"][0], page)

    provider.sign_in_as(person.sub, person.email, name=person.name)
    to_provider = await browser.get(start)
    assert to_provider.status == 302, to_provider.text
    assert to_provider.location.startswith(f"{provider.url}/authorize?")
    state_cookie = to_provider.set_cookies["gateway_signin_state"]
    assert state_cookie["path"] == "/oauth/identity/callback"
    assert state_cookie["httponly"]
    back = await browser.get(to_provider.location)
    assert back.status == 302
    browser.gateway = callback_on or browser.gateway
    assert back.location.startswith(f"{browser.public}/oauth/identity/callback?")
    signed_in = await browser.get(back.location)
    assert signed_in.status == 303, signed_in.text
    assert same_request(signed_in.location, page)
    session = signed_in.set_cookies["gateway_session"]
    assert (session["path"], bool(session["httponly"])) == ("/", True)
    assert "gateway_signin_state" not in browser.cookies  # a state works once


async def connect_ambivo(browser: Browser, link: str, jwt: str) -> str:
    """The connect page at ``link``: paste ``jwt``; returns where it sends the browser."""
    form_page = await browser.get(link)
    assert form_page.status == 200, form_page.text
    assert form_page.heading() == "Connect Ambivo API token"
    form = form_page.form("/connections/ambivo")
    assert set(form) == {"csrf", "next"}
    assert form_page.html().css_first('input[name="token"][type="password"]') is not None
    saved = await browser.post("/connections/ambivo", {**form, "token": jwt})
    assert saved.status == 303, saved.text
    return saved.location


async def connect_gmail(
    browser: Browser, google: GoogleState, gmail: Upstream, link: str, account: str
) -> str:
    """The connect page at ``link``, Google's consent for ``account`` (played here: a code
    for that account), the gateway's callback; returns where the callback sends the browser."""
    form_page = await browser.get(link)
    assert form_page.status == 200, form_page.text
    assert form_page.heading() == "Connect Gmail"
    form = form_page.form("/connections/gmail")
    assert set(form) == {"csrf", "next"}
    to_google = await browser.post("/connections/gmail", form)
    assert to_google.status == 303, to_google.text
    authorize = urlsplit(to_google.location)
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == (
        f"{gmail.url}/o/oauth2/v2/auth"
    )
    asked = {key: values[0] for key, values in parse_qs(authorize.query).items()}
    state = asked.pop("state")
    assert asked == {
        "response_type": "code",
        "client_id": GOOGLE_CLIENT_ID,
        "redirect_uri": f"{browser.public}/gmail/auth/callback",
        "scope": GMAIL_SCOPE,
        "access_type": "offline",
        "prompt": "consent",
    }
    code = google.issue_code(account)
    callback = f"{browser.public}/gmail/auth/callback?{urlencode({'code': code, 'state': state})}"
    back = await browser.get(callback)
    assert back.status == 302, back.text
    return back.location


async def allow(browser: Browser, page: str) -> str:
    """Allow on the consent page at ``page`` (signed in): the ChatGPT callback with the code."""
    consent = await browser.get(page)
    assert consent.status == 200, consent.text
    hidden = consent.form("/oauth/authorize")
    answer = await browser.post("/oauth/authorize", {**hidden, "decision": "allow"})
    assert answer.status == 302, answer.text
    assert answer.location.startswith(f"{CALLBACK}?")
    return answer.location


async def token_for(
    browser: Browser, action: Action, person: Person, upstreams: Loopbacks, *, connect: bool = True
) -> str:
    """``person``'s access token for the Action: sign in, (``connect``: connect Ambivo and
    Gmail from the consent page), allow, exchange the code at the document's token URL."""
    async with action.client() as client:
        verifier = generate_token(48)
        url, state = client.create_authorization_url(
            action.authorization_url, code_verifier=verifier
        )
        page = path_of(url)
        await sign_in(browser, upstreams.provider, person, page)
        consent = await browser.get(page)
        assert f"Signed in as <b>{person.email}</b>" in consent.text
        assert "Your accounts these need:" in consent.text
        accounts = consent.accounts()
        assert set(accounts) == {"Ambivo API token", "Gmail"}
        for title, name in (("Ambivo API token", "ambivo"), ("Gmail", "gmail")):
            link = accounts[title]  # not connected yet: a link that comes back here
            assert link.startswith(f"/connections/{name}?next=")
            assert same_request(parse_qs(urlsplit(link).query)["next"][0], page)
        if connect:
            back = await connect_ambivo(browser, accounts["Ambivo API token"], person.jwt)
            assert same_request(back, page)
            assert (await browser.get(page)).accounts()["Ambivo API token"] == "connected"
            back = await connect_gmail(
                browser, upstreams.google, upstreams.gmail, accounts["Gmail"], person.email
            )
            assert same_request(back, page)
            assert (await browser.get(page)).accounts() == {
                "Ambivo API token": "connected",
                "Gmail": "connected",
            }
        callback = await allow(browser, page)
        assert parse_qs(urlsplit(callback).query)["state"] == [state]
        token: dict[str, Any] = await client.fetch_token(
            browser.url(action.token_url), authorization_response=callback, code_verifier=verifier
        )
    assert token["token_type"].lower() == "bearer"
    assert set(token["scope"].split()) == set(action.scopes)
    return str(token["access_token"])


# --- every operation of the document --------------------------------------------------------

Memo = dict[str, Any]


def _nothing(memo: Memo) -> dict[str, str]:
    return {}


def _no_check(answer: Any, memo: Memo) -> None:
    return None


@dataclass(frozen=True)
class Operation:
    """How to call one operation validly, and what it must answer."""

    upstream: str | None
    """The upstream it calls (None: a static route or a plugin without one)."""
    status: int = 200
    path: Callable[[Memo], dict[str, str]] = _nothing
    query: Mapping[str, str] = field(default_factory=dict)
    body: Callable[[Memo], Any] | None = None
    check: Callable[[Any, Memo], None] = _no_check
    """Asserts the answer, and keeps what later operations need in the memo."""
    cached: bool = False
    """The upstream call may be skipped (the answer is remembered for a while)."""


def natural(query: str) -> str:
    return NATURAL + json.dumps(ambivo_answer(query), indent=2)


def operations(person: Person, google: GoogleState) -> dict[str, Operation]:
    """One valid call per operationId, in an order where each finds what it needs."""
    question = f"open leads of {person.name}"
    project = f"proj-{person.sub}"

    def natural_query(answer: Any, memo: Memo) -> None:
        assert answer.pop("timestamp")
        assert answer == {
            "query": question,
            "result": natural(question),
            "response_format": "both",
            "success": True,
        }

    def tool_result(answer: Any, memo: Memo) -> None:
        assert answer == {
            "result": natural(question),
            "tool_name": "natural_query",
            "success": True,
        }

    def tools(answer: Any, memo: Memo) -> None:
        assert [tool["name"] for tool in answer["tools"]] == ["natural_query"]

    def apps(answer: Any, memo: Memo) -> None:
        (app,) = answer["apps"]
        assert (app["name"], app["available"], app["path"]) == ("sleeper", True, sys.executable)
        memo["running"] = app["running"]

    def control(memo: Memo) -> dict[str, str]:
        return {"app_name": "sleeper", "action": "stop" if memo["running"] else "start"}

    def controlled(answer: Any, memo: Memo) -> None:
        if memo["running"]:
            assert (answer["message"], answer["pids"]) == ("Stopped 1 instance(s) of sleeper", [])
        else:
            assert answer["message"] == "sleeper started successfully"
            assert len(answer["pids"]) == 1
        assert answer["success"] is True

    def listed(answer: Any, memo: Memo) -> None:
        assert answer == {
            "messages": [
                {
                    "id": "m-1",
                    "thread_id": "t-1",
                    "from": "Carol <carol@example.com>",
                    "subject": "Quarterly numbers",
                    "date": "Mon, 01 Jul 2024 09:00:00 +0000",
                    "snippet": "The numbers are in.",
                }
            ]
        }

    def message(answer: Any, memo: Memo) -> None:
        assert (answer["id"], answer["thread_id"], answer["body"]) == (
            "m-1",
            "t-1",
            "The numbers are in.",
        )
        assert answer["headers"]["Subject"] == "Quarterly numbers"

    def sent(answer: Any, memo: Memo) -> None:
        assert answer["status"] == "sent"
        assert answer["id"]
        mail = decode_raw(google.sent[-1]["raw"])
        assert (mail["To"], mail["Subject"]) == ("carol@example.com", f"From {person.name}")

    def replied(answer: Any, memo: Memo) -> None:
        assert (answer["status"], answer["thread_id"]) == ("sent", "t-1")
        mail = decode_raw(google.sent[-1]["raw"])
        assert (mail["To"], mail["In-Reply-To"]) == (
            "Carol <carol@example.com>",
            "<m-1@example.com>",
        )

    def session(answer: Any, memo: Memo) -> None:
        assert re.fullmatch("[0-9a-f]{32}", answer["session_id"])
        memo["session"] = answer["session_id"]

    def no_messages(answer: Any, memo: Memo) -> None:
        assert answer == []  # a new session

    def conversations(answer: Any, memo: Memo) -> None:
        assert answer == {
            "conversations": [
                {
                    "id": "77",
                    "title": None,
                    "state": "open",
                    "open": True,
                    "read": False,
                    "updated_at": 1_720_000_000,
                }
            ],
            "total_count": 1,
            "next_cursor": None,
        }

    def conversation(answer: Any, memo: Memo) -> None:
        assert answer == {
            "id": "77",
            "state": "open",
            "title": None,
            "first_message": "Is it open?",
            "parts": [],
        }

    def no_memories(answer: Any, memo: Memo) -> None:
        assert answer == {"conversations": []}

    def no_memory(answer: Any, memo: Memo) -> None:
        assert (answer["type"], answer["detail"]) == (
            "urn:problem:gateway:plugin-refused",
            "Conversation not found",
        )

    def completion(answer: Any, memo: Memo) -> None:
        assert answer.pop("total_tokens") > 0
        assert answer == {
            "answer": "AI answer to: Hello (history: 0 items)",
            "model": "gpt-4o-mini",
            "finish_reason": "stop",
        }

    def models(answer: Any, memo: Memo) -> None:
        assert answer == sorted(MODELS)

    def healthy(answer: Any, memo: Memo) -> None:
        assert answer == {
            "status": "success",
            "data": {"openai": {"status": "healthy"}, "initialized": True},
        }

    def created(answer: Any, memo: Memo) -> None:
        data = answer["data"]
        assert (data["conversation"]["projectId"], data["conversation"]["title"]) == (
            project,
            f"{person.name}'s",
        )
        assert data["response"]["content"] == "AI answer to: Hello (history: 0 items)"
        memo["conversation"] = data["conversation"]["id"]

    def project_listing(answer: Any, memo: Memo) -> None:
        data = answer["data"]
        assert (data["projectId"], [item["id"] for item in data["conversations"]]) == (
            project,
            [memo["conversation"]],
        )

    def read_back(answer: Any, memo: Memo) -> None:
        read = answer["data"]["conversation"]
        assert read["id"] == memo["conversation"]
        assert [(m["role"], m["content"]) for m in read["messages"]] == [
            ("user", "Hello"),
            ("assistant", "AI answer to: Hello (history: 0 items)"),
        ]

    def added(answer: Any, memo: Memo) -> None:
        data = answer["data"]
        assert data["conversationId"] == memo["conversation"]
        assert data["response"]["content"] == "AI answer to: More please (history: 2 items)"

    def direct(answer: Any, memo: Memo) -> None:
        data = answer["data"]
        assert (data["response"]["content"], data["projectId"]) == (
            "AI answer to: Quick one (history: 0 items)",
            project,
        )

    hello = [{"role": "user", "content": "Hello"}]
    return {
        "naturalQuery": Operation(
            "ambivo", body=lambda m: {"query": question}, check=natural_query
        ),
        "listTools": Operation(None, check=tools),
        "runTool": Operation(
            "ambivo",
            body=lambda m: {"name": "natural_query", "arguments": {"query": question}},
            check=tool_result,
        ),
        "execute_natural_query": Operation(
            "ambivo", body=lambda m: {"query": question}, check=tool_result
        ),
        "listApps": Operation(None, check=apps),
        "controlApp": Operation(None, body=control, check=controlled),
        "listGmailMessages": Operation("gmail", query={"max_results": "5"}, check=listed),
        "getGmailMessage": Operation("gmail", path=lambda m: {"message_id": "m-1"}, check=message),
        "sendGmailMessage": Operation(
            "gmail",
            body=lambda m: {
                "to": "carol@example.com",
                "subject": f"From {person.name}",
                "body": "Hi",
            },
            check=sent,
        ),
        "replyGmailMessage": Operation(
            "gmail", body=lambda m: {"message_id": "m-1", "body": "Thanks"}, check=replied
        ),
        "createTrainerSession": Operation("gpt_trainer", check=session),
        "listTrainerMessages": Operation(
            "gpt_trainer",
            path=lambda m: {"session_id": m["session"]},
            check=no_messages,
        ),
        "listConversations": Operation("intercom", query={"per_page": "5"}, check=conversations),
        "getConversation": Operation(
            "intercom", path=lambda m: {"conversation_id": "77"}, check=conversation
        ),
        "listOmiConversations": Operation(None, check=no_memories),
        "getOmiConversation": Operation(
            None, status=404, path=lambda m: {"id": "m-1"}, check=no_memory
        ),
        "chatCompletion": Operation("openai", body=lambda m: {"messages": hello}, check=completion),
        "listModels": Operation("openai", check=models),
        "chatbetoStatus": Operation("openai", check=healthy, cached=True),
        "createChatbetoConversation": Operation(
            "openai",
            status=201,
            body=lambda m: {
                "projectId": project,
                "title": f"{person.name}'s",
                "initialMessage": "Hello",
            },
            check=created,
        ),
        "listChatbetoConversations": Operation(
            None, path=lambda m: {"projectId": project}, check=project_listing
        ),
        "getChatbetoConversation": Operation(
            None, path=lambda m: {"id": m["conversation"]}, check=read_back
        ),
        "addChatbetoMessage": Operation(
            "openai",
            path=lambda m: {"id": m["conversation"]},
            body=lambda m: {"message": "More please"},
            check=added,
        ),
        "chatbetoCompletion": Operation(
            "openai",
            body=lambda m: {
                "messages": [{"role": "user", "content": "Quick one"}],
                "projectId": project,
            },
            check=direct,
        ),
    }


OPERATOR = {
    "intercom": f"Bearer {INTERCOM_TOKEN}",
    "gpt_trainer": f"Bearer {TRAINER_KEY}",
    "openai": f"Bearer {OPENAI_KEY}",
}


async def call_every_operation(
    http: aiohttp.ClientSession,
    gateway: str,
    document: dict[str, Any],
    token: str,
    person: Person,
    upstreams: Loopbacks,
) -> Memo:
    """Each operation of ``document`` with ``token``; every upstream request it causes must
    carry ``person``'s own credential (Ambivo, Gmail) or the operator's (the others).
    Returns what the calls made (the ChatBETO conversation's id)."""
    table = operations(person, upstreams.google)
    declared = {
        op["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    assert sorted(table) == sorted(declared), "a route of the document has no call here"
    own = {"ambivo": f"Bearer {person.jwt}", "gmail": person.email}
    memo: Memo = {}
    for operation_id, operation in table.items():
        method, template = declared[operation_id]
        marks = upstreams.marks()
        async with http.request(
            method,
            gateway + template.format(**operation.path(memo)),
            params=operation.query,
            json=operation.body(memo) if operation.body else None,
            headers={"Authorization": f"Bearer {token}"},
        ) as answer:
            body = await answer.json(content_type=None)
            assert answer.status == operation.status, (operation_id, body)
        operation.check(body, memo)
        for name, requests in upstreams.since(marks).items():
            expected = own.get(name) or OPERATOR[name]
            assert upstreams.credentials(name, requests) == [expected] * len(requests), (
                operation_id,
                name,
            )
            if name == operation.upstream:
                assert requests or operation.cached, f"{operation_id} did not call {name}"
            else:
                assert not requests, f"{operation_id} called {name}"
    return memo


# --- the problems a test asserts exactly ----------------------------------------------------


def not_connected(public: str, upstream: str, route: str) -> dict[str, Any]:
    return {
        "type": "urn:problem:gateway:upstream-not-connected",
        "title": "Unauthorized",
        "status": 401,
        "detail": f"{upstream} is not connected for your account: open "
        f"{public}/connections/{upstream} to connect it, then try again",
        "route": route,
        "connect_url": f"{public}/connections/{upstream}",
    }


def refused_credential(public: str, upstream: str, why: str, route: str) -> dict[str, Any]:
    return {
        "type": "urn:problem:gateway:upstream-refused-credential",
        "title": "Unauthorized",
        "status": 401,
        "detail": f"{upstream} refused your saved credential ({why}): open "
        f"{public}/connections/{upstream} to connect it again, then try again",
        "route": route,
        "connect_url": f"{public}/connections/{upstream}",
    }


async def problem(
    http: aiohttp.ClientSession, method: str, url: str, token: str, **kwargs: Any
) -> tuple[int, dict[str, Any], CIMultiDictProxy[str]]:
    """A call that must fail: its status, its problem (without `request_id`, checked to be
    the X-Request-ID it was answered with) and its headers."""
    headers = {"Authorization": f"Bearer {token}"}
    async with http.request(method, url, headers=headers, **kwargs) as answer:
        assert answer.content_type == PROBLEM, await answer.text()
        body: dict[str, Any] = await answer.json(content_type=PROBLEM)
        assert body.pop("request_id") == answer.headers["X-Request-ID"]
        return answer.status, body, answer.headers


async def ok(http: aiohttp.ClientSession, method: str, url: str, token: str, **kwargs: Any) -> Any:
    """The JSON of a call that must work."""
    headers = {"Authorization": f"Bearer {token}"}
    async with http.request(method, url, headers=headers, **kwargs) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


def connection_rows(page: Page) -> dict[str, str]:
    """/connections: title -> `connected` or `not connected`."""
    assert page.status == 200, page.text
    rows = {}
    for item in page.html().css("ul.connections li"):
        title = item.css_first("b")
        assert title is not None
        rows[title.text()] = "connected" if item.css_first("span.ok") else "not connected"
    return rows


def quiet_log(log: Path, *secrets: str) -> None:
    """The gateway's log holds none of ``secrets``."""
    text = log.read_text()
    for secret in secrets:
        assert secret not in text, f"a secret is in the log: {secret[:8]}..."


@asynccontextmanager
async def one_gateway(
    tmp_path: Path, **settings: str
) -> AsyncIterator[tuple[str, Loopbacks, aiohttp.ClientSession, Path]]:
    """The upstreams, `gateway serve` of the shipped config on a port known before it
    starts (the provider's redirect URI names it), a client; and the gateway's log."""
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    log = tmp_path / "gateway.log"
    async with (
        loopbacks(f"{gateway}/oauth/identity/callback") as upstreams,
        serving(shipped_config(tmp_path), gateway_env(upstreams, **settings), log, port=port),
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):
        yield gateway, upstreams, http, log


# --- the tests ------------------------------------------------------------------------------


async def test_two_people_call_every_operation_with_their_own_connections(
    tmp_path: Path,
) -> None:
    """The memory store (the shipped default): Ada connects from the consent page, Bob
    allows first (his calls then say where to connect) and connects from /connections;
    then every operation, for each, with each one's own credentials."""
    async with one_gateway(tmp_path) as (gateway, upstreams, http, log):
        document = await document_of(http, gateway)
        action = Action.of(document)
        assert (action.authorization_url, action.token_url) == (
            f"{gateway}/oauth/authorize",
            f"{gateway}/oauth/token",
        )
        assert action.scopes == [
            "crm",
            "mail.read",
            "mail.send",
            "read:memories",
            "support",
            "apps",
            "openai",
        ]
        ada_token = await token_for(Browser(http, gateway), action, ADA, upstreams)

        bob = Browser(http, gateway)
        bob_token = await token_for(bob, action, BOB, upstreams, connect=False)
        marks = upstreams.marks()
        query = {"query": "anything"}
        status, body, _ = await problem(http, "POST", f"{gateway}/query", bob_token, json=query)
        assert (status, body) == (401, not_connected(gateway, "ambivo", "naturalQuery"))
        status, body, _ = await problem(http, "GET", f"{gateway}/gmail/messages", bob_token)
        assert status == 401
        assert body == not_connected(gateway, "gmail", "listGmailMessages")
        nothing_sent = upstreams.since(marks)
        assert (nothing_sent["ambivo"], nothing_sent["gmail"]) == ([], [])

        listing = await bob.get("/connections")
        assert connection_rows(listing) == {
            "Ambivo API token": "not connected",
            "Gmail": "not connected",
        }
        (link,) = listing.links("Connect Ambivo API token")
        assert await connect_ambivo(bob, link, BOB.jwt) == "/connections?connected=ambivo"
        (link,) = listing.links("Connect Gmail")
        back = await connect_gmail(bob, upstreams.google, upstreams.gmail, link, BOB.email)
        assert back == "/connections?connected=gmail"
        listing = await bob.get(back)
        assert '<p class="ok">Gmail is connected.</p>' in listing.text
        assert connection_rows(listing) == {"Ambivo API token": "connected", "Gmail": "connected"}

        # Re-creating every user's conversations is the operator's job (the API key).
        assert "startChatbetoSync" not in str(document["paths"])
        ada_made = await call_every_operation(http, gateway, document, ada_token, ADA, upstreams)
        await call_every_operation(http, gateway, document, bob_token, BOB, upstreams)

        # ChatBETO conversations are their creator's: Bob sees none of Ada's.
        ada_conversation = ada_made["conversation"]
        base = f"{gateway}/api/v1/openai"
        bearer = {"Authorization": f"Bearer {bob_token}"}
        for method, path, body in (
            ("GET", f"/conversations/{ada_conversation}", None),
            ("POST", f"/conversations/{ada_conversation}/messages", {"message": "let me in"}),
        ):
            async with http.request(method, base + path, json=body, headers=bearer) as answer:
                assert (answer.status, await answer.json()) == (
                    404,
                    {"status": "error", "message": f"conversation {ada_conversation} not found"},
                )
        listed = await ok(http, "GET", f"{base}/projects/proj-{ADA.sub}/conversations", bob_token)
        assert listed["data"]["conversations"] == []
        mine = await ok(http, "GET", f"{base}/conversations/{ada_conversation}", ada_token)
        assert mine["data"]["conversation"]["id"] == ada_conversation

        # A direct caller (no sign-in) still sends its own Ambivo JWT, passed through.
        carol = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYXJvbCJ9.Y2Fyb2wtc2lnbmF0dXJl"
        marks = upstreams.marks()
        assert (await ok(http, "POST", f"{gateway}/query", carol, json=query))["success"] is True
        assert upstreams.credentials("ambivo", upstreams.since(marks)["ambivo"]) == [
            f"Bearer {carol}"
        ]
    quiet_log(log, ADA.jwt, BOB.jwt, OIDC_SECRET, GOOGLE_SECRET, GOOD_SECRET, ada_token, bob_token)


async def test_saved_credentials_are_sealed_refused_and_disconnected(
    tmp_path: Path, redis_namespace: str
) -> None:
    """On Redis: the connections are sealed at rest; a JWT Ambivo refuses, a Gmail grant
    revoked at Google, a disconnection: each is a 401 that says where to connect (again);
    a token without a route's scope is a 403."""
    redis = Redis.from_url(REDIS_URL)
    async with one_gateway(tmp_path, **redis_env(redis_namespace)) as (
        gateway,
        upstreams,
        http,
        log,
    ):
        action = Action.of(await document_of(http, gateway))
        ada = Browser(http, gateway)
        token = await token_for(ada, action, ADA, upstreams)
        user = f"{upstreams.provider.url}#{ADA.sub}"

        # Sealed: Fernet tokens, in which neither the JWT nor Google's tokens can be read.
        ambivo_key = f"{redis_namespace}:connections:ambivo:{user}"
        gmail_key = f"{redis_namespace}:oauth2:gmail:tokens:{user}"
        google = upstreams.google
        google_tokens = [token for token, of in google.token_accounts.items() if of == ADA.email]
        assert len(google_tokens) == 2  # the access token and the refresh token
        for key, secrets in ((ambivo_key, [ADA.jwt]), (gmail_key, google_tokens)):
            raw = await redis.get(key)
            assert isinstance(raw, bytes), key
            assert raw.startswith(SEALED), raw
            for secret in secrets:
                assert secret.encode() not in raw
        session_id = ada.cookies["gateway_session"][0]
        session_key = hashlib.sha256(session_id.encode()).hexdigest()
        assert await redis.exists(f"{redis_namespace}:session:{session_key}") == 1

        # Ambivo stops taking the saved JWT: connect it again, at the link the problem gives.
        query = {"query": "anything"}
        upstreams.refused.add(ADA.jwt)
        status, body, _ = await problem(http, "POST", f"{gateway}/query", token, json=query)
        assert (status, body) == (
            401,
            refused_credential(gateway, "ambivo", "401", "naturalQuery"),
        )
        renewed = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEiLCJ0ZW5hbnQiOiJ0MSJ9.YWRhLXJlbmV3ZWQ"
        connect = urlsplit(body["connect_url"]).path
        assert await connect_ambivo(ada, connect, renewed) == "/connections?connected=ambivo"
        marks = upstreams.marks()
        assert (await ok(http, "POST", f"{gateway}/query", token, json=query))["success"] is True
        assert upstreams.credentials("ambivo", upstreams.since(marks)["ambivo"]) == [
            f"Bearer {renewed}"
        ]

        # Disconnecting forgets the secret; the next call is the missing-connection 401.
        listing = await ada.get("/connections")
        done = await ada.post(
            "/connections/ambivo/disconnect", listing.form("/connections/ambivo/disconnect")
        )
        assert (done.status, done.location) == (303, "/connections?disconnected=ambivo")
        assert await redis.exists(ambivo_key) == 0
        assert await redis.exists(gmail_key) == 1
        listing = await ada.get(done.location)
        assert '<p class="ok">Ambivo API token is disconnected.</p>' in listing.text
        assert connection_rows(listing) == {
            "Ambivo API token": "not connected",
            "Gmail": "connected",
        }
        status, body, _ = await problem(http, "POST", f"{gateway}/query", token, json=query)
        assert (status, body) == (401, not_connected(gateway, "ambivo", "naturalQuery"))

        # Google revokes the grant: the tokens are forgotten, and Gmail is to be connected again.
        google.revoke_all()
        google.expire_access_tokens()
        status, body, _ = await problem(http, "GET", f"{gateway}/gmail/messages", token)
        assert status == 401
        assert body == (
            refused_credential(
                gateway, "gmail", "the connection was revoked or expired", "listGmailMessages"
            )
        )
        assert await redis.exists(gmail_key) == 0
        back = await connect_gmail(ada, google, upstreams.gmail, "/connections/gmail", ADA.email)
        assert back == "/connections?connected=gmail"
        marks = upstreams.marks()
        assert (await ok(http, "GET", f"{gateway}/gmail/messages/m-1", token))["id"] == "m-1"
        assert set(upstreams.credentials("gmail", upstreams.since(marks)["gmail"])) == {ADA.email}
        listing = await ada.get("/connections")
        done = await ada.post(
            "/connections/gmail/disconnect", listing.form("/connections/gmail/disconnect")
        )
        assert (done.status, done.location) == (303, "/connections?disconnected=gmail")
        assert await redis.exists(gmail_key) == 0
        status, body, _ = await problem(http, "GET", f"{gateway}/gmail/messages", token)
        assert status == 401
        assert body == not_connected(gateway, "gmail", "listGmailMessages")

        # A token ChatGPT got for `crm` alone does not open the mail routes.
        async with action.client(scope="crm") as client:
            verifier = generate_token(48)
            url, _ = client.create_authorization_url(
                action.authorization_url, code_verifier=verifier
            )
            callback = await allow(ada, path_of(url))  # signed in already: consent alone
            narrow = await client.fetch_token(
                action.token_url, authorization_response=callback, code_verifier=verifier
            )
        assert narrow["scope"] == "crm"
        status, body, headers = await problem(
            http, "GET", f"{gateway}/gmail/messages", narrow["access_token"]
        )
        assert (status, body) == (
            403,
            {
                "type": "urn:problem:gateway:insufficient-scope",
                "title": "Forbidden",
                "status": 403,
                "detail": "the token lacks the scope mail.read",
                "route": "listGmailMessages",
            },
        )
        assert headers["WWW-Authenticate"] == (
            'Bearer realm="gateway", error="insufficient_scope", '
            'error_description="the token lacks the scope mail.read"'
        )
        tools = await ok(http, "GET", f"{gateway}/tools", narrow["access_token"])
        assert [tool["name"] for tool in tools["tools"]] == ["natural_query"]
    await redis.aclose()
    quiet_log(log, ADA.jwt, renewed, OIDC_SECRET, GOOGLE_SECRET, GOOD_SECRET, token, *google_tokens)


async def test_gmail_problem_names_its_connect_url(tmp_path: Path) -> None:
    """Gmail's missing-connection 401 has the same shape as Ambivo's, `connect_url` too."""
    async with one_gateway(tmp_path) as (gateway, upstreams, http, _):
        action = Action.of(await document_of(http, gateway))
        token = await token_for(Browser(http, gateway), action, ADA, upstreams, connect=False)
        status, body, _ = await problem(http, "GET", f"{gateway}/gmail/messages", token)
    assert (status, body) == (401, not_connected(gateway, "gmail", "listGmailMessages"))


async def test_two_replicas_share_sign_in_consent_tokens_and_connections(
    tmp_path: Path, redis_namespace: str
) -> None:
    """Two `gateway serve` on one Redis, behind one public URL: every step of the browser's
    flow may reach either replica, and calls on both use the connections made on either."""
    # The load balancer's URL (nothing listens there: the test routes each step itself).
    # Loopback: authlib refuses plain http for any other host.
    public = f"http://127.0.0.1:{free_port()}"
    async with loopbacks(f"{public}/oauth/identity/callback") as upstreams:
        env = gateway_env(upstreams, GATEWAY_PUBLIC_URL=public, **redis_env(redis_namespace))
        config = shipped_config(tmp_path)
        async with (
            serving(config, env, tmp_path / "one.log") as (one, _),
            serving(config, env, tmp_path / "two.log") as (two, _),
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        ):
            document = await document_of(http, one)
            assert await document_of(http, two) == document
            action = Action.of(document)
            assert (action.authorization_url, action.token_url) == (
                f"{public}/oauth/authorize",
                f"{public}/oauth/token",
            )
            browser = Browser(http, public, gateway=one)
            async with action.client() as client:
                verifier = generate_token(48)
                url, state = client.create_authorization_url(
                    action.authorization_url, code_verifier=verifier
                )
                page = path_of(url)
                # The authorization page and the sign-in's start on one, its callback on two.
                await sign_in(browser, upstreams.provider, ADA, page, callback_on=two)
                consent = await browser.get(page)  # on two
                assert f"Signed in as <b>{ADA.email}</b>" in consent.text
                accounts = consent.accounts()
                browser.gateway = one  # the session two started, on one
                back = await connect_ambivo(browser, accounts["Ambivo API token"], ADA.jwt)
                assert same_request(back, page)
                browser.gateway = two  # Gmail's start on two, Google's redirect to one
                form_page = await browser.get(accounts["Gmail"])
                to_google = await browser.post(
                    "/connections/gmail", form_page.form("/connections/gmail")
                )
                assert to_google.status == 303, to_google.text
                google_state = parse_qs(urlsplit(to_google.location).query)["state"][0]
                browser.gateway = one
                code = upstreams.google.issue_code(ADA.email)
                callback = f"{public}/gmail/auth/callback?" + urlencode(
                    {"code": code, "state": google_state}
                )
                back_page = await browser.get(callback)
                assert back_page.status == 302, back_page.text
                assert same_request(back_page.location, page)
                # The consent page on one, Allow on two, the code's exchange on one.
                consent = await browser.get(page)
                assert consent.accounts() == {"Ambivo API token": "connected", "Gmail": "connected"}
                browser.gateway = two
                allowed = await browser.post(
                    "/oauth/authorize", {**consent.form("/oauth/authorize"), "decision": "allow"}
                )
                assert allowed.status == 302, allowed.text
                assert allowed.location.startswith(f"{CALLBACK}?")
                assert parse_qs(urlsplit(allowed.location).query)["state"] == [state]
                browser.gateway = one
                issued = await client.fetch_token(
                    browser.url(action.token_url),
                    authorization_response=allowed.location,
                    code_verifier=verifier,
                )
            token = str(issued["access_token"])

            for replica in (one, two):
                marks = upstreams.marks()
                question = f"leads, asked at {replica}"
                answer = await ok(http, "POST", f"{replica}/query", token, json={"query": question})
                assert answer["result"] == natural(question)
                message = await ok(http, "GET", f"{replica}/gmail/messages/m-1", token)
                assert message["headers"]["Subject"] == "Quarterly numbers"
                seen = upstreams.since(marks)
                assert upstreams.credentials("ambivo", seen["ambivo"]) == [f"Bearer {ADA.jwt}"]
                assert set(upstreams.credentials("gmail", seen["gmail"])) == {ADA.email}
            assert upstreams.google.code_calls == 1  # connected once, used by both
