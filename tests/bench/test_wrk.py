"""bench.wrk: request rendering, the request-file format, pacing, and wrk's result line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import wrk

RESULT_LINE = (
    'BENCH_RESULT {"requests":1200,"duration_us":2000000,"bytes":50000,'
    '"status_errors":3,"connect_errors":1,"read_errors":0,"write_errors":0,"timeouts":2,'
    '"latency_us":{"p50":800,"p90":1500,"p99":4200,"max":9000,"mean":950.5}}'
)


def test_render_request_sets_host_and_length() -> None:
    raw = wrk.render_request("POST", "/x", "127.0.0.1:9", {"A": "b"}, b'{"k":1}')
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.split(b"\r\n") == [
        b"POST /x HTTP/1.1",
        b"Host: 127.0.0.1:9",
        b"A: b",
        b"Content-Length: 7",
    ]
    assert body == b'{"k":1}'


def test_bodyless_post_still_says_its_length() -> None:
    """Servers may wait for a body that never comes unless POST says Content-Length: 0."""
    assert b"Content-Length: 0\r\n" in wrk.render_request("POST", "/x", "h")
    assert b"Content-Length" not in wrk.render_request("GET", "/x", "h")


def test_request_file_round_trip_keeps_exact_bytes(tmp_path: Path) -> None:
    requests = [b"GET / HTTP/1.1\r\n\r\n", "POST /é HTTP/1.1\r\n\r\n\n12\n".encode(), b"x"]
    path = tmp_path / "r.bin"
    assert wrk.write_requests(path, requests) == 3
    assert wrk.read_requests(path) == requests


def test_empty_request_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        wrk.write_requests(tmp_path / "r.bin", [])


def test_parse_output_reads_the_result_line() -> None:
    result = wrk.parse_output(f"Running 2s test\n{RESULT_LINE}\nRequests/sec: 600\n")
    assert result.requests == 1200
    assert result.rate == pytest.approx(600.0)
    assert (result.p50_us, result.p99_us) == (800, 4200)
    assert result.status_errors == 3
    assert result.failures == 3 + 1 + 2


def test_parse_output_without_result_line_fails() -> None:
    with pytest.raises(wrk.WrkFailed, match="no BENCH_RESULT"):
        wrk.parse_output("Running 2s test\n")


@pytest.mark.parametrize(
    ("rate", "connections", "latency_us", "pause_ms"),
    [(1000, 16, 0, 16.0), (1000, 16, 2000, 14.0), (100, 1, 500, 9.5), (1000, 4, 9000, 0.0)],
)
def test_pause_for_rate(rate: float, connections: int, latency_us: float, pause_ms: float) -> None:
    """The pause fills each connection's period (connections / rate) after the latency."""
    assert wrk.pause_for_rate(rate, connections, latency_us) == pytest.approx(pause_ms)


def test_command_passes_file_pause_and_thread_count_to_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command line is what is tested here, not whether wrk is installed.
    monkeypatch.setattr(wrk, "wrk_binary", lambda: "/usr/bin/wrk")
    argv = wrk.command("http://h:1", tmp_path / "r.bin", wrk.Load(2, 16, 5, pause_ms=3.25))
    assert argv[0] == "/usr/bin/wrk"
    assert argv[argv.index("--connections") + 1] == "16"
    assert argv[argv.index("--threads") + 1] == "2"
    assert argv[argv.index("--duration") + 1] == "5s"
    assert argv[argv.index("--script") + 1] == str(wrk.LUA_SCRIPT)
    assert argv[argv.index("--") + 1 :] == [str(tmp_path / "r.bin"), "3.250", "2"]


def test_missing_wrk_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(wrk.WrkMissing, match="apt-get install wrk"):
        wrk.wrk_binary()
