"""Operator commands: show-user, list-users, audit, end-sessions. JSON on stdout, problems
on stderr."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from shared.config import DEFAULT_DOTENV
from shared.exceptions import StoreUnavailable
from shared.redis import connect

from .sessions import SessionStore
from .store import SabongStore

NO_REDIS_URL = (
    "REDIS_URL is not set. Set it in the environment or in .env, e.g.\n"
    "  REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python -m services.sabong list-users\n"
    "(`make run` prints the URL of the embedded Redis it starts.)"
)


def redis_url(environ: Mapping[str, str]) -> str | None:
    """REDIS_URL from the environment, else from `.env` (DOTENV_PATH if set)."""
    if environ.get("REDIS_URL"):
        return environ["REDIS_URL"]
    path = Path(environ.get("DOTENV_PATH") or DEFAULT_DOTENV)
    if path.is_file():
        return dotenv_values(path).get("REDIS_URL") or None
    return None


def public_user(user: Mapping[str, str]) -> dict[str, Any]:
    """A user record for display: the id as a number and no password hash."""
    shown: dict[str, Any] = {k: v for k, v in user.items() if k != "password"}
    if "id" in shown:
        shown["id"] = int(shown["id"])
    return shown


def show_user(store: SabongStore, args: argparse.Namespace) -> Any:
    found = store.profile(args.client_id)
    if found is None:
        raise LookupError(f"no user with clientId {args.client_id!r}")
    user, wallet = found
    return {"user": public_user(user), "wallet": wallet}


def list_users(store: SabongStore, args: argparse.Namespace) -> Any:
    client_ids = [client_id for _, client_id in store.list_clients()]
    return [public_user(user) for user in store.users(client_ids)]


def audit(store: SabongStore, args: argparse.Namespace) -> Any:
    return store.audit(args.client_id, args.limit)


def end_sessions(store: SabongStore, args: argparse.Namespace) -> Any:
    """End every session of a user (e.g. a stolen phone): their cookies stop working now."""
    sessions = SessionStore(store.client, lifetime_seconds=1)  # the lifetime matters to start()
    ended = sessions.end_all(args.client_id)
    return {"clientId": args.client_id, "sessionsEnded": ended}


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="python -m services.sabong", description=__doc__)
    commands = main_parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show-user", help="a user and their wallet")
    show.add_argument("client_id", metavar="CLIENT_ID")
    show.set_defaults(run=show_user)
    every = commands.add_parser("list-users", help="every user, by id")
    every.set_defaults(run=list_users)
    recent = commands.add_parser("audit", help="recent token issuances of a client")
    recent.add_argument("client_id", metavar="CLIENT_ID")
    recent.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    recent.set_defaults(run=audit)
    logout = commands.add_parser("end-sessions", help="end every session of a user")
    logout.add_argument("client_id", metavar="CLIENT_ID")
    logout.set_defaults(run=end_sessions)
    return main_parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; 0 on success, 1 when not found or Redis is down, 2 on setup errors."""
    args = parser().parse_args(argv)
    url = redis_url(os.environ if environ is None else environ)
    if not url:
        print(NO_REDIS_URL, file=sys.stderr)
        return 2
    try:
        # Inside the try: a cluster client contacts Redis as soon as it is created.
        store = SabongStore(connect(url), audit_maxlen=0, replay_ttl=0)
        result = args.run(store, args)
    except LookupError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    except StoreUnavailable:
        print(f"Redis at {url} cannot be reached.", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
