"""`python -m bench.instructions`: instructions per request under callgrind, repeatable.

The served CPU figures of `make bench` move by 15-20 % between runs on a shared 2-core
machine, more than most single levers save. This counts instructions instead: each
endpoint's WSGI app runs in a gevent-patched child process (the services' worker model)
against private Redis and PostgreSQL servers, under `valgrind --tool=callgrind`. Two
children per endpoint make the same set-up and then FEW or MANY requests; the difference
over MANY - FEW is the instructions per request, set-up and interpreter start cancelling
out. gunicorn's HTTP handling is not included (the same for every endpoint), nor anything
the kernel or the store servers do. The USSD endpoints log in through the app first
(set-up, in both children) and then send one login JWT or one Service ID over and over,
as `make bench` does.

`--cpu-time` runs the same children without valgrind and reports the CPU time (user +
system, of the child only) per request, one request at a time: the cost of a request on
a lightly loaded worker, which sleeps on every store round trip and wakes to cold caches.
Instructions miss that cost, and `make bench` (flat out: a worker always has another
request to run) hides most of it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from devtools.embedded import EmbeddedRedis
from devtools.postgres import EmbeddedPostgres
from scripts.migrate import upgrade
from shared.config import load_settings

from . import fixtures

FEW, MANY = 100, 400
WARM_UP = 20  # requests before the counted ones: pools, prepared statements, caches
CPU_RUNS = 3
COLLECTED = re.compile(r"Collected : (\d+)")
CPU_SECONDS = re.compile(r"^cpu-seconds (\S+)$", re.MULTILINE)
SECRET = "bench-instructions-secret"
# The services' settings in these runs (REDIS_URL and DATABASE_URL come from the parent).
APP_SETTINGS = {
    "APP_ENV": "development",
    "SABONG_CLIENT_SECRETS": SECRET,
    "SABONG_SESSION_SECRET": "s" * 40,
    "USSD_LOGIN_JWT_SECRET": "l" * 40,
    "USSD_SERVICE_ID_SECRET": "i" * 40,
}
Environ = dict[str, Any]
WSGIApp = Callable[..., Iterable[bytes]]
ENDPOINTS = (
    "reference",
    "floor",
    "healthz",
    "get-balance",
    "credit-balance",
    "generate-auth-token",
    "login-link",
    "generate-service-id",
    "clients/me",
)
USSD_ENDPOINTS = ("generate-service-id", "clients/me")


def per_request(few_total: int, many_total: int, few: int = FEW, many: int = MANY) -> int:
    """Instructions per request from the totals of a FEW- and a MANY-request child."""
    return round((many_total - few_total) / (many - few))


def collected(valgrind_stderr: str) -> int:
    """The instruction total callgrind reports at exit; ValueError if it reported none."""
    found = COLLECTED.search(valgrind_stderr)
    if found is None:
        raise ValueError("callgrind reported no total:\n" + valgrind_stderr[-2000:])
    return int(found.group(1))


def count(endpoint: str, requests: int, env: dict[str, str]) -> int:
    """Instructions of one child making `requests` requests to `endpoint` after set-up."""
    child_command = [sys.executable, "-m", "bench.instructions", "--child", endpoint, str(requests)]
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *child_command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{endpoint}: child failed:\n{done.stderr[-2000:]}")
    return collected(done.stderr)


def cpu_time(endpoint: str, requests: int, env: dict[str, str]) -> float:
    """CPU seconds of a child's `requests` requests to `endpoint`, after set-up and warm-up."""
    child_command = [sys.executable, "-m", "bench.instructions", "--child", endpoint, str(requests)]
    done = subprocess.run(child_command, capture_output=True, text=True, env=env, check=False)
    found = CPU_SECONDS.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{endpoint}: child failed:\n{done.stderr[-2000:]}")
    return float(found.group(1))


def child(endpoint: str, requests: int) -> None:
    """In the child: gevent-patch, build the app and its requests, warm up, then call."""
    from gevent import monkey

    monkey.patch_all()
    app, environs = wsgi_requests(endpoint, WARM_UP + MANY)
    for environ in environs[:WARM_UP]:
        expect_success(endpoint, call(app, environ))
    started = time.process_time()
    for environ in environs[WARM_UP : WARM_UP + requests]:
        expect_success(endpoint, call(app, environ))
    print(f"cpu-seconds {time.process_time() - started:.6f}")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: the same for every child, and slow under valgrind


def expect_success(endpoint: str, answer: tuple[str, bytes]) -> None:
    status, body = answer
    if not status.startswith(("200", "201", "303")):
        raise SystemExit(f"{endpoint}: {status} {body[:200]!r}")


def environ(path: str, method: str = "GET", **kwargs: Any) -> Environ:
    """The WSGI environ of one request."""
    from werkzeug.test import EnvironBuilder

    return EnvironBuilder(path=path, method=method, **kwargs).get_environ()


def call(app: WSGIApp, request: Environ) -> tuple[str, bytes]:
    """One WSGI call: its status line and body."""
    status: list[str] = []
    body = b"".join(app(request, lambda line, headers, info=None: status.append(line)))
    return status[0], body


def wsgi_requests(endpoint: str, total: int) -> tuple[WSGIApp, list[Environ]]:
    """The WSGI app that serves `endpoint` and `total` distinct requests for it."""
    if endpoint == "reference":
        from .reference_app import app as reference

        return reference, [environ("/") for _ in range(total)]
    if endpoint == "floor":
        from .floor_app import app as floor

        return floor, [environ("/redis+postgres") for _ in range(total)]
    if endpoint in USSD_ENDPOINTS:
        from services.ussd import create_app as create_ussd_app

        ussd = create_ussd_app(APP_SETTINGS)
        return ussd, ussd_requests(ussd, endpoint, total)
    from services.sabong import create_app

    app = create_app(APP_SETTINGS)
    return app, sabong_requests(app, endpoint, total)


def ussd_requests(app: WSGIApp, endpoint: str, total: int) -> list[Environ]:
    """`total` copies of one K2 request, with a login JWT (or a Service ID) that `app`
    issued to the bench's account as set-up."""
    credentials = {"username": fixtures.K2_USERNAME, "password": fixtures.K2_PASSWORD}
    login = environ("/api/auth/login", "POST", json=credentials)
    bearer = json_data(app, login)["token"]
    mint = partial(
        environ, "/api/clients/generate-service-id", "POST", json={}, headers=authorised(bearer)
    )
    if endpoint == "generate-service-id":
        return [mint() for _ in range(total)]  # each its own body stream
    service_id = json_data(app, mint())["SERVICE_ID"]
    return [environ("/api/clients/me", headers=authorised(service_id)) for _ in range(total)]


def authorised(bearer: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer}"}


def json_data(app: WSGIApp, request: Environ) -> dict[str, Any]:
    """The `data` of a JSON answer to a set-up request (which must succeed)."""
    answer = call(app, request)
    expect_success("set-up", answer)
    data: dict[str, Any] = json.loads(answer[1])["data"]
    return data


def sabong_requests(app: WSGIApp, endpoint: str, total: int) -> list[Environ]:
    """`total` distinct requests for a Sabong endpoint, signed as partners sign them (login
    links: each with a token `app` issued, as set-up)."""
    stamp, tag = int(time.time()), str(os.getpid())
    if endpoint == "healthz":
        return [environ("/healthz") for _ in range(total)]
    if endpoint in ("get-balance", "credit-balance"):
        path = fixtures.BALANCE_PATH if endpoint == "get-balance" else fixtures.CREDIT_PATH
        signed = fixtures.signed_wallet_requests(SECRET, path, total, tag, stamp)
        return [
            environ(target.partition("?")[0], "POST" if body else "GET",
                    query_string=target.partition("?")[2], headers=headers, data=body or None)
            for target, headers, body in signed
        ]  # fmt: skip
    issue = [
        environ(fixtures.TOKEN_PATH, "POST", data=body,
                headers=fixtures.signed_token_headers(SECRET, body, stamp))
        for body in fixtures.signed_token_bodies(total, tag)
    ]  # fmt: skip
    if endpoint == "generate-auth-token":
        return issue
    return [environ(f"/login/{login_token(app, request)}", "POST") for request in issue]


def login_token(app: WSGIApp, issue: Environ) -> str:
    """A fresh login token, issued through the app itself (set-up: in both children)."""
    token: str = json_data(app, issue)["token"]
    return token


def instructions_per_request(endpoint: str, env: dict[str, str]) -> int:
    """Callgrind's count; the two children run side by side (counts do not depend on it)."""
    with ThreadPoolExecutor(max_workers=2) as side_by_side:
        few, many = side_by_side.map(partial(count, endpoint, env=env), (FEW, MANY))
    return per_request(few, many)


def cpu_per_request(endpoint: str, env: dict[str, str]) -> str:
    """The median and range of three children's CPU time per request, one at a time (the
    children run one after another: side by side they would share caches and cores)."""
    runs = sorted(cpu_time(endpoint, MANY, env) / MANY * 1e6 for _ in range(CPU_RUNS))
    return f"{runs[len(runs) // 2]:8.0f} us CPU/request (runs {runs[0]:.0f}-{runs[-1]:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoints", nargs="*", help=f"any of {', '.join(ENDPOINTS)} (all)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="CPU time per request, one at a time, without valgrind (3 runs each)",
    )
    parser.add_argument(
        "--child", nargs=2, metavar=("ENDPOINT", "REQUESTS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    unknown = sorted(set(args.endpoints) - set(ENDPOINTS))
    if unknown:
        parser.error(f"unknown endpoints {unknown}; choose from {', '.join(ENDPOINTS)}")
    if not args.cpu_time and shutil.which("valgrind") is None:
        raise SystemExit("bench.instructions needs valgrind (Debian package `valgrind`)")
    directory = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    directory.chmod(0o711)
    try:
        with (
            EmbeddedRedis(directory / "redis") as redis,
            EmbeddedPostgres(directory / "pg", durable=False) as postgres,
        ):
            stores = {"REDIS_URL": redis.url, "DATABASE_URL": postgres.url}
            os.environ["DOTENV_PATH"] = str(directory / "unused.env")
            upgrade(postgres.url)
            fixtures.create_wallets(postgres.url)
            # Every child's generate-auth-token requests then update existing users (as
            # in `make bench`), whichever child runs first.
            settings = load_settings({**APP_SETTINGS, **stores})
            fixtures.create_pool_users(settings, WARM_UP + MANY)
            fixtures.create_k2_account(settings)
            # A fixed hash seed: dict and set layouts, and so their costs, repeat.
            env = {**os.environ, **stores, "PYTHONHASHSEED": "0"}
            for endpoint in args.endpoints or ENDPOINTS:
                if args.cpu_time:
                    print(f"{endpoint:<20} {cpu_per_request(endpoint, env)}", flush=True)
                else:
                    each = instructions_per_request(endpoint, env) / 1000
                    print(f"{endpoint:<20} {each:8.0f}k instructions/request", flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
