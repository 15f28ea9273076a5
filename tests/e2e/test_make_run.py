"""`python -m scripts.run` (what `make run` runs) as a newcomer would use it: real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import psycopg
import redis as redis_py
from dotenv import dotenv_values

from shared.config import PROJECT_ROOT, SECRET_NAMES

from .conftest import Platform, http
from .procs import ProcInfo, read_proc, survivors

MARKER_KEY = "e2e:marker"


def banner_line(banner: str, needle: str) -> str:
    """The one banner line containing `needle`, stripped (it must be there exactly once)."""
    lines = [line.strip() for line in banner.splitlines() if needle in line]
    assert len(lines) == 1, f"{needle!r} in {len(lines)} banner lines:\n{banner}"
    return lines[0]


def run_pasted(platform: Platform, *lines: str) -> subprocess.CompletedProcess[str]:
    """Run banner lines in bash from the project directory, as a newcomer pasting them."""
    script = "set -euo pipefail\n" + "\n".join(lines)
    return subprocess.run(
        ["bash", "-c", script],
        cwd=PROJECT_ROOT,
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def last_json(output: str) -> dict[str, object]:
    """The JSON object on the last non-empty line of `output`."""
    value = json.loads([line for line in output.splitlines() if line.strip()][-1])
    assert isinstance(value, dict)
    return value


def niceness(pid: int) -> int | None:
    """The nice value of a live process (None once it is gone)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[16])


def assert_nothing_left(platform: Platform) -> None:
    """Every process the run started is gone, and no orphan holds one of its ports."""
    assert platform.recorded, "no child processes were recorded"
    left = survivors(platform.recorded)
    assert not left, f"processes left behind: {left}"
    assert not platform.orphans_using_ports()


def assert_process_tree(platform: Platform) -> None:
    """Redis, PostgreSQL and the four components (the USSD app twice: its login pool on its
    own port), each its own process group, gunicorn exec'd in place."""
    assert platform.process is not None
    leaders = [p for p in platform.recorded if p.ppid == platform.process.pid]
    assert len(leaders) == 6, leaders
    assert all(p.pgid == p.pid for p in leaders), "each child leads its own process group"
    assert any("redis-server" in p.cmdline for p in leaders)
    assert any("/postgres -D" in p.cmdline for p in leaders)
    ports = platform.ports
    nice: dict[int, set[int | None]] = {}
    for app, port in (
        ("services.ussd.wsgi:app", ports.ussd),
        ("services.ussd.wsgi:app", ports.ussd_login),
        ("services.sabong.wsgi:app", ports.sabong),
    ):
        (leader,) = [p for p in leaders if app in p.cmdline and f":{port} " in p.cmdline]
        assert "gunicorn" in leader.cmdline  # scripts.serve exec'd gunicorn: same pid
        workers = [p for p in platform.recorded if p.ppid == leader.pid]
        assert workers, f"no gunicorn workers under {app} on port {port}"
        nice[port] = {niceness(worker.pid) for worker in workers}
    # The login pool's workers hash passwords at a lower CPU priority than the others.
    own = os.nice(0)
    assert nice[ports.ussd] == {own}
    assert nice[ports.ussd_login] == {min(own + 10, 19)}


def check_banner(platform: Platform) -> str:
    """The banner names the URLs, REDIS_URL, DATABASE_URL, data dir and the generated
    secrets."""
    banner = platform.stdout()
    secrets = dotenv_values(platform.env["DOTENV_PATH"])
    assert platform.gateway in banner
    var = platform.env["RUN_VAR_DIR"]
    # The components use the Unix sockets; tools get the TCP addresses.
    assert f"REDIS_URL               unix://{var}/redis/redis.sock?db=0" in banner
    postgres_dir = platform.env["POSTGRES_DATA_DIR"]
    assert f"DATABASE_URL            postgresql://postgres@/postgres?host={postgres_dir}&" in banner
    assert f"tools: redis://127.0.0.1:{platform.ports.redis}/0" in banner
    assert f"tools: postgresql://postgres@127.0.0.1:{platform.ports.postgres}/postgres" in banner
    assert platform.env["RUN_VAR_DIR"] in banner
    for name in SECRET_NAMES:
        assert f"{name}={secrets[name]}" in banner
    return banner


def check_routes(platform: Platform) -> None:
    """The gateway is healthy and routes one request to each service."""
    status, _, _ = http("GET", platform.gateway + "/healthz")
    assert status == 200
    status, _, body = http(
        "POST",
        platform.gateway + "/api/auth/login",
        b"not json",
        {"Content-Type": "application/json"},
    )
    assert (status, body) == (
        400,
        {"status": 400, "message": "Invalid request format", "data": None},
    )
    status, _, body = http(
        "POST",
        platform.gateway + "/api/v1/generate-auth-token",
        b"{}",
        {"Content-Type": "application/json"},
    )
    assert status == 401
    assert body == {
        "status": "error",
        "message": "Missing required signature headers or secret",
        "data": None,
    }


def check_k2_example(platform: Platform, banner: str, create: bool) -> None:
    """The banner's K2 commands, pasted into bash, yield a Service ID (201)."""
    lines = [
        banner_line(banner, "create-client"),
        banner_line(banner, "TOKEN=$(curl"),
        banner_line(banner, "generate-service-id"),
    ]
    result = run_pasted(platform, *(lines if create else lines[1:]))
    assert result.returncode == 0, result.stderr + result.stdout
    answer = last_json(result.stdout)
    assert answer["status"] == 201, answer
    assert answer["message"] == "Service created"


def check_sabong_example(platform: Platform, banner: str) -> None:
    """The banner's Sabong command signs and sends a request that gets a login link."""
    result = run_pasted(platform, banner_line(banner, "scripts.sabong_example"))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "HTTP 200" in result.stdout
    link_prefix = f"{platform.gateway}/login/"
    (link_line,) = [line for line in result.stdout.splitlines() if '"loginLink"' in line]
    link = json.loads("{" + link_line.strip().rstrip(",") + "}")["loginLink"]
    assert link.startswith(link_prefix), link
    status, _, page = http("GET", link)  # GET shows the sign-in page and consumes nothing
    assert status == 200 and "<" in page


def check_stores_over_unix_sockets(platform: Platform) -> None:
    """Every component's Redis and PostgreSQL connection is a Unix socket (co-located
    stores cost less CPU per round trip that way); this test's own come over TCP."""
    clients = redis_at(platform).client_list()
    unix_clients = [client for client in clients if client["addr"].startswith("/")]
    assert len(unix_clients) >= 3, clients  # the services' and the gateway's connections
    tcp_clients = [client for client in clients if not client["addr"].startswith("/")]
    assert len(tcp_clients) == 1, tcp_clients  # this test's own
    url = f"postgresql://postgres@127.0.0.1:{platform.ports.postgres}/postgres"
    with psycopg.connect(url) as conn:
        addresses = conn.execute(
            "SELECT client_addr FROM pg_stat_activity"
            " WHERE application_name = 'partner-auth-platform'"
        ).fetchall()
    assert addresses, "no component is connected to PostgreSQL"
    assert {address for (address,) in addresses} == {None}, addresses  # None: a Unix socket


def redis_at(platform: Platform) -> redis_py.Redis:
    """A client on the run's embedded Redis."""
    return redis_py.Redis(port=platform.ports.redis, socket_timeout=5, decode_responses=True)


def test_run_serves_stops_cleanly_and_runs_again(platform: Platform) -> None:
    """Start, use every API, SIGTERM (nothing left); again on the same ports and data, Ctrl-C."""
    platform.start()
    first_ready = platform.wait_ready()
    assert_process_tree(platform)
    banner = check_banner(platform)
    check_routes(platform)
    check_k2_example(platform, banner, create=True)
    check_sabong_example(platform, banner)
    check_stores_over_unix_sockets(platform)
    redis_at(platform).set(MARKER_KEY, "kept")

    status, first_stop = platform.stop()
    assert status == 0, platform.stderr()
    assert_nothing_left(platform)

    platform.start()
    second_ready = platform.wait_ready()
    assert redis_at(platform).get(MARKER_KEY) == "kept"  # AOF in RUN_VAR_DIR reused
    check_routes(platform)
    check_k2_example(platform, platform.stdout(), create=False)  # the account survived
    platform.signal(signal.SIGINT)  # what Ctrl-C sends
    status, second_stop = platform.wait_exit()
    assert status == 0, platform.stderr()
    assert_nothing_left(platform)
    print(
        f"ready {first_ready:.1f}s/{second_ready:.1f}s, stop {first_stop:.1f}s/{second_stop:.1f}s"
    )


def test_a_child_that_dies_stops_everything(platform: Platform) -> None:
    """SIGKILL one service: scripts.run names it, stops the rest, exits non-zero."""
    platform.start()
    platform.wait_ready()
    assert platform.process is not None
    (sabong,) = [
        p
        for p in platform.recorded
        if p.ppid == platform.process.pid and "services.sabong" in p.cmdline
    ]
    signal_process(sabong, signal.SIGKILL)
    status, _ = platform.wait_exit()
    assert status == 1
    assert "sabong was killed by SIGKILL during operation" in platform.stderr()
    assert_nothing_left(platform)


def test_a_malformed_setting_is_refused_before_anything_starts(platform: Platform) -> None:
    """A bad value: the schema check names the variable; no store or server is started."""
    platform.env["SABONG_WORKERS"] = "many"
    platform.start()
    status, _ = platform.wait_exit(timeout=45)
    assert status == 1
    assert "SABONG_WORKERS must be an integer, got 'many'" in platform.stderr()
    assert not (platform.workdir / "var" / "redis").exists()
    assert not platform.orphans_using_ports()


def test_a_component_that_cannot_start_is_named_with_its_output(platform: Platform) -> None:
    """A server that dies at start-up: the error names it and shows the tail of its output."""
    # gunicorn reads GUNICORN_CMD_ARGS itself, so only the gunicorn components fail.
    platform.env["GUNICORN_CMD_ARGS"] = "--no-such-option"
    platform.start()
    status, _ = platform.wait_exit(timeout=45)
    assert status == 1
    stderr = platform.stderr()
    assert re.search(r"(ussd|ussd-login|sabong) exited with status \d+ during start-up", stderr)
    assert "--no-such-option" in stderr
    assert not platform.orphans_using_ports()


def test_a_taken_port_is_refused_before_anything_starts(platform: Platform) -> None:
    """A port in use: a clear message naming the setting; nothing is started."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", platform.ports.ussd))
        holder.listen()
        platform.start()
        status, _ = platform.wait_exit(timeout=20)
    assert status == 1
    assert f"port {platform.ports.ussd}" in platform.stderr()
    assert "USSD_PORT" in platform.stderr()
    assert not (platform.workdir / "var" / "redis").exists()


def test_readiness_is_bounded(platform: Platform) -> None:
    """A component not ready in RUN_READY_TIMEOUT: the error names it and the URL probed."""
    platform.env["RUN_READY_TIMEOUT"] = "0.01"
    platform.start()
    status, _ = platform.wait_exit(timeout=30)
    assert status == 1
    assert "is not ready within 0.01 s" in platform.stderr()
    assert not platform.orphans_using_ports()


def signal_process(info: ProcInfo, signum: int) -> None:
    """Signal that very process (checked against pid reuse)."""
    now = read_proc(info.pid)
    assert now is not None and now.start == info.start
    os.kill(info.pid, signum)
