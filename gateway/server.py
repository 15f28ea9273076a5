"""How the gateway is served: `command` is the one argv that `make run`, docker-compose
and the tests use; `python -m gateway.server` runs it.

The gateway's own small HTTP/1.1 server (gateway/http.py) on uvloop, one event loop per
worker process. With several workers the parent binds the socket, forks the workers and
restarts any that dies; SIGTERM or SIGINT stops every worker gracefully (no new
connections, answers in flight finish within `GRACE_SECONDS`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time

from shared.config import Settings, load_settings
from shared.exceptions import ConfigError

from .config import GatewayConfig, configure_logging_from
from .settings import GatewaySettings

log = logging.getLogger("gateway.server")

GRACE_SECONDS = 10.0
BACKLOG = 2048
RESPAWN_PAUSE_SECONDS = 1.0


def command(host: str, port: int, workers: int) -> list[str]:
    """The exact argv that serves the gateway on host:port with `workers` processes."""
    return [
        sys.executable, "-m", "gateway.server",
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Parse the command line (defaults from the settings) and serve until stopped."""
    try:
        settings = load_settings()
        config = GatewayConfig.from_settings(settings)
        args = _parse_args(argv, settings)
    except ConfigError as exc:
        sys.exit(f"gateway: configuration error: {exc}")
    configure_logging_from(settings)
    sock = _bind(args.host, args.port)
    log.info(
        "gateway listening",
        extra={"host": args.host, "port": args.port, "workers": args.workers},
    )
    if args.workers == 1:
        run_worker(sock, config)
    else:
        supervise(sock, config, args.workers)


def run_worker(sock: socket.socket, config: GatewayConfig) -> None:
    """Serve on `sock` in this process until SIGTERM or SIGINT."""
    import uvloop

    uvloop.run(serve(sock, config))


async def serve(sock: socket.socket, config: GatewayConfig) -> None:
    """Start the gateway, accept connections, and shut down gracefully on a signal."""
    from .app import Gateway
    from .http import ClientConnection

    gateway = Gateway(config)
    await gateway.start()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ClientConnection(gateway.state), sock=sock, backlog=BACKLOG
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    gateway.state.stopping = True
    deadline = time.monotonic() + GRACE_SECONDS
    while gateway.state.connections and time.monotonic() < deadline:
        for conn in list(gateway.state.connections):
            conn.close_if_idle()
        await asyncio.sleep(0.05)
    await gateway.stop()


def supervise(sock: socket.socket, config: GatewayConfig, workers: int) -> None:
    """Fork `workers` processes sharing `sock`; replace any that dies until told to stop."""
    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_worker(sock, config)
            except BaseException:
                log.exception("gateway worker crashed")
                code = 1
            finally:
                os._exit(code)
        children[pid] = time.monotonic()

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal_quietly(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for _ in range(workers):
        spawn()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = children.pop(pid, None)
        if stopping or started is None:
            continue
        log.error("gateway worker died; starting another", extra={"pid": pid, "status": status})
        if time.monotonic() - started < RESPAWN_PAUSE_SECONDS:
            time.sleep(RESPAWN_PAUSE_SECONDS)  # a worker that dies at once must not spin
        spawn()


def _signal_quietly(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sys.exit(f"gateway: cannot listen on {host}:{port}: {exc.strerror}")
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def _parse_args(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    """The command line; its defaults are the settings (gateway.settings.GatewaySettings)."""
    gateway = settings.of(GatewaySettings)
    parser = argparse.ArgumentParser(prog="python -m gateway.server")
    parser.add_argument("--host", default=gateway.host or settings.common.bind_host)
    parser.add_argument("--port", type=int, default=gateway.port)
    parser.add_argument("--workers", type=int, default=gateway.workers)
    args = parser.parse_args(argv)
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    return args


if __name__ == "__main__":
    main()
