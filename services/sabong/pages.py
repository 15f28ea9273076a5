"""The browser pages: small, self-contained HTML (inline CSS, no external assets)."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Response, render_template_string

# The login URL carries the token, so these pages must not be cached or leak it through
# the Referer header; the CSP allows only inline styles and the one nonce-marked script.
_BASE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}

_LAYOUT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }} · Sabong</title>
<style>
  :root { color-scheme: light dark; --accent: #c2410c; }
  * { box-sizing: border-box; }
  body { margin: 0; min-height: 100vh; display: grid; place-items: center;
         font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         background: #f4f1ec; color: #1f2933; }
  main { width: min(28rem, 92vw); background: #fff; border-radius: 14px; padding: 2rem;
         box-shadow: 0 10px 30px rgba(0, 0, 0, .08); }
  h1 { font-size: 1.35rem; margin: 0 0 .75rem; }
  p { margin: .5rem 0; color: #52606d; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1rem; margin: 1rem 0; }
  dt { color: #7b8794; } dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
  .balance { font-size: 1.6rem; color: var(--accent); }
  button { font: inherit; border: 0; border-radius: 8px; padding: .6rem 1.2rem; cursor: pointer;
           background: var(--accent); color: #fff; }
  button.secondary { background: #e4e7eb; color: #1f2933; }
  @media (prefers-color-scheme: dark) {
    body { background: #111827; color: #e5e7eb; } main { background: #1f2937; }
    p, dt { color: #9ca3af; } button.secondary { background: #374151; color: #e5e7eb; }
  }
</style>
</head>
<body><main>{{ content|safe }}</main>{{ script|safe }}</body>
</html>
"""

_LOGIN = """<h1>Signing you in…</h1>
<p>One moment, please.</p>
<form id="login" method="post">
  <button type="submit">Continue to Sabong</button>
</form>"""

# An empty form action posts back to this very URL, so the page never repeats the token.
_LOGIN_SCRIPT = """<script nonce="{{ nonce }}">
document.getElementById("login").submit();
</script>"""

_EXPIRED = """<h1>This link is invalid or has expired</h1>
<p>Login links work once and only for a few minutes.</p>
<p>Please go back to the app that sent you here and open a new link.</p>"""

_NOT_SIGNED_IN = """<h1>
  {{- 'You have been signed out' if signed_out else 'You are not signed in' -}}
</h1>
<p>To sign in, open a new login link from the app that sent you here.</p>"""

_ME = """<h1>Welcome, {{ user.displayName }}</h1>
<dl>
  <dt>Username</dt><dd>{{ user.username }}</dd>
  <dt>Client ID</dt><dd>{{ user.clientId }}</dd>
  <dt>Wallet</dt><dd class="balance">{{ wallet.currency }} {{ wallet.balance }}</dd>
</dl>
<form method="post" action="logout">
  <button class="secondary" type="submit">Sign out</button>
</form>"""

_ERROR = """<h1>{{ heading }}</h1>
<p>{{ detail }}</p>"""


def html_response(content: str, title: str, status: int = 200, script: str = "") -> Response:
    """A full page around `content` (already rendered) with the safety headers."""
    nonce = secrets.token_urlsafe(16)
    rendered_script = render_template_string(script, nonce=nonce) if script else ""
    # `content` and the script were rendered with autoescaping; the layout inserts them
    # as they are (|safe) and escapes only the title.
    html = render_template_string(_LAYOUT, title=title, content=content, script=rendered_script)
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'nonce-{nonce}'; base-uri 'none'; frame-ancestors 'none'"
    )
    headers = {**_BASE_HEADERS, "Content-Security-Policy": csp}
    return Response(html, status=status, mimetype="text/html", headers=headers)


def login_page() -> Response:
    """The page behind the login link: posts itself back by script, with a button."""
    return html_response(render_template_string(_LOGIN), "Signing in", script=_LOGIN_SCRIPT)


def expired_page() -> Response:
    """410: the token is unknown, used, expired or malformed."""
    return html_response(render_template_string(_EXPIRED), "Link expired", status=410)


def not_signed_in_page(signed_out: bool) -> Response:
    """The page `/me` sends visitors without a session to."""
    content = render_template_string(_NOT_SIGNED_IN, signed_out=signed_out)
    return html_response(content, "Not signed in")


def me_page(user: dict[str, Any], wallet: dict[str, Any]) -> Response:
    """The signed-in user's profile and wallet."""
    content = render_template_string(_ME, user=user, wallet=wallet)
    return html_response(content, user["displayName"])


def error_page(status: int, heading: str, detail: str) -> Response:
    """A plain error page for the browser paths."""
    return html_response(
        render_template_string(_ERROR, heading=heading, detail=detail), heading, status
    )
