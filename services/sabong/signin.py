"""Signing players in with a login link and out again, and the signed-in player's profile:
the cookie's side of the sessions session_store.py keeps."""

from __future__ import annotations

from typing import Any

from flask import session

from shared.exceptions import StoreUnavailable

from .issuance import is_token_shaped
from .session_store import SessionStore
from .store import SabongStore, TakenToken
from .user_store import UserStore

# The one value the signed cookie holds: the session id (see session_store.py).
SESSION_ID = "sid"


def login_link_is_live(store: SabongStore, token: str) -> bool:
    """Whether the link could still sign someone in; consumes nothing."""
    # The shape is checked first so garbage never costs a Redis call.
    return is_token_shaped(token) and store.token_exists(token)


def sign_in_with_token(
    store: SabongStore, users: UserStore, sessions: SessionStore, token: str, now: float
) -> bool:
    """Consume the token (one winner) and start a session for its user."""
    if not is_token_shaped(token):
        return False
    taken = store.consume_token(token)
    if taken is None:
        return False
    user_id = taken.user_id if taken.user_id is not None else token_user_id(store, users, taken)
    if user_id is None:
        return False
    session_id = sessions.start(taken.client_id, user_id, now)
    if SESSION_ID in session:
        sessions.end(session[SESSION_ID])  # the browser's previous session ends for good
    # A fresh session, never a merge into a previous one (no session fixation), holding
    # only the session id; who the user is lives in Redis, where logout can end it, and
    # the profile itself is always read from the database.
    session.clear()
    session.permanent = True
    session[SESSION_ID] = session_id
    return True


def token_user_id(store: SabongStore, users: UserStore, taken: TakenToken) -> int | None:
    """The id of the user a consumed token names, looked up by clientId in PostgreSQL (the
    token was stored before its user, see issuance.py); None if there is none (its
    issuance failed and could not take the token back)."""
    try:
        return users.user_id(taken.client_id)
    except StoreUnavailable:
        # The database's outage, not the player's doing: the link must keep working.
        store.restore_token(taken)
        raise


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
