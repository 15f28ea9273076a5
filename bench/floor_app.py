"""The floor under the services' CPU per request: a bare app of the services' own Flask
class (`ServiceFlask`, without their hooks), served like them.

Served by the services' own gunicorn command line (worker class and all), each route
makes the store calls of a partner endpoint through the services' own store code and
nothing else: no signature, validation, envelope or observability. An endpoint's CPU per
request minus its floor row's is what the service itself adds; the floor row over the
reference app is what the worker model and the store round trips alone cost.
"""

from __future__ import annotations

import itertools
import os

from services.sabong.wallet_store import WalletStore
from shared.db import Database
from shared.redis import command, connect
from shared.web import ServiceFlask

from .fixtures import wallet_client_id

app = ServiceFlask(__name__)
# Created in each worker (gunicorn loads the app after the fork); both connect lazily.
_redis = connect(os.environ["REDIS_URL"])
_wallets = WalletStore(Database(os.environ["DATABASE_URL"]))
_keys = itertools.count()
# Replay-guard-sized keys, each written once; they expire on their own.
GUARD_TTL_SECONDS = 60


def _redis_round_trip() -> None:
    """One SET NX EX on the services' lean Redis path (as the wallet replay guard)."""
    key = f"bench:floor:{os.getpid()}:{next(_keys)}"
    command(_redis, "SET", key, "1", "NX", "EX", GUARD_TTL_SECONDS)


def _postgres_round_trip() -> None:
    """One wallet balance read, as get-balance's store call makes it."""
    _wallets.balance(wallet_client_id(0))


@app.get("/")
def bare() -> dict[str, bool]:
    return {"ok": True}


@app.get("/redis")
def redis_only() -> dict[str, bool]:
    _redis_round_trip()
    return {"ok": True}


@app.get("/redis+postgres")
def redis_and_postgres() -> dict[str, bool]:
    _redis_round_trip()
    _postgres_round_trip()
    return {"ok": True}
