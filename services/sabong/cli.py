"""Operator commands: show-user, list-users, audit, end-sessions, wallet show, wallet
transactions, reconcile, import-from-redis.

JSON on stdout, problems on stderr. Users, wallets and the audit are read from PostgreSQL
(DATABASE_URL); sessions live in Redis (REDIS_URL), and `import-from-redis` reads the
previous version's Redis. Both come from the environment, else from `.env` (DOTENV_PATH
if set), else they are the servers `make run` starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.config import Settings, read_settings, with_embedded_stores
from shared.db import Database
from shared.exceptions import ConfigError, StoreUnavailable
from shared.redis import connect

from .exceptions import ReconcileFailed
from .legacy_import import import_from_redis
from .session_store import SessionStore
from .user_store import UserStore
from .wallet_store import WalletStore


@dataclass(frozen=True)
class Command:
    """What a command runs, and which stores it needs besides the database."""

    run: Callable[[Settings, Database, argparse.Namespace], Any]
    needs_redis: bool = False


def show_user(settings: Settings, database: Database, args: argparse.Namespace) -> Any:
    found = UserStore(database).find(args.client_id)
    if found is None:
        raise LookupError(f"no user with clientId {args.client_id!r}")
    return found


def list_users(settings: Settings, database: Database, args: argparse.Namespace) -> Any:
    return UserStore(database).list_all()


def audit(settings: Settings, database: Database, args: argparse.Namespace) -> Any:
    return UserStore(database).audit(args.client_id, args.limit)


def wallet_show(settings: Settings, database: Database, args: argparse.Namespace) -> Any:
    found = WalletStore(database).wallets(args.client_id)
    if not found:
        raise LookupError(f"no wallet with clientId {args.client_id!r}")
    return found[0]


def wallet_transactions(settings: Settings, database: Database, args: argparse.Namespace) -> Any:
    ledger = WalletStore(database)
    if not ledger.wallets(args.client_id):
        raise LookupError(f"no wallet with clientId {args.client_id!r}")
    return ledger.transactions(args.client_id, args.limit)


def reconcile(settings: Settings, database: Database, args: argparse.Namespace) -> Any:
    """Every wallet checked; ReconcileFailed naming each one that does not add up."""
    ledger = WalletStore(database)
    problems = ledger.reconcile()
    if problems:
        raise ReconcileFailed(problems)
    return {"wallets": len(ledger.wallets()), "problems": {}}


def import_legacy(settings: Settings, database: Database, args: argparse.Namespace) -> Any:
    # Inside the caller's try: a cluster client contacts Redis as soon as it is created.
    client = connect(settings.redis_url or "")
    try:
        return import_from_redis(client, database)
    finally:
        client.close()


def end_sessions(settings: Settings, database: Database, args: argparse.Namespace) -> Any:
    """End every session of a user (e.g. a stolen phone): their cookies stop working now."""
    client = connect(settings.redis_url or "")
    try:
        # The lifetime only matters to start(), which this never calls.
        ended = SessionStore(client, lifetime_seconds=1).end_all(args.client_id)
    finally:
        client.close()
    return {"clientId": args.client_id, "sessionsEnded": ended}


def add_wallet_commands(commands: Any) -> None:
    """`wallet show`, `wallet transactions` and `reconcile` (PostgreSQL)."""
    wallet = commands.add_parser("wallet", help="a wallet and its transactions")
    wallet_commands = wallet.add_subparsers(dest="wallet_command", required=True)
    show = wallet_commands.add_parser("show", help="a wallet: balance, last change")
    show.add_argument("client_id", metavar="CLIENT_ID")
    show.set_defaults(command_spec=Command(wallet_show))
    history = wallet_commands.add_parser("transactions", help="a wallet's latest transactions")
    history.add_argument("client_id", metavar="CLIENT_ID")
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    history.set_defaults(command_spec=Command(wallet_transactions))
    check = commands.add_parser(
        "reconcile",
        help="check every wallet: balance == credits - debits and balanceAfter chains;"
        " exit 1 naming each wallet that does not",
    )
    check.set_defaults(command_spec=Command(reconcile))


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="python -m services.sabong", description=__doc__)
    commands = main_parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show-user", help="a user and their wallet")
    show.add_argument("client_id", metavar="CLIENT_ID")
    show.set_defaults(command_spec=Command(show_user))
    every = commands.add_parser("list-users", help="every user, by id")
    every.set_defaults(command_spec=Command(list_users))
    recent = commands.add_parser("audit", help="recent token issuances of a client")
    recent.add_argument("client_id", metavar="CLIENT_ID")
    recent.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    recent.set_defaults(command_spec=Command(audit))
    legacy = commands.add_parser(
        "import-from-redis",
        help="one-off: copy users, wallets and audit entries the previous version kept in "
        "Redis (REDIS_URL) into PostgreSQL; safe to run again",
    )
    legacy.set_defaults(command_spec=Command(import_legacy, needs_redis=True))
    add_wallet_commands(commands)
    logout = commands.add_parser("end-sessions", help="end every session of a user")
    logout.add_argument("client_id", metavar="CLIENT_ID")
    logout.set_defaults(command_spec=Command(end_sessions, needs_redis=True))
    return main_parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; 0 on success, 1 when not found or a store is down, 2 on setup errors."""
    args = parser().parse_args(argv)
    spec: Command = args.command_spec
    # Unset URLs mean the stores `make run` started (see with_embedded_stores).
    settings = with_embedded_stores(read_settings(os.environ if environ is None else environ))
    try:
        database = Database(settings.database_url or "", max_size=2)
    except ConfigError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    try:
        result = spec.run(settings, database, args)
    except LookupError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    except ReconcileFailed as exc:
        for client_id, problems in exc.problems.items():
            for problem in problems:
                print(f"wallet {client_id!r}: {problem}", file=sys.stderr)
        print(f"reconcile FAILED: {len(exc.problems)} wallet(s) do not add up", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        print(unreachable_message(exc, spec.needs_redis), file=sys.stderr)
        return 1
    finally:
        database.close()
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0


def unreachable_message(exc: StoreUnavailable, needs_redis: bool) -> str:
    """Which store could not be reached (by setting name: a URL may hold a password)."""
    if exc.message == "Database unavailable" or not needs_redis:
        return "PostgreSQL (DATABASE_URL) cannot be reached; is `make run` up?"
    return "Redis (REDIS_URL) cannot be reached; is `make run` up?"
