"""Real HTTP servers for tests: the services and the gateway as `python -m scripts.serve`
starts them, and a scripted local server.

Plain helpers and context managers (no fixtures) so any test module can build its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devtools.embedded import free_port
from devtools.processes import served

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SABONG_TEST_SECRET = "live-test-sabong-secret-" + "x" * 16


# -- the real services ----------------------------------------------------------------


def service_env(redis_url: str, dotenv: Path, **extra: str) -> dict[str, str]:
    """Environment for a service subprocess: explicit secrets, its own (empty) .env file."""
    dotenv.touch()
    return _base_env(
        {
            "APP_ENV": "development",
            "DOTENV_PATH": str(dotenv),
            "REDIS_URL": redis_url,
            "USSD_LOGIN_JWT_SECRET": secrets.token_urlsafe(40),
            "USSD_SERVICE_ID_SECRET": secrets.token_urlsafe(40),
            "SABONG_CLIENT_SECRETS": SABONG_TEST_SECRET,
            "SABONG_SESSION_SECRET": secrets.token_urlsafe(40),
            "SABONG_LOGIN_BASE_URL": "http://127.0.0.1:8080",
            **extra,
        }
    )


def _base_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The current environment without inherited app settings, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USSD_", "SABONG_"))}
    env.pop("REDIS_URL", None)
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.update(overrides)
    return env


@contextlib.contextmanager
def service(
    component: str, env: Mapping[str, str], log_dir: Path, workers: int = 2
) -> Iterator[str]:
    """`python -m scripts.serve <component>` (ussd or sabong) on a free port; yield its URL."""
    port = free_port()
    prefix = component.upper()
    settings = {
        "METRICS_DIR": str(log_dir / "metrics"),
        **env,
        "BIND_HOST": "127.0.0.1",
        f"{prefix}_PORT": str(port),
        f"{prefix}_WORKERS": str(workers),
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
    }
    base_url = f"http://127.0.0.1:{port}"
    with served(component, settings, log_dir / f"{component}-{port}.log", base_url):
        yield base_url


def create_k2_client(env: Mapping[str, str], username: str, password: str) -> dict[str, Any]:
    """Create a K2 partner account with the admin CLI; return the JSON it prints."""
    result = subprocess.run(
        # `--opt=value`: a generated password may start with "-", which argparse would
        # otherwise take for an option.
        [sys.executable, "-m", "services.ussd", "create-client",
         f"--username={username}", f"--password={password}"],
        cwd=PROJECT_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"create-client failed ({result.returncode}): {result.stderr[-2000:]}")
    created: dict[str, Any] = json.loads(result.stdout)
    return created


@dataclass
class Platform:
    """Both services running against one Redis, with what a partner needs to call them."""

    ussd_url: str
    sabong_url: str
    env: dict[str, str]
    sabong_secret: str = SABONG_TEST_SECRET


@contextlib.contextmanager
def live_platform(redis_url: str, tmp_path: Path, workers: int = 2) -> Iterator[Platform]:
    """Start the USSD and Sabong services (gunicorn) on free ports for one test."""
    env = service_env(redis_url, tmp_path / "test.env")
    with (
        service("ussd", env, tmp_path, workers) as ussd_url,
        service("sabong", env, tmp_path, workers) as sabong_url,
    ):
        yield Platform(ussd_url, sabong_url, env)


# -- a scripted local server (for the SDK's own unit tests) ---------------------------


@dataclass
class Recorded:
    """One request as the server received it, raw body included."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[Recorded], Reply]


@dataclass
class ScriptedServer:
    """A threaded stdlib HTTP server answering with `handler`; records every request."""

    handler: Handler
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""


@contextlib.contextmanager
def scripted_server(handler: Handler) -> Iterator[ScriptedServer]:
    """Serve `handler` on a free loopback port in a background thread."""
    state = ScriptedServer(handler)
    lock = threading.Lock()

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Recorded(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            with lock:
                state.requests.append(seen)
            status, headers, body = state.handler(seen)
            # A client that gave up (a timeout under test) is not this server's failure.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: request lines would carry tokens into the test output."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def json_reply(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON answer for a scripted handler."""
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode("utf-8"),
    )


@contextlib.contextmanager
def real_gateway(env: Mapping[str, str], log_dir: Path) -> Iterator[str]:
    """The real gateway (`python -m scripts.serve gateway`) on a free port; yield its URL."""
    port = free_port()
    settings = {
        "METRICS_DIR": str(log_dir / "metrics"),
        **env,
        "BIND_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_WORKERS": "1",
    }
    base_url = f"http://127.0.0.1:{port}"
    with served("gateway", settings, log_dir / f"gateway-{port}.log", base_url):
        yield base_url
