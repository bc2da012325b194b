"""Each served document declares exactly one security scheme; routes accept several.

The merged /openapi.json of the shipped config imports into ChatGPT as one Action: one
`oauth2` scheme with the gateway's URLs and every scope, per-operation scopes, at most 30
operations. Profiles keep the scheme their users already paste into ChatGPT.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.compiler.build import compile_config
from gateway.config.load import load
from gateway.errors import ConfigErrors
from gateway.snapshot import OAuth2ClientSpec, Snapshot, UserTokenSpec
from tests.conftest import REPO, TEST_ENCRYPTION_KEY, write_config

PUBLIC = "https://gw.example.com"
SCOPES = {
    "crm": "Ask your Ambivo CRM questions and run its tools",
    "mail.read": "Read your Gmail messages",
    "mail.send": "Send and answer email from your Gmail",
    "read:memories": "Read your OMI conversations",
    "support": "Read the support desk (Intercom, GPT Trainer)",
    "apps": "Start and stop the allowlisted desktop apps",
    "openai": "Use OpenAI through the operator's key",
}


@pytest.fixture(scope="module")
def shipped() -> Snapshot:
    return compile_config(load(REPO, environ={"GATEWAY_PUBLIC_URL": PUBLIC}))


def operations(document: object) -> dict[str, dict[str, object]]:
    assert isinstance(document, dict)
    return {
        operation["operationId"]: operation
        for item in document["paths"].values()
        for operation in item.values()
    }


def test_the_merged_document_declares_only_the_gateway_sign_in(shipped: Snapshot) -> None:
    document = shipped.openapi
    assert document["components"]["securitySchemes"] == {
        "oauth": {
            "type": "oauth2",
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": f"{PUBLIC}/oauth/authorize",
                    "tokenUrl": f"{PUBLIC}/oauth/token",
                    "refreshUrl": f"{PUBLIC}/oauth/token",
                    "scopes": SCOPES,
                }
            },
        }
    }
    scopes = {op_id: op["security"] for op_id, op in operations(document).items()}
    assert len(scopes) == 24
    assert scopes["naturalQuery"] == [{"oauth": ["crm"]}]
    assert scopes["listGmailMessages"] == [{"oauth": ["mail.read"]}]
    assert scopes["sendGmailMessage"] == [{"oauth": ["mail.send"]}]
    assert scopes["listConversations"] == [{"oauth": ["support"]}]
    assert scopes["createTrainerSession"] == [{"oauth": ["support"]}]
    assert scopes["listApps"] == [{"oauth": ["apps"]}]
    assert scopes["chatCompletion"] == [{"oauth": ["openai"]}]
    assert scopes["listOmiConversations"] == [{"oauth": ["read:memories"]}]
    # Every operation needs exactly one scope of the declared set.
    assert {tuple(value[0]["oauth"]) for value in scopes.values()} == {(scope,) for scope in SCOPES}
    # `merged: false`: signed-in users connect Gmail at /connections instead.
    assert "gmailAuthUrl" not in scopes
    assert "gmailAuthStatus" not in scopes
    # The operator's: re-creating every user's ChatBETO conversations (API key only).
    assert "startChatbetoSync" not in scopes
    assert "getChatbetoSync" not in scopes
    assert [issue for issue in shipped.lint if issue.document == "openapi.json"] == []


def test_the_manifest_describes_the_same_single_scheme(shipped: Snapshot) -> None:
    assert shipped.ai_plugin["auth"] == {
        "type": "oauth",
        "client_url": f"{PUBLIC}/oauth/authorize",
        "authorization_url": f"{PUBLIC}/oauth/token",
        "authorization_content_type": "application/x-www-form-urlencoded",
        "scope": " ".join(SCOPES),
    }


def test_profiles_keep_the_scheme_their_gpts_use(shipped: Snapshot) -> None:
    schemes = {
        name: list(document["components"].get("securitySchemes", {}))
        for name, document in shipped.profiles.items()
    }
    assert schemes == {
        "ambivo": ["bearer"],
        "support": ["api_key"],
        "openai": ["api_key"],
        "apps": ["api_key"],
        "omi": ["oauth"],
        "gmail": ["api_key"],
        "assistant": ["api_key"],
    }
    assert operations(shipped.profiles["ambivo"])["naturalQuery"]["security"] == [{"bearer": []}]
    # A profile still holds what the merged document leaves out.
    assert "gmailAuthUrl" in operations(shipped.profiles["assistant"])


def test_connections_of_the_shipped_config(shipped: Snapshot) -> None:
    ambivo, gmail = shipped.connections["ambivo"], shipped.connections["gmail"]
    assert isinstance(ambivo, UserTokenSpec)
    assert (ambivo.title, ambivo.header, ambivo.prefix, ambivo.jwt_only) == (
        "Ambivo API token",
        "Authorization",
        "Bearer ",
        True,
    )
    assert ambivo.connect_url == f"{PUBLIC}/connections/ambivo"
    assert isinstance(gmail, OAuth2ClientSpec)
    assert gmail.connect_url == f"{PUBLIC}/connections/gmail"
    assert list(shipped.connections) == ["ambivo", "gmail"]
    assert dict(shipped.scope_connections) == {
        "crm": ("ambivo",),
        "mail.read": ("gmail",),
        "mail.send": ("gmail",),
    }


GATEWAY = """
auth:
  - {id: key, type: api_key, keys: [k1]}
  - {id: oauth, type: oauth}
  - {id: bearer, type: bearer_passthrough}
oauth:
  clients: [{id: gpt, client_id: c, client_secret: s}]
  scopes: {crm: CRM, mail: Mail}
"""


def compiled(tmp_path: Path, gateway: str, routes: str, **environ: str) -> Snapshot:
    write_config(tmp_path, gateway, {"a": routes})
    return compile_config(load(tmp_path, environ=environ))


def errors_of(tmp_path: Path, gateway: str, routes: str) -> list[str]:
    write_config(tmp_path, gateway, {"a": routes})
    with pytest.raises(ConfigErrors) as caught:
        compile_config(load(tmp_path, environ={}))
    return [str(error) for error in caught.value.errors]


ROUTES = """
upstream: {name: crm, base_url: "http://127.0.0.1:9", scopes: [crm]}
routes:
  - {id: both, path: /both, auth: [oauth, key]}
  - {id: keyOnly, path: /key, auth: key}
  - {id: oauthOnly, path: /oauth, auth: oauth, scopes: [mail]}
  - {id: open, path: /open, auth: none}
  - {id: hidden, path: /hidden, auth: [oauth, key], merged: false, tags: [t]}
"""


def test_a_document_holds_the_routes_that_accept_its_scheme(tmp_path: Path) -> None:
    snapshot = compiled(
        tmp_path,
        GATEWAY + "profiles:\n  - {id: p, title: P, description: D, tags: [t], auth: key}\n",
        ROUTES,
    )
    merged = operations(snapshot.openapi)
    assert {name: op["security"] for name, op in merged.items()} == {
        "both": [{"oauth": ["crm"]}],  # the upstream's scope
        "oauthOnly": [{"oauth": ["mail"]}],  # the route's own
        "open": [],
    }
    assert list(snapshot.openapi["components"]["securitySchemes"]) == ["oauth"]
    assert [str(issue) for issue in snapshot.lint if "leaves out" in issue.message] == [
        "warning: [openapi.json] leaves out 1 route that do not accept `oauth`: keyOnly"
        " (add `oauth` to their `auth:`, or serve them in a profile)"
    ]
    profile = snapshot.profiles["p"]
    assert {name: op["security"] for name, op in operations(profile).items()} == {
        "hidden": [{"key": []}]
    }
    routes = {route.id: route for route in snapshot.routes}
    assert [spec.id for spec in routes["both"].accepts] == ["oauth", "key"]
    assert routes["both"].auth_text == "oauth,key"
    assert routes["open"].auth_text == "none"


def test_openapi_auth_names_the_merged_scheme(tmp_path: Path) -> None:
    snapshot = compiled(tmp_path, GATEWAY + "openapi: {auth: key}\n", ROUTES)
    assert set(operations(snapshot.openapi)) == {"both", "keyOnly", "open"}
    assert list(snapshot.openapi["components"]["securitySchemes"]) == ["key"]


def test_without_oauth_the_merged_scheme_is_the_most_accepted(tmp_path: Path) -> None:
    gateway = (
        "auth:\n  - {id: a, type: api_key, keys: [k]}\n  - {id: b, type: bearer_passthrough}\n"
    )
    routes = (
        "upstream: {name: crm, base_url: 'http://127.0.0.1:9'}\nroutes:\n"
        "  - {id: one, path: /1, auth: b}\n  - {id: two, path: /2, auth: [a, b]}\n"
        "  - {id: three, path: /3, auth: a}\n  - {id: four, path: /4, auth: b}\n"
    )
    snapshot = compiled(tmp_path, gateway, routes)
    assert set(operations(snapshot.openapi)) == {"one", "two", "four"}


def test_a_profile_without_a_common_scheme_must_name_one(tmp_path: Path) -> None:
    gateway = (
        GATEWAY + "profiles:\n  - {id: p, title: P, description: D, routes: [keyOnly, oauthOnly]}\n"
    )
    assert errors_of(tmp_path, gateway, ROUTES) == [
        "gateway.yaml:10:5: profile `p`: its routes accept no auth scheme in common; set"
        " `auth:` to the one its document declares (routes that do not accept it are left"
        " out) - at `$.profiles[0]`"
    ]


def test_auth_lists_are_checked(tmp_path: Path) -> None:
    routes = """
upstream: {name: crm, base_url: "http://127.0.0.1:9"}
routes:
  - {id: a, path: /a, auth: [oauth, nope]}
  - {id: b, path: /b, auth: [none, key]}
  - {id: c, path: /c, auth: []}
  - {id: d, path: /d, auth: [key, key]}
  - {id: e, path: /e, auth: key, scopes: [crm]}
"""
    assert errors_of(tmp_path, GATEWAY, routes) == [
        "routes.d/a.yaml:4:37: auth scheme `nope` is not declared in gateway.yaml"
        " (known: none, bearer, key, oauth) - at `$.routes[0].auth[1]`",
        "routes.d/a.yaml:5:29: `none` cannot be combined with other schemes"
        " - at `$.routes[1].auth`",
        "routes.d/a.yaml:6:29: name at least one auth scheme, or `none` - at `$.routes[2].auth`",
        "routes.d/a.yaml:7:35: auth scheme `key` is listed twice - at `$.routes[3].auth[1]`",
        "routes.d/a.yaml:8:42: `scopes` need an `oauth` auth scheme - at `$.routes[4].scopes`",
    ]


def test_an_upstream_scope_must_be_declared(tmp_path: Path) -> None:
    routes = (
        "upstream: {name: crm, base_url: 'http://127.0.0.1:9', scopes: [crm, typo]}\n"
        "routes:\n  - {id: a, path: /a, auth: oauth}\n"
    )
    assert errors_of(tmp_path, GATEWAY, routes) == [
        "routes.d/a.yaml:1:69: scope `typo` is not declared in gateway.yaml `oauth.scopes`"
        " (known: crm, mail) - at `$.upstream.scopes[1]`"
    ]


def test_a_merged_document_over_30_operations_fails_with_advice(tmp_path: Path) -> None:
    routes = "upstream: {name: crm, base_url: 'http://127.0.0.1:9'}\nroutes:\n" + "".join(
        f"  - {{id: op{i}, path: /p{i}, auth: oauth}}\n" for i in range(31)
    )
    snapshot = compiled(tmp_path, GATEWAY, routes)
    errors = [str(issue) for issue in snapshot.lint if issue.level == "error"]
    assert errors == [
        "error: [openapi.json] has 31 operations; an action allows at most 30 (A5): leave"
        " routes out of it with `merged: false` on them, or serve them in a profile. Its"
        " routes: " + ", ".join(f"op{i}" for i in range(31))
    ]


USER_TOKEN = """
upstream:
  name: crm
  base_url: "http://127.0.0.1:9"
  auth: {type: user_token, format: jwt}
  scopes: [crm]
routes:
  - {id: a, path: /a, auth: [oauth, bearer]}
"""


def test_encryption_keys_are_fernet_keys(tmp_path: Path) -> None:
    gateway = GATEWAY + "store: {encryption_keys: ['not-a-key']}\n"
    assert errors_of(tmp_path, gateway, USER_TOKEN) == [
        "gateway.yaml:9:26: encryption key 1 is not a Fernet key (32 url-safe base64 bytes;"
        " `gateway secret-key` makes one) - at `$.store.encryption_keys`"
    ]


def test_a_durable_store_without_a_key_keeps_no_connections(tmp_path: Path) -> None:
    gateway = GATEWAY + "store: {url: 'redis://127.0.0.1:6379/0'}\n"
    snapshot = compiled(tmp_path, gateway, USER_TOKEN)
    reason = (
        'upstream "crm" keeps users\' credentials, and the store is durable: set'
        " `store.encryption_keys` (GATEWAY_ENCRYPTION_KEYS; `gateway secret-key` makes one)"
    )
    assert snapshot.unconfigured == {"a": reason}
    assert snapshot.unconfigured_connections == {"crm": reason}
    keyed = (
        GATEWAY
        + f"store: {{url: 'redis://127.0.0.1:6379/0', encryption_keys: ['{TEST_ENCRYPTION_KEY}']}}\n"
    )
    snapshot = compiled(tmp_path, keyed, USER_TOKEN)
    assert snapshot.unconfigured == {}
    spec = snapshot.connections["crm"]
    assert spec.sealer is not None
    assert TEST_ENCRYPTION_KEY not in repr(spec)
    assert snapshot.redact(f"key {TEST_ENCRYPTION_KEY}") == "key ***"


IDENTITY = (
    GATEWAY
    + """  identity:
    issuer: "${ISSUER:-}"
    client_id: gw
    client_secret: "${SECRET:-}"
    name: Google
    allow_domains: ["${DOMAINS:-}"]
"""
)


def test_identity_is_off_until_its_issuer_is_set(tmp_path: Path) -> None:
    snapshot = compiled(tmp_path, IDENTITY, USER_TOKEN)
    assert snapshot.oauth is not None
    assert snapshot.oauth.identity is None
    assert snapshot.warnings == ()


def test_identity_settings(tmp_path: Path) -> None:
    snapshot = compiled(
        tmp_path,
        IDENTITY,
        USER_TOKEN,
        ISSUER="https://accounts.example.com/",
        SECRET="oidc-secret-1",
        DOMAINS="Example.com, example.org",
    )
    assert snapshot.oauth is not None
    identity = snapshot.oauth.identity
    assert identity is not None
    assert identity.issuer == "https://accounts.example.com"
    # No `server.public_url` here: where `gateway serve` listens.
    assert identity.redirect_uri == "http://127.0.0.1:8080/oauth/identity/callback"
    assert identity.scopes == ("openid", "email", "profile")
    assert identity.allow_domains == frozenset({"example.com", "example.org"})
    assert identity.user_id("1234") == "https://accounts.example.com#1234"
    assert "oidc-secret-1" not in repr(identity)
    assert snapshot.redact("oidc-secret-1") == "***"
    assert snapshot.warnings == ()


def test_identity_open_to_anyone_is_warned_of(tmp_path: Path) -> None:
    snapshot = compiled(
        tmp_path, IDENTITY, USER_TOKEN, ISSUER="https://accounts.example.com", SECRET="s3cret"
    )
    assert snapshot.warnings == (
        "oauth.identity has no allow_emails or allow_domains: anyone with an account at"
        " https://accounts.example.com can sign in and use every route their token's scopes"
        " open, the operator's upstream credentials included (set OIDC_ALLOW_EMAILS or"
        " OIDC_ALLOW_DOMAINS)",
    )


def test_identity_mistakes_are_refused(tmp_path: Path) -> None:
    gateway = GATEWAY + (
        "  identity: {issuer: 'ftp://x', client_id: gw, client_secret: '',"
        " allow_domains: ['a@b.c'], allow_emails: [nobody]}\n"
    )
    assert errors_of(tmp_path, gateway, USER_TOKEN) == [
        "gateway.yaml:9:22: expected an https URL, got 'ftp://x' - at `$.oauth.identity.issuer`",
        "gateway.yaml:9:63: the client secret is empty - at `$.oauth.identity.client_secret`",
        "gateway.yaml:9:83: expected a domain such as example.com, got 'a@b.c'"
        " - at `$.oauth.identity.allow_domains[0]`",
        "gateway.yaml:9:108: expected an email address, got 'nobody'"
        " - at `$.oauth.identity.allow_emails[0]`",
    ]
