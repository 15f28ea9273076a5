"""What the measured requests need: a K2 account and its tokens, Sabong users, signed
requests and live login tokens, all made before the clock starts."""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import redis as redis_py

from services.sabong.issuance import issue, new_login_token, unusable_password_hash
from services.sabong.runtime import REPLAY_TTL_SECONDS
from services.sabong.store import SabongStore
from services.sabong.user_store import Issuance, UserStore
from services.ussd import accounts
from services.ussd.runtime import build_runtime
from shared.config import Settings
from shared.db import database_from_settings
from shared.redis import connect
from shared.signing import sign

from .recorder import CommandRecorder, replay

TOKEN_PATH = "/api/v1/generate-auth-token"
BALANCE_PATH = "/api/v1/get-balance"
CREDIT_PATH = "/api/v1/credit-balance"
DEBIT_PATH = "/api/v1/debit-balance"
# Wallets the wallet rows spread over (a partner's many players), each funded so that no
# debit of the run is refused; every credit and debit moves 0.01.
WALLET_POOL = 2000
WALLET_FUNDS = "1000000.00"
K2_USERNAME = "bench-partner"
K2_PASSWORD = "bench-password-" + "x" * 8
# A pool of existing Sabong users: most signed requests update one of them (the common
# partner call); every NEW_USER_EVERY-th request names a clientId never seen (a sign-up).
CLIENT_POOL = 2000
NEW_USER_EVERY = 20
TOKEN_MINUTES = 5
# Store calls overlap their Redis round trips on a few threads (the GIL is released there).
ISSUE_THREADS = 4
# Probes talk to this machine only: an http_proxy in the environment must not intercept them.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class K2Credentials:
    """The K2 bench partner: its login JWT and one Service ID."""

    username: str
    password: str
    login_jwt: str
    service_id: str


def post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """POST JSON, return the decoded answer (raises on an HTTP error)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with _LOCAL.open(request, timeout=30) as response:
        return json.loads(response.read())


def create_k2_account(settings: Settings) -> None:
    """The bench's K2 account, created as the admin CLI does."""
    accounts.create_client(build_runtime(settings), K2_USERNAME, K2_PASSWORD)


def create_k2_partner(settings: Settings, ussd_url: str) -> K2Credentials:
    """Create the K2 account (as the admin CLI does), log in, mint one Service ID."""
    create_k2_account(settings)
    login = post_json(
        f"{ussd_url}/api/auth/login", {"username": K2_USERNAME, "password": K2_PASSWORD}
    )
    jwt = login["data"]["token"]
    minted = post_json(
        f"{ussd_url}/api/clients/generate-service-id", {}, {"Authorization": f"Bearer {jwt}"}
    )
    return K2Credentials(K2_USERNAME, K2_PASSWORD, jwt, minted["data"]["SERVICE_ID"])


def pool_client_id(index: int, pool: int = CLIENT_POOL) -> str:
    return f"BENCH-{index % pool:05d}"


def sabong_store(settings: Settings) -> SabongStore:
    """The Sabong store the service itself uses, on the bench Redis."""
    return SabongStore(connect(settings.redis_url or ""), REPLAY_TTL_SECONDS)


def create_pool_users(settings: Settings, pool: int = CLIENT_POOL) -> None:
    """The pool's users, by the service's own issuance (PostgreSQL and Redis)."""
    store = sabong_store(settings)
    database = database_from_settings(settings)
    users = UserStore(database)
    stamp = int(time.time() * 1000)
    batch = secrets.token_hex(6)

    def create(index: int) -> None:
        item = Issuance(
            client_id=pool_client_id(index, pool),
            username=f"bench{index}",
            display_name="Bench User",
            ip_address="10.1.2.3",
            expires_in=TOKEN_MINUTES * 60,
            issued_at=datetime.fromtimestamp(stamp / 1000, UTC),
            password_hash=unusable_password_hash(),
        )
        # A unique stand-in for the request signature (the replay guard's key).
        issue(users, store, item, new_login_token(), f"{batch}{index:058x}")

    try:
        with ThreadPoolExecutor(ISSUE_THREADS) as executor:
            list(executor.map(create, range(pool)))  # a failed creation raises here
    finally:
        database.close()
        store.client.close()


def issue_login_tokens(
    store: SabongStore, pool: int, count: int, minutes: int = TOKEN_MINUTES
) -> list[str]:
    """`count` live login tokens for the first `pool` pool users, by the store's own calls
    (each names its user by clientId, as the service's issuance leaves it)."""
    batch = secrets.token_hex(6)

    def issue_one(index: int) -> str:
        token = new_login_token()
        client_id = pool_client_id(index, pool)
        signature = f"{batch}{index:058x}"  # a unique stand-in for a request signature
        store.store_token(token, minutes * 60, client_id, signature)
        return token

    def issue_slice(start: int) -> list[str]:
        return [issue_one(index) for index in range(start, count, ISSUE_THREADS)]

    tokens: list[str] = []
    with ThreadPoolExecutor(ISSUE_THREADS) as executor:
        for part in executor.map(issue_slice, range(ISSUE_THREADS)):
            tokens += part
    return tokens


def batched_login_tokens(client: redis_py.Redis, pool: int, count: int) -> list[str]:
    """Like issue_login_tokens, sent in pipelines."""
    recorder = CommandRecorder(reply=1)  # a fresh signature: the token is stored
    store = SabongStore(cast(redis_py.Redis, recorder), REPLAY_TTL_SECONDS)
    tokens = issue_login_tokens(store, pool, count)
    replay(client, recorder)
    return tokens


def signed_token_bodies(count: int, tag: str) -> Iterator[bytes]:
    """Distinct generate-auth-token bodies (a distinct username makes each unique)."""
    for index in range(count):
        if index % NEW_USER_EVERY == NEW_USER_EVERY - 1:
            client_id = f"BENCH-{tag}-N{index}"
        else:
            client_id = pool_client_id(index)
        body = {
            "clientId": client_id,
            "username": f"u{tag}{index}",
            "displayName": "Bench User",
            "ipAddress": "10.1.2.3",
            "expiration": TOKEN_MINUTES,
        }
        yield json.dumps(body, separators=(",", ":")).encode("utf-8")


def signed_token_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers of one signed generate-auth-token request."""
    return {
        "Content-Type": "application/json",
        "x-timestamp": str(timestamp),
        "x-signature": sign(secret, "POST", TOKEN_PATH, timestamp, body),
    }


# Bench set-up only (the service's SQL lives in services/sabong/wallet_store.py): players with
# funded wallets, written in one statement, their opening balance recorded as a credit so
# that `python -m services.sabong reconcile` holds after a bench.
SEED_WALLETS_SQL = """
WITH users AS (
    INSERT INTO sabong_users (client_id, username, name, display_id, referral_code,
                              password, created_at, updated_at)
    SELECT 'BENCH-W-' || lpad(n::text, 5, '0'), 'bench' || n, 'Bench User',
           'BENCH-W-' || lpad(n::text, 5, '0'), 'REF-2026-BENCH', '!', now(), now()
    FROM generate_series(0, %(pool)s - 1) AS n
    RETURNING client_id, id
), wallets AS (
    INSERT INTO sabong_wallets (client_id, user_id, balance, created_at, updated_at)
    SELECT client_id, id, %(funds)s, now(), now() FROM users
    RETURNING client_id, id, balance
)
INSERT INTO sabong_transactions (client_id, wallet_id, type, amount, currency,
                                 balance_after, description, created_at)
SELECT client_id, id, 'credit', balance, 'USD', balance, 'bench funds', now() FROM wallets
"""


def wallet_client_id(index: int) -> str:
    return f"BENCH-W-{index % WALLET_POOL:05d}"


def create_wallets(database_url: str) -> None:
    """WALLET_POOL players with funded wallets, straight in PostgreSQL (before the clock)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SEED_WALLETS_SQL, {"pool": WALLET_POOL, "funds": WALLET_FUNDS})


def signed_wallet_requests(
    secret: str, path: str, count: int, tag: str, timestamp: int
) -> Iterator[tuple[str, dict[str, str], bytes]]:
    """(target, headers, body) of `count` distinct signed wallet requests.

    Credits and debits carry a unique `reference` (as partners send them). A get-balance
    has nothing else to vary but its clientId and timestamp, which repeat across runs
    made in the same second, so it carries an ignored `r` parameter (`tag` + index): every
    signature of every run is distinct, and none is refused as a replay.
    """
    for index in range(count):
        client_id = wallet_client_id(index)
        if path == BALANCE_PATH:
            query = f"clientId={client_id}&r={tag}{index}"  # already sorted by key
            headers = {"x-timestamp": str(timestamp),
                       "x-signature": sign(secret, "GET", path, timestamp, query)}  # fmt: skip
            yield f"{path}?{query}", headers, b""
            continue
        body = json.dumps(
            {"clientId": client_id, "amount": "0.01", "reference": f"bench-{tag}-{index}"},
            separators=(",", ":"),
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "x-timestamp": str(timestamp),
            "x-signature": sign(secret, "POST", path, timestamp, body),
        }
        yield path, headers, body


def write_commits(database_url: str) -> int:
    """PostgreSQL's transaction id counter: it advances once per committed write
    transaction (read-only ones take no id), so two readings count durable commits."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    return int(row[0]) if row else 0
