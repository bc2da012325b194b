"""The pages of a user's account on the gateway: sign in, /connections, one upstream's
connect page. Plain HTML forms (no script), the consent page's look and headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jinja2
from litestar import Response
from litestar.datastructures import Cookie

from gateway.oauth.page import STYLE, html_response

__all__ = ["ConnectionRow", "connect_page", "connections_page", "message_page", "signin_page"]

_PAGES = jinja2.Environment(
    autoescape=True,
    loader=jinja2.DictLoader(
        {
            "base": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{ title }}</title><style>{{ style }}</style></head>
<body><h1>{{ title }}</h1>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
{% if notice %}<p class="ok">{{ notice }}</p>{% endif %}
{% block content %}{% endblock %}
{% if signed_in %}<form method="post" action="/oauth/signout">
<input type="hidden" name="csrf" value="{{ csrf }}">
<p class="muted">Signed in as <b>{{ signed_in }}</b>
<button type="submit" class="secondary inline">Sign out</button></p></form>{% endif %}
</body></html>
""",
            "signin": """{% extends "base" %}{% block content %}
{% if identity %}<a class="button primary" href="{{ identity_url }}">Sign in with {{ identity }}</a>
{% endif %}{% if passwords %}{% if identity %}<p class="muted">or with a username and password:</p>
{% endif %}<form method="post" action="/oauth/signin">
<input type="hidden" name="next" value="{{ next }}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<div class="actions"><button type="submit" class="primary">Sign in</button></div>
</form>{% endif %}
{% if not identity and not passwords %}<p>Nobody can sign in here yet.</p>{% endif %}
{% endblock %}""",
            "connections": """{% extends "base" %}{% block content %}
<p>The accounts the gateway uses for you. Each is yours alone.</p>
<ul class="connections">{% for row in rows %}<li><b>{{ row.title }}</b>:
{% if row.connected_since %}<span class="ok">connected</span>
<span class="muted">since {{ row.connected_since }}</span>
<form method="post" action="/connections/{{ row.name }}/disconnect">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit" class="secondary">Disconnect {{ row.title }}</button></form>
{% elif row.available %}not connected{% else %}<span class="muted">not available here yet</span>
{% endif %}{% if row.available %}
<a class="button {% if row.connected_since %}secondary{% else %}primary{% endif %}"
 href="/connections/{{ row.name }}">{% if row.connected_since %}Replace{% else %}Connect{% endif %}
 {{ row.title }}</a>{% endif %}</li>
{% else %}<li>No upstream here takes your own account.</li>{% endfor %}
</ul>{% endblock %}""",
            "connect": """{% extends "base" %}{% block content %}
<form method="post" action="/connections/{{ name }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
{% if paste %}{% if instructions %}<p>{{ instructions }}</p>{% endif %}
<label for="token">{{ label }}</label>
<input id="token" name="token" type="password" autocomplete="off" spellcheck="false"
 maxlength="{{ max_length }}" required>
<div class="actions"><button type="submit" class="primary">Save {{ label }}</button></div>
{% else %}<p>You will sign in at <b>{{ provider_host }}</b> and allow the gateway to use
your {{ label }} for you.</p>
<div class="actions"><button type="submit" class="primary">Connect {{ label }}</button></div>
{% endif %}</form>
<p><a href="{{ next }}">Back</a></p>{% endblock %}""",
            "message": """{% extends "base" %}{% block content %}
{% if next %}<p><a href="{{ next }}">Continue</a></p>{% endif %}{% endblock %}""",
        }
    ),
)


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    name: str
    title: str
    connected_since: str | None
    """A date (UTC) the user connected, or None."""
    available: bool = True
    """False while the operator has not set it up (a secret unset, no encryption key)."""


def _render(
    template: str,
    status: int,
    title: str,
    *,
    form_target: str | None = None,
    cookies: Sequence[Cookie] = (),
    headers: Mapping[str, str] | None = None,
    **values: object,
) -> Response[str]:
    html = _PAGES.get_template(template).render(title=title, style=STYLE, **values)
    return html_response(html, status, form_target, cookies, headers)


def signin_page(
    status: int,
    service: str,
    next_path: str,
    *,
    identity: str | None,
    identity_url: str,
    passwords: bool,
    error: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[str]:
    return _render(
        "signin",
        status,
        f"Sign in to {service}",
        next=next_path,
        identity=identity,
        identity_url=identity_url,
        passwords=passwords,
        error=error,
        headers=headers,
    )


def connections_page(
    rows: Sequence[ConnectionRow],
    signed_in: str,
    csrf: str,
    notice: str | None = None,
) -> Response[str]:
    return _render(
        "connections",
        200,
        "Your connections",
        rows=rows,
        signed_in=signed_in,
        csrf=csrf,
        notice=notice,
    )


def connect_page(
    status: int,
    name: str,
    label: str,
    next_path: str,
    signed_in: str,
    csrf: str,
    *,
    paste: bool,
    instructions: str = "",
    max_length: int = 8192,
    provider: str | None = None,
    error: str | None = None,
) -> Response[str]:
    """A paste form (``paste``) or the button that starts the provider's OAuth flow;
    ``provider`` (its origin) is where that POST's redirect may go."""
    return _render(
        "connect",
        status,
        f"Connect {label}",
        form_target=provider,
        name=name,
        label=label,
        next=next_path,
        signed_in=signed_in,
        csrf=csrf,
        paste=paste,
        instructions=instructions,
        max_length=max_length,
        provider_host=(provider or "").partition("://")[2],
        error=error,
    )


def message_page(
    status: int,
    title: str,
    error: str | None = None,
    notice: str | None = None,
    next_path: str | None = None,
    cookies: Sequence[Cookie] = (),
) -> Response[str]:
    return _render(
        "message",
        status,
        title,
        error=error,
        notice=notice,
        next=next_path,
        cookies=cookies,
    )
