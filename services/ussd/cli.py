"""Admin CLI for K2 client accounts (there is no sign-up endpoint by design).

Accounts live in PostgreSQL (DATABASE_URL); every change also updates the clients' Redis
cache (REDIS_URL) before it commits, so both must be reachable for a change.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import psycopg_pool

from shared.config import Settings, load_settings, with_embedded_stores
from shared.exceptions import PlatformError, StoreUnavailable

from . import accounts, legacy_import
from .runtime import Runtime, build_runtime

Command = Callable[[Runtime, argparse.Namespace], Any]


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run one admin command; prints JSON on success, `error: ...` and exit 1 otherwise."""
    args = _parser().parse_args(argv)
    ctx = None
    try:
        # Unset URLs mean the stores `make run` started (see with_embedded_stores).
        ctx = build_runtime(with_embedded_stores(settings or load_settings()))
        result = args.command(ctx, args)
    except StoreUnavailable as exc:
        print(f"error: {unreachable(exc)}", file=sys.stderr)
        return 1
    except PlatformError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        if ctx is not None:
            ctx.database.close()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def unreachable(exc: StoreUnavailable) -> str:
    """Which store could not be reached, and what became of the command."""
    if isinstance(exc.__cause__, psycopg.Error | psycopg_pool.PoolTimeout):
        # A commit cut short may or may not have landed; every command is safe to repeat.
        return (
            "PostgreSQL at DATABASE_URL is unreachable; is `make run` up? "
            "Run the command again once it is back."
        )
    # An admin change writes the Redis cache before it commits (client_cache.py): without
    # Redis it rolls back rather than leave a stale cache serving the old account.
    return "Redis at REDIS_URL is unreachable; is `make run` up? Nothing was changed."


def _create(ctx: Runtime, args: argparse.Namespace) -> Any:
    return accounts.create_client(
        ctx, args.username, _password(args), args.email, args.msisdn, args.role
    )


def _disable(ctx: Runtime, args: argparse.Namespace) -> Any:
    return accounts.set_active(ctx, args.username, active=False)


def _enable(ctx: Runtime, args: argparse.Namespace) -> Any:
    return accounts.set_active(ctx, args.username, active=True)


def _reset(ctx: Runtime, args: argparse.Namespace) -> Any:
    return accounts.reset_password(ctx, args.username, _password(args))


def _list(ctx: Runtime, args: argparse.Namespace) -> Any:
    return accounts.list_clients(ctx)


def _import(ctx: Runtime, args: argparse.Namespace) -> Any:
    return legacy_import.import_from_redis(
        ctx.store.redis, ctx.database, delete_legacy=args.delete_legacy
    )


def _password(args: argparse.Namespace) -> str:
    """--password, or a prompt (keeps the password out of shell history and `ps`)."""
    return args.password if args.password is not None else getpass.getpass("Password: ")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.ussd",
        description="Manage K2 USSD client accounts (kept in PostgreSQL). Needs DATABASE_URL"
        " and REDIS_URL (environment or .env).",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    create = _command(commands, "create-client", _create, "create an active client")
    create.add_argument("--password", help="omit to be prompted")
    create.add_argument("--email", default="")
    create.add_argument("--msisdn", default=None)
    create.add_argument("--role", default=accounts.DEFAULT_ROLE)
    _command(commands, "disable-client", _disable, "disable; its tokens stop working at once")
    _command(commands, "enable-client", _enable, "enable again (old tokens stay dead)")
    reset = _command(commands, "reset-password", _reset, "set a new password")
    reset.add_argument("--password", help="omit to be prompted")
    commands.add_parser("list-clients", help="every client as JSON").set_defaults(command=_list)
    legacy = commands.add_parser(
        "import-from-redis",
        help="one-off: copy the accounts and live API keys the previous version kept in Redis"
        " into PostgreSQL (safe to repeat; only reads Redis without --delete-legacy)",
    )
    legacy.add_argument(
        "--delete-legacy",
        action="store_true",
        help="then delete the old Redis records (they hold password hashes) of the clients"
        " now in PostgreSQL",
    )
    legacy.set_defaults(command=_import)
    return parser


def _command(commands: Any, name: str, handler: Command, help_text: str) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    sub.add_argument("--username", required=True)
    sub.set_defaults(command=handler)
    return sub
