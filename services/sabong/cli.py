"""Operator commands: show-user, list-users, audit (Redis); wallet show, wallet transactions,
reconcile (PostgreSQL). JSON on stdout, problems on stderr."""

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
from shared.db import Database
from shared.exceptions import StoreUnavailable
from shared.redis import connect

from .ledger import Ledger
from .store import SabongStore

NO_REDIS_URL = (
    "REDIS_URL is not set. Set it in the environment or in .env, e.g.\n"
    "  REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python -m services.sabong list-users\n"
    "(`make run` prints the URL of the embedded Redis it starts.)"
)


NO_DATABASE_URL = (
    "DATABASE_URL is not set. Set it in the environment or in .env, e.g.\n"
    "  DATABASE_URL=postgresql://user@127.0.0.1:5432/db .venv/bin/python -m services.sabong"
    " reconcile\n(`make run` prints the URL of the embedded PostgreSQL it starts.)"
)
DATABASE_COMMANDS = frozenset({"wallet", "reconcile"})


def setting(environ: Mapping[str, str], name: str) -> str | None:
    """A setting from the environment, else from `.env` (DOTENV_PATH if set)."""
    if environ.get(name):
        return environ[name]
    path = Path(environ.get("DOTENV_PATH") or DEFAULT_DOTENV)
    if path.is_file():
        return dotenv_values(path).get(name) or None
    return None


def redis_url(environ: Mapping[str, str]) -> str | None:
    """REDIS_URL from the environment, else from `.env` (DOTENV_PATH if set)."""
    return setting(environ, "REDIS_URL")


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


def wallet_show(ledger: Ledger, args: argparse.Namespace) -> Any:
    found = ledger.wallets(args.client_id)
    if not found:
        raise LookupError(f"no wallet with clientId {args.client_id!r}")
    return found[0]


def wallet_transactions(ledger: Ledger, args: argparse.Namespace) -> Any:
    if not ledger.wallets(args.client_id):
        raise LookupError(f"no wallet with clientId {args.client_id!r}")
    return ledger.transactions(args.client_id, args.limit)


def reconcile(ledger: Ledger, args: argparse.Namespace) -> Any:
    """Every wallet checked; ReconcileFailed naming each one that does not add up."""
    problems = ledger.reconcile()
    if problems:
        raise ReconcileFailed(problems)
    return {"wallets": len(ledger.wallets()), "problems": {}}


class ReconcileFailed(Exception):
    def __init__(self, problems: dict[str, list[str]]) -> None:
        super().__init__("reconcile failed")
        self.problems = problems


def add_database_commands(commands: Any) -> None:
    """`wallet show`, `wallet transactions` and `reconcile` (PostgreSQL)."""
    wallet = commands.add_parser("wallet", help="a wallet and its transactions")
    wallet_commands = wallet.add_subparsers(dest="wallet_command", required=True)
    show = wallet_commands.add_parser("show", help="a wallet: balance, last change")
    show.add_argument("client_id", metavar="CLIENT_ID")
    show.set_defaults(run=wallet_show)
    history = wallet_commands.add_parser("transactions", help="a wallet's latest transactions")
    history.add_argument("client_id", metavar="CLIENT_ID")
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    history.set_defaults(run=wallet_transactions)
    check = commands.add_parser(
        "reconcile",
        help="check every wallet: balance == credits - debits and balanceAfter chains;"
        " exit 1 naming each wallet that does not",
    )
    check.set_defaults(run=reconcile)


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
    add_database_commands(commands)
    return main_parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; 0 on success, 1 when not found or Redis is down, 2 on setup errors."""
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    if args.command in DATABASE_COMMANDS:
        return run_database_command(args, environ)
    url = redis_url(environ)
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


def run_database_command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """A wallet command: 0 when fine, 1 when not found, inconsistent or down, 2 on setup."""
    url = setting(environ, "DATABASE_URL")
    if not url:
        print(NO_DATABASE_URL, file=sys.stderr)
        return 2
    database = Database(url, max_size=1)
    try:
        result = args.run(Ledger(database), args)
    except LookupError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    except ReconcileFailed as exc:
        for client_id, problems in exc.problems.items():
            for problem in problems:
                print(f"wallet {client_id!r}: {problem}", file=sys.stderr)
        print(f"reconcile FAILED: {len(exc.problems)} wallet(s) do not add up", file=sys.stderr)
        return 1
    except StoreUnavailable:
        print("PostgreSQL at DATABASE_URL cannot be reached.", file=sys.stderr)
        return 1
    finally:
        database.close()
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0
