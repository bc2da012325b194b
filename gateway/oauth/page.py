"""The authorization server's one HTML page: the login + consent form, or an error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jinja2
from litestar import MediaType, Response
from litestar.datastructures import Cookie

from gateway.oauth.consent import origin_of
from gateway.snapshot import OAuthSpec

__all__ = ["page"]

_TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
input,button{width:100%;padding:.5rem;margin:.25rem 0;box-sizing:border-box}
.error{color:#b00020}</style></head>
<body>
<h1>Sign in</h1>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
{% if client %}<p><b>{{ client }}</b> asks to:</p>
<ul>{% for scope, text in scopes %}<li>{{ text }} <small>({{ scope }})</small></li>{% endfor %}</ul>
<form method="post" action="{{ action }}">
{% for name, value in hidden %}
<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
<input name="username" placeholder="Username" required>
<input name="password" type="password" placeholder="Password" required>
<button name="decision" value="allow">Allow</button>
<button name="decision" value="deny" formnovalidate>Deny</button>
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
    values: Mapping[str, str] | None = None,
    action: str = "/oauth/authorize",
    cookies: Sequence[Cookie] = (),
    headers: Mapping[str, str] | None = None,
) -> Response[str]:
    """The form (with ``client`` and ``spec``: the request is valid) or just ``error``;
    the form posts to ``action`` (a path of this origin: `form-action 'self'` allows it)."""
    values = values or {}
    scopes: list[tuple[str, str]] = []
    form_target = None
    if client is not None and spec is not None:
        asked = values.get("scope", "").split() or list(spec.scopes)
        scopes = [(scope, spec.scopes.get(scope, scope)) for scope in asked]
        form_target = origin_of(values.get("redirect_uri", ""))
    hidden = [(name, value) for name, value in values.items() if name not in _LOGIN_FIELDS]
    html = _TEMPLATE.render(client=client, scopes=scopes, hidden=hidden, error=error, action=action)
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
