"""The authorization server's consent page (sign-in + consent, or consent alone for a user
already signed in, with the connections the asked scopes need), or an error page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jinja2
from litestar import MediaType, Response
from litestar.datastructures import Cookie

from gateway.oauth.consent import origin_of
from gateway.snapshot import OAuthSpec

__all__ = ["STYLE", "ConnectionState", "content_security_policy", "html_response", "page"]

STYLE = """body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;
line-height:1.4;color:#1f2328}
label{display:block;margin-top:.75rem;font-weight:600}
input,button,.button{display:block;width:100%;padding:.6rem;margin:.25rem 0;box-sizing:border-box;
font:inherit;text-align:center}
input{border:1px solid #8c959f;border-radius:6px;text-align:left}
button,.button{border-radius:6px;cursor:pointer;text-decoration:none}
.actions{margin-top:1rem}
.primary{background:#0b57d0;color:#fff;border:1px solid #0b57d0;font-weight:600}
.secondary{background:#fff;color:#1f2328;border:1px solid #8c959f}
.error{color:#b00020}.ok{color:#116329}.muted{color:#59636e;font-size:.9rem}
ul.connections{list-style:none;padding:0}ul.connections li{margin:.5rem 0}
.inline{display:inline;width:auto;padding:.2rem .6rem;margin:0 0 0 .5rem}"""


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """One upstream a consent needs, as the page shows it."""

    name: str
    title: str
    connected: bool
    connect_url: str
    """A path of this gateway: the connect page, coming back to this consent."""


_TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{% if client %}Sign in to {{ service }}{% else %}Sign in{% endif %}</title>
<style>{{ style }}</style></head>
<body>
{% if client %}<h1>Sign in to {{ service }}</h1>{% else %}<h1>Sign in</h1>{% endif %}
{% if error %}<p class="error">{{ error }}</p>{% endif %}
{% if client %}<p><b>{{ client }}</b> asks to use <b>{{ service }}</b> for you, to:</p>
<ul>{% for scope, text in scopes %}<li>{{ text }} <small>({{ scope }})</small></li>{% endfor %}</ul>
<p>You will be sent back to <b>{{ return_host }}</b>.</p>
{% if signed_in %}<p class="muted">Signed in as <b>{{ signed_in }}</b>.</p>{% endif %}
{% if connections %}<p>Your accounts these need:</p>
<ul class="connections">{% for item in connections %}<li>{{ item.title }}:
{% if item.connected %}<span class="ok">connected</span>{% else %}<b>not connected</b>
<a class="button secondary" href="{{ item.connect_url }}">Connect {{ item.title }}</a>{% endif %}
</li>{% endfor %}</ul>{% endif %}
{% if identity and not signed_in %}
<a class="button primary" href="{{ identity_url }}">Sign in with {{ identity }}</a>
{% if passwords %}<p class="muted">or with a username and password:</p>{% endif %}{% endif %}
<form method="post" action="{{ action }}">
{% for name, value in hidden %}
<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
{% if passwords and not signed_in %}
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{% endif %}
<div class="actions">
{% if signed_in or passwords %}
<button type="submit" class="primary" name="decision" value="allow">Allow</button>
{% elif not identity %}<p class="error">Nobody can sign in here yet.</p>{% endif %}
<button type="submit" class="secondary" name="decision" value="deny" formnovalidate>Deny</button>
</div>
</form>{% endif %}
</body></html>
"""
)
_LOGIN_FIELDS = ("username", "password", "decision")


def content_security_policy(form_target: str | None) -> str:
    """Nothing loads, nothing frames the page, the form posts only here. Browsers apply
    `form-action` to the redirect that answers the post too, so a form page also allows
    the (already checked) redirect_uri's origin, or Allow would be blocked."""
    form_action = "'self'" if form_target is None else f"'self' {form_target}"
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )


def page(
    status: int,
    error: str | None = None,
    *,
    spec: OAuthSpec | None = None,
    client: str | None = None,
    service: str = "this service",
    values: Mapping[str, str] | None = None,
    action: str = "/oauth/authorize",
    cookies: Sequence[Cookie] = (),
    headers: Mapping[str, str] | None = None,
    signed_in: str | None = None,
    connections: Sequence[ConnectionState] = (),
    identity_url: str = "",
) -> Response[str]:
    """The form (with ``client`` and ``spec``: the request is valid) or just ``error``;
    the form names the ``service`` signed in to and the host the browser returns to (the
    checked redirect_uri's), and posts to ``action`` (a path of this origin:
    `form-action 'self'` allows it). ``signed_in``: the name of the user already signed in
    (no password fields); ``connections``: the upstreams the asked scopes need;
    ``identity_url``: where "Sign in with <provider>" starts (with `oauth.identity`)."""
    values = values or {}
    scopes: list[tuple[str, str]] = []
    form_target = None
    return_host = ""
    if client is not None and spec is not None:
        asked = values.get("scope", "").split() or list(spec.scopes)
        scopes = [(scope, spec.scopes.get(scope, scope)) for scope in asked]
        form_target = origin_of(values.get("redirect_uri", ""))
        return_host = form_target.partition("://")[2] if form_target else ""  # host[:port]
    hidden = [(name, value) for name, value in values.items() if name not in _LOGIN_FIELDS]
    html = _TEMPLATE.render(
        client=client,
        service=service,
        return_host=return_host,
        scopes=scopes,
        hidden=hidden,
        error=error,
        action=action,
        style=STYLE,
        signed_in=signed_in,
        connections=connections,
        identity=spec.identity.name if spec is not None and spec.identity else None,
        identity_url=identity_url,
        passwords=spec is not None and bool(spec.users or spec.login),
    )
    return html_response(html, status, form_target, cookies, headers)


def html_response(
    html: str,
    status: int,
    form_target: str | None = None,
    cookies: Sequence[Cookie] = (),
    headers: Mapping[str, str] | None = None,
) -> Response[str]:
    """A page of the gateway's own: never cached, never framed, loading nothing."""
    return Response(
        html,
        status_code=status,
        media_type=MediaType.HTML,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": content_security_policy(form_target),
            **(headers or {}),
        },
        cookies=list(cookies),
    )
