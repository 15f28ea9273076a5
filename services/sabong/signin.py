"""Signing players in with a login link and out again, and the signed-in player's profile:
the cookie's side of the sessions session_store.py keeps."""

from __future__ import annotations

from typing import Any

from flask import session

from .issuance import is_token_shaped
from .session_store import SessionStore
from .store import SabongStore
from .user_store import UserStore

# The one value the signed cookie holds: the session id (see session_store.py).
SESSION_ID = "sid"


def login_link_is_live(store: SabongStore, token: str) -> bool:
    """Whether the link could still sign someone in; consumes nothing."""
    # The shape is checked first so garbage never costs a Redis call.
    return is_token_shaped(token) and store.token_exists(token)


def sign_in_with_token(store: SabongStore, sessions: SessionStore, token: str, now: float) -> bool:
    """Consume the token (one winner) and start a session for its user."""
    if not is_token_shaped(token):
        return False
    owner = store.consume_token(token)
    if owner is None:
        return False
    user_id, client_id = owner
    session_id = sessions.start(client_id, user_id, now)
    if SESSION_ID in session:
        sessions.end(session[SESSION_ID])  # the browser's previous session ends for good
    # A fresh session, never a merge into a previous one (no session fixation), holding
    # only the session id; who the user is lives in Redis, where logout can end it, and
    # the profile itself is always read from the database.
    session.clear()
    session.permanent = True
    session[SESSION_ID] = session_id
    return True


def sign_out(sessions: SessionStore) -> None:
    """End the current session on the server, and drop the cookie."""
    if SESSION_ID not in session:
        return  # no cookie: nothing to end, and no Set-Cookie to send
    sessions.end(session[SESSION_ID])
    session.clear()


def sign_out_everywhere(sessions: SessionStore) -> int:
    """End every session of the signed-in user (this one included); how many ended."""
    if SESSION_ID not in session:
        return 0
    found = sessions.find(session[SESSION_ID])
    ended = sessions.end_all(found[0]) if found is not None else 0
    session.clear()
    return ended


def current_profile(users: UserStore, sessions: SessionStore) -> dict[str, Any] | None:
    """The signed-in user's profile and live wallet balance, or None without a live session."""
    if SESSION_ID not in session:
        return None
    owner = sessions.find(session[SESSION_ID])
    found = users.find(owner[0]) if owner is not None else None
    if owner is None or found is None or owner[1] != found["user"]["id"]:
        # Ended, expired, or the user is gone: the cookie means nothing now, drop it.
        session.clear()
        return None
    user, wallet = found["user"], found["wallet"]
    return {
        "user": {
            "id": user["id"],
            "username": user["username"],
            "displayId": user["displayId"],
            "displayName": user["name"],
            "clientId": user["clientId"],
            "referralCode": user["referralCode"],
        },
        "wallet": {"currency": wallet["currency"], "balance": wallet["balance"]},
    }
