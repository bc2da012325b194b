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
<title>{% if client %}Sign in to {{ service }}{% else %}Sign in{% endif %}</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem;
line-height:1.4;color:#1f2328}
label{display:block;margin-top:.75rem;font-weight:600}
input,button{width:100%;padding:.6rem;margin:.25rem 0;box-sizing:border-box;font:inherit}
input{border:1px solid #8c959f;border-radius:6px}
button{border-radius:6px;cursor:pointer}
.actions{margin-top:1rem}
.primary{background:#0b57d0;color:#fff;border:1px solid #0b57d0;font-weight:600}
.secondary{background:#fff;color:#1f2328;border:1px solid #8c959f}
.error{color:#b00020}</style></head>
<body>
{% if client %}<h1>Sign in to {{ service }}</h1>{% else %}<h1>Sign in</h1>{% endif %}
{% if error %}<p class="error">{{ error }}</p>{% endif %}
{% if client %}<p><b>{{ client }}</b> asks to use <b>{{ service }}</b> for you, to:</p>
<ul>{% for scope, text in scopes %}<li>{{ text }} <small>({{ scope }})</small></li>{% endfor %}</ul>
<p>You will be sent back to <b>{{ return_host }}</b>.</p>
<form method="post" action="{{ action }}">
{% for name, value in hidden %}
<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<div class="actions">
<button type="submit" class="primary" name="decision" value="allow">Allow</button>
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
) -> Response[str]:
    """The form (with ``client`` and ``spec``: the request is valid) or just ``error``;
    the form names the ``service`` signed in to and the host the browser returns to (the
    checked redirect_uri's), and posts to ``action`` (a path of this origin:
    `form-action 'self'` allows it)."""
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
    )
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
