"""The table, the SPEC targets with PASS/MISS, and the JSON document."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report
from bench.memory import MemoryFigure
from bench.runner import FloodRow, PacedRow, PairedRow, Row
from bench.wrk import WrkResult


def result(requests: int, p99_us: int = 4000, failures: int = 0) -> WrkResult:
    """A wrk result of a 1-second run."""
    return WrkResult(requests, 1_000_000, failures, 0, 0, 1000, 2000, p99_us, 9000, 1100.0)


def rows() -> list[Row]:
    return [
        Row("healthz (sabong)", "direct", "/healthz", result(4000), 1, 0.0),
        Row("generate-auth-token", "direct", "/t", result(3000), 9000, 0.1, ratio=0.75),
        Row("generate-auth-token", "gateway", "/t", result(2100), 9000, 0.1, ratio=0.70),
        Row("healthz (ussd)", "direct", "/healthz", result(4000), 1, 0.0),
        Row("generate-service-id", "direct", "/s", result(2000, failures=2), 1, 0.0, ratio=0.5),
    ]


def test_table_has_a_line_per_row_with_ratios_in_their_columns() -> None:
    text = report.throughput_table(rows())
    lines = text.splitlines()
    assert len(lines) == 2 + 5
    assert "req/s" in lines[0] and "gw/direct" in lines[0] and "non-2xx" in lines[0]
    token_direct, token_gateway = lines[3], lines[4]
    assert "3000" in token_direct and "0.75" in token_direct
    assert "2100" in token_gateway and "0.70" in token_gateway
    assert lines[6].split()[-3:] == ["2", "0", "-"]  # non-2xx count, CPU, no noise figure


def test_targets_pass_and_miss() -> None:
    paced = [
        PacedRow("clients/me", "direct", 500, 10.0, result(500, p99_us=2000)),
        PacedRow("clients/me", "gateway", 500, 9.0, result(500, p99_us=5000)),
    ]
    flood = [FloodRow("clients/me", 500, result(500, 2000), result(480, 5000), result(30))]
    memory = [
        MemoryFigure("login token", "redis 7", 100, 180.0, 1.0),
        MemoryFigure("Service ID", "redis 7", 100, 210.0, 1.0),
    ]
    checked = {t.name: t for t in report.targets([rows()], paced, flood, memory)}
    assert checked["generate-auth-token direct / healthz (sabong) throughput"].passed
    assert not checked["generate-service-id direct / healthz (ussd) throughput"].passed
    assert not checked["generate-auth-token gateway / direct throughput"].passed
    assert not checked["clients/me p99 gateway / direct at half peak"].passed  # 2.5 > 2
    assert checked["clients/me p99 beside a login flood / alone"].passed  # 2.5 <= 3
    assert checked["Redis bytes per live login token (redis 7)"].passed
    assert not checked["Redis bytes per live Service ID (redis 7)"].passed
    line = checked["Redis bytes per live Service ID (redis 7)"].line()
    assert line.strip().startswith("MISS") and "target <= 200 B" in line


def test_json_document_is_serialisable(tmp_path: Path) -> None:
    document = report.to_json({"meta": 1}, rows(), [], [], [], [])
    path = tmp_path / "out" / "results.json"
    report.write_json(path, document)
    loaded = json.loads(path.read_text())
    assert loaded["meta"] == 1
    first = loaded["throughput"][1]
    assert first["requests_per_second"] == 3000.0
    assert first["ratio_to_healthz"] == 0.75 and first["ratio_gateway_to_direct"] is None
    assert loaded["throughput"][2]["ratio_gateway_to_direct"] == 0.7


def test_cpu_ratios_use_the_mean_reference_and_their_own_limits() -> None:
    """Servers' own CPU per request against the reference app's, first and last run."""

    def row(name: str, server: str, server_us: float, path: str = "direct") -> Row:
        cpu = {server: server_us, "redis": 50.0, "bench+wrk": 30.0}
        return Row(name, path, "/", result(1000), 1, 0.0, cpu_us=cpu, server=server)

    measured = [
        row("reference (flask)", "reference", 200.0),
        row("healthz (ussd)", "ussd", 215.0),  # 1.075x: within 1.1
        row("healthz (sabong)", "sabong", 240.0),  # 1.2x: over
        row("generate-auth-token", "sabong", 290.0),  # 1.45x: within 1.5
        row("generate-auth-token", "gateway", 900.0, path="gateway"),  # no CPU target
        row("generate-service-id", "ussd", 320.0),  # 1.6x: over
        row("login", "ussd", 9000.0),  # no CPU target: the password hash
        row("reference (flask)", "reference", 200.0),
    ]
    assert report.reference_cpu_us(measured) == 200.0
    checked = {t.name: t for t in report.targets([measured], [], [], [])}
    assert checked["healthz (ussd) CPU per request / reference app"].passed
    assert not checked["healthz (sabong) CPU per request / reference app"].passed
    assert checked["generate-auth-token CPU per request / reference app"].passed
    assert not checked["generate-service-id CPU per request / reference app"].passed
    assert not any(name.startswith(("login ", "reference")) for name in checked)
    table = report.throughput_table(measured).splitlines()
    assert "x ref" in table[0] and "1.60" in table[7]
    document = report.to_json({}, measured, [], [], [], [])
    assert document["reference_app_cpu_us_per_request"] == 200.0
    assert document["throughput"][5]["cpu_ratio_to_reference"] == 1.6
    assert document["throughput"][4]["cpu_ratio_to_reference"] is None


def test_each_endpoint_is_split_into_its_floor_and_the_services_own_cpu() -> None:
    """bench/floor_app.py rows: no CPU target of their own, and each endpoint is shown
    over the floor row that makes its store round trips."""

    def row(name: str, server: str, server_us: float) -> Row:
        return Row(name, "direct", "/", result(1000), 1, 0.0, cpu_us={server: server_us},
                   server=server)  # fmt: skip

    measured = [
        row("reference (flask)", "reference", 200.0),
        row("floor (flask)", "floor", 150.0),
        row("floor +redis", "floor", 210.0),
        row("floor +redis+pg", "floor", 330.0),
        row("generate-service-id", "ussd", 290.0),
        row("get-balance", "sabong", 500.0),
        row("healthz (ussd)", "ussd", 180.0),  # no floor row: not split
    ]
    checked = {t.name for t in report.targets([measured], [], [], [])}
    assert not any(name.startswith("floor") for name in checked)
    assert "get-balance CPU per request / reference app" in checked
    lines = report.floor_lines(measured).splitlines()
    assert len(lines) == 2
    service_id, balance = (line.split() for line in lines)
    assert service_id[:7] == ["generate-service-id", "290", "us", "=", "floor", "+redis", "210"]
    assert "(1.05x" in service_id and service_id[-2] == "80"
    assert balance[1] == "500" and balance[5:7] == ["+redis+pg", "330"]
    assert "(1.65x" in balance and balance[-2] == "170"


def test_over_several_turns_each_cpu_target_is_the_median_of_its_turns_ratios() -> None:
    """`--cpu --turns N`: each turn's ratio against that turn's own reference runs."""

    def row(name: str, server: str, server_us: float) -> Row:
        return Row(name, "direct", "/", result(1000), 1, 0.0, cpu_us={server: server_us},
                   server=server)  # fmt: skip

    def turn(reference_us: float, token_us: float) -> list[Row]:
        return [
            row("reference (flask)", "reference", reference_us),
            row("generate-auth-token", "sabong", token_us),
            row("reference (flask)", "reference", reference_us),
        ]

    # A slow second turn: 1.4x, 1.6x (against a fast reference), 1.45x.
    turns = [turn(300.0, 420.0), turn(250.0, 400.0), turn(400.0, 580.0)]
    checked = {t.name: t for t in report.targets(turns, [], [], [])}
    token = checked["generate-auth-token CPU per request / reference app (median)"]
    assert token.measured == 1.45 and token.passed
    assert "generate-auth-token CPU per request / reference app" not in checked
    line = report.turn_ratio_lines(turns)
    assert line.split() == ["generate-auth-token", "1.40", "1.60", "1.45", "median", "1.45"]
    # One turn alone is its own ratio.
    assert report.targets([turns[0]], [], [], [])[0].measured == 1.4


def test_a_paired_row_compares_the_medians_of_its_runs() -> None:
    row = PairedRow("get-balance", [1400.0, 1500.0, 1450.0], [1200.0, 1160.0, 1300.0], 0)
    assert round(row.change, 4) == round(1450 / 1200 - 1, 4)
    table = report.paired_table([row])
    line = table.splitlines()[-1]
    assert line.startswith("get-balance")
    assert "1450: 1400 1500 1450" in line
    assert "1200: 1200 1160 1300" in line
    assert "+20.8%" in line
