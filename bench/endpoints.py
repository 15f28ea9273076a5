"""The measured endpoints and the request files wrk sends to each of them."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import fixtures
from .platform import Platform
from .wrk import render_request, write_requests

DIRECT = "direct"
GATEWAY = "gateway"
# Single-use requests are sized for this many times the rate they are expected to meet.
SIZING_MARGIN = 1.5
MIN_SINGLE_USE = 500


@dataclass(frozen=True)
class Endpoint:
    """One row group of the table: an endpoint, its service, and how to build its requests."""

    name: str
    service: str  # the component that serves it directly: ussd or sabong (gateway: itself)
    method: str
    path: str
    # static: one request sent over and over; signed: pre-signed, each sent once;
    # login_link: one live login token per request, each consumed once; wallet:
    # pre-signed wallet calls, each sent once (credits/debits with a unique reference).
    kind: str = "static"
    healthz_of: str | None = None  # the /healthz row its direct ratio is measured against
    through_gateway: bool = True
    direct: bool = True  # measured directly too (False: only through `gateway`)
    gateway: str = "gateway"  # the gateway component its gateway row goes through
    floor: str | None = None  # the floor row with its store round trips (floor_app.py)


# The bare Flask app every service's CPU per request is compared with (SPEC section 6).
REFERENCE = Endpoint("reference (flask)", "reference", "GET", "/", through_gateway=False)
# The floor under the services (bench/floor_app.py): each row makes the store round trips
# of some partner endpoints and nothing else, on the services' worker model.
FLOOR_FLASK = Endpoint("floor (flask)", "floor", "GET", "/", through_gateway=False)
FLOOR_REDIS = Endpoint("floor +redis", "floor", "GET", "/redis", through_gateway=False)
FLOOR_REDIS_POSTGRES = Endpoint(
    "floor +redis+pg", "floor", "GET", "/redis+postgres", through_gateway=False
)
HEALTHZ_USSD = Endpoint("healthz (ussd)", "ussd", "GET", "/healthz", through_gateway=False)
HEALTHZ_SABONG = Endpoint("healthz (sabong)", "sabong", "GET", "/healthz", through_gateway=False)
# The gateway answers /healthz itself: its own ceiling, with no service behind it.
HEALTHZ_GATEWAY = Endpoint("healthz (gateway)", "gateway", "GET", "/healthz", through_gateway=False)
GENERATE_AUTH_TOKEN = Endpoint(
    "generate-auth-token",
    "sabong",
    "POST",
    fixtures.TOKEN_PATH,
    "signed",
    HEALTHZ_SABONG.name,
    floor=FLOOR_REDIS_POSTGRES.name,  # a lower bound: it makes three PostgreSQL round trips
)
GENERATE_SERVICE_ID = Endpoint(
    "generate-service-id",
    "ussd",
    "POST",
    "/api/clients/generate-service-id",
    healthz_of=HEALTHZ_USSD.name,
    floor=FLOOR_REDIS.name,
)
CLIENTS_ME = Endpoint(
    "clients/me",
    "ussd",
    "GET",
    "/api/clients/me",
    healthz_of=HEALTHZ_USSD.name,
    floor=FLOOR_REDIS.name,
)
# /api/clients/me through a gateway with rate limiting on, per Redis client of
# gateway/ratelimit.py (bench/platform.py RATE_LIMITED_GATEWAYS): `srv us` against the
# clients/me gateway row (rate limiting off) is what the check costs.
CLIENTS_ME_RATE_LIMITED_FAST = Endpoint(
    "clients/me rl fast",
    "ussd",
    "GET",
    CLIENTS_ME.path,
    direct=False,
    gateway="gateway-limited-fastredis",
)
CLIENTS_ME_RATE_LIMITED_ASYNCIO = Endpoint(
    "clients/me rl aio",
    "ussd",
    "GET",
    CLIENTS_ME.path,
    direct=False,
    gateway="gateway-limited-asyncio",
)
LOGIN = Endpoint("login", "ussd", "POST", "/api/auth/login", healthz_of=HEALTHZ_USSD.name)
LOGIN_LINK = Endpoint(
    "login-link POST", "sabong", "POST", "/login/<token>", "login_link", HEALTHZ_SABONG.name
)
GET_BALANCE = Endpoint(
    "get-balance",
    "sabong",
    "GET",
    fixtures.BALANCE_PATH,
    "wallet",
    HEALTHZ_SABONG.name,
    floor=FLOOR_REDIS_POSTGRES.name,
)
CREDIT = Endpoint(
    "credit-balance",
    "sabong",
    "POST",
    fixtures.CREDIT_PATH,
    "wallet",
    HEALTHZ_SABONG.name,
    floor=FLOOR_REDIS_POSTGRES.name,
)
DEBIT = Endpoint(
    "debit-balance",
    "sabong",
    "POST",
    fixtures.DEBIT_PATH,
    "wallet",
    HEALTHZ_SABONG.name,
    floor=FLOOR_REDIS_POSTGRES.name,
)

FLOORS = (FLOOR_FLASK, FLOOR_REDIS, FLOOR_REDIS_POSTGRES)
ALL = (
    REFERENCE,
    *FLOORS,
    HEALTHZ_USSD,
    HEALTHZ_SABONG,
    HEALTHZ_GATEWAY,
    GENERATE_AUTH_TOKEN,
    GENERATE_SERVICE_ID,
    CLIENTS_ME,
    CLIENTS_ME_RATE_LIMITED_FAST,
    CLIENTS_ME_RATE_LIMITED_ASYNCIO,
    LOGIN,
    LOGIN_LINK,
    GET_BALANCE,
    CREDIT,
    DEBIT,
)
WALLET_ENDPOINTS = (GET_BALANCE, CREDIT, DEBIT)
BY_NAME = {endpoint.name: endpoint for endpoint in ALL}


def single_use_count(seconds: float, expected_rate: float) -> int:
    """How many single-use requests a run of `seconds` at up to `expected_rate` needs."""
    return max(MIN_SINGLE_USE, math.ceil(seconds * expected_rate * SIZING_MARGIN))


@dataclass
class RequestFactory:
    """Builds the request file of a run: static, freshly signed, or fresh login tokens."""

    workdir: Path
    k2: fixtures.K2Credentials
    sabong_secret: str
    issue_tokens: Callable[[int], list[str]]
    _serial: int = 0

    def build(self, endpoint: Endpoint, host: str, count: int) -> tuple[Path, int, float]:
        """Write the requests of one run; (file, how many, seconds it took to make them)."""
        started = time.monotonic()
        self._serial += 1
        path = self.workdir / f"requests-{self._serial:03d}.bin"
        if endpoint.kind == "signed":
            written = write_requests(path, self._signed(host, count))
        elif endpoint.kind == "wallet":
            written = write_requests(path, self._wallet(endpoint, host, count))
        elif endpoint.kind == "login_link":
            written = write_requests(path, self._login_links(host, count))
        else:
            written = write_requests(path, [self.static(endpoint, host)])
        return path, written, time.monotonic() - started

    def static(self, endpoint: Endpoint, host: str) -> bytes:
        """The one request of an endpoint whose requests may repeat."""
        if endpoint is GENERATE_SERVICE_ID:
            headers = {"Authorization": f"Bearer {self.k2.login_jwt}"}
            return render_request("POST", endpoint.path, host, headers)
        if endpoint.path == CLIENTS_ME.path:
            headers = {"Authorization": f"Bearer {self.k2.service_id}"}
            return render_request("GET", endpoint.path, host, headers)
        if endpoint is LOGIN:
            credentials = {"username": self.k2.username, "password": self.k2.password}
            body = json.dumps(credentials).encode("utf-8")
            headers = {"Content-Type": "application/json"}
            return render_request("POST", endpoint.path, host, headers, body)
        return render_request(endpoint.method, endpoint.path, host)

    def _signed(self, host: str, count: int) -> list[bytes]:
        # Signed now: the five-minute window leaves ample time for the run that follows.
        timestamp = int(time.time())
        tag = secrets.token_hex(3)
        return [
            render_request(
                "POST",
                fixtures.TOKEN_PATH,
                host,
                fixtures.signed_token_headers(self.sabong_secret, body, timestamp),
                body,
            )
            for body in fixtures.signed_token_bodies(count, tag)
        ]

    def _wallet(self, endpoint: Endpoint, host: str, count: int) -> list[bytes]:
        requests = fixtures.signed_wallet_requests(
            self.sabong_secret, endpoint.path, count, secrets.token_hex(3), int(time.time())
        )
        return [
            render_request(endpoint.method, target, host, headers, body)
            for target, headers, body in requests
        ]

    def _login_links(self, host: str, count: int) -> list[bytes]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return [
            render_request("POST", f"/login/{token}", host, headers)
            for token in self.issue_tokens(count)
        ]


def prepare(platform: Platform, workdir: Path) -> RequestFactory:
    """The bench partner, the Sabong user pool, and a request factory for `platform`."""
    settings = platform.settings
    k2 = fixtures.create_k2_partner(settings, platform.url("ussd"))
    # The service's own issuance: the pool users exist and the scripts are cached.
    fixtures.create_pool_users(settings)
    store = fixtures.sabong_store(settings)
    fixtures.create_wallets(platform.postgres.url)
    return RequestFactory(
        workdir,
        k2,
        settings.get_list("SABONG_CLIENT_SECRETS")[0],
        lambda count: fixtures.batched_login_tokens(store.client, fixtures.CLIENT_POOL, count),
    )
