"""Signing users in with a login token, and reading the signed-in user's profile."""

from __future__ import annotations

from typing import Any

from flask import session

from .issuance import is_token_shaped
from .store import SabongStore
from .users import SabongUsers

SESSION_CLIENT_ID = "cid"
SESSION_USER_ID = "uid"


def login_link_is_live(store: SabongStore, token: str) -> bool:
    """Whether the link could still sign someone in; consumes nothing."""
    # The shape is checked first so garbage never costs a Redis call.
    return is_token_shaped(token) and store.token_exists(token)


def sign_in_with_token(store: SabongStore, token: str) -> bool:
    """Consume the token (one winner) and start a session for its user."""
    if not is_token_shaped(token):
        return False
    owner = store.consume_token(token)
    if owner is None:
        return False
    user_id, client_id = owner
    # A fresh session, never a merge into a previous one (no session fixation), holding
    # only who the user is; the profile itself is always read from the database.
    session.clear()
    session.permanent = True
    session[SESSION_CLIENT_ID] = client_id
    session[SESSION_USER_ID] = user_id
    return True


def sign_out() -> None:
    """End the session."""
    session.clear()


def current_profile(users: SabongUsers) -> dict[str, Any] | None:
    """The signed-in user's profile and live wallet balance, or None without a valid session."""
    client_id = session.get(SESSION_CLIENT_ID)
    if not isinstance(client_id, str):
        return None
    found = users.find(client_id)
    if found is None or session.get(SESSION_USER_ID) != found["user"]["id"]:
        # The user is gone (or the id no longer matches): the session means nothing now.
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
