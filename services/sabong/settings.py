"""The Sabong service's settings: one typed schema (see shared.settings)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Integer, items, setting, text

GENERATED = "generated in development"


@dataclass(frozen=True)
class SabongSettings:
    """Everything the Sabong app reads, besides shared.settings.CommonSettings."""

    client_secrets: tuple[str, ...] = setting(
        "SABONG_CLIENT_SECRETS",
        items,
        (),
        "Comma-separated accepted Sabong client secrets (several during a rotation)",
        shown=GENERATED,
    )
    session_secret: str = setting(
        "SABONG_SESSION_SECRET",
        text,
        "",
        "Key signing the Sabong session cookie (which holds only the session id; the session "
        "itself is a record in Redis)",
        shown=GENERATED,
    )
    login_base_url: str = setting(
        "SABONG_LOGIN_BASE_URL",
        text,
        "http://127.0.0.1:8080",
        "Base of the `loginLink` in `generate-auth-token` answers; its origin is the only one "
        "allowed to `POST /login/<token>`, `/logout`, `/logout/all` (set it to the public URL "
        "players see)",
        shown="`http://127.0.0.1:8080` (`make run`: its gateway URL)",
    )
    app_url: str = setting("SABONG_APP_URL", text, "/me", "Where a used login link redirects (303)")
    session_seconds: int = setting(
        "SABONG_SESSION_SECONDS",
        Integer(minimum=1),
        12 * 3600,
        "Lifetime of a signed-in session (cookie and its Redis record), counted from sign-in",
    )
    max_body_bytes: int = setting(
        "SABONG_MAX_BODY_BYTES",
        Integer(minimum=1),
        64 * 1024,
        "Larger bodies get 413 from the service itself",
    )
