"""`python -m bench` options: which endpoints a run measures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.__main__ import PAIRABLE, PAIRED_ENDPOINTS, main, parse_args, selected
from bench.endpoints import GET_BALANCE


def names(argv: list[str]) -> list[str]:
    return [endpoint.name for endpoint in selected(parse_args(argv))]


def test_only_brings_the_floor_rows_of_the_chosen_endpoints() -> None:
    assert names(["--only", "get-balance"]) == ["floor (flask)", "floor +redis+pg", "get-balance"]
    assert names(["--only", "healthz (ussd)"]) == ["healthz (ussd)"]  # it has no floor row


def test_a_full_run_measures_every_floor_row() -> None:
    assert {"floor (flask)", "floor +redis", "floor +redis+pg"} <= set(names([]))


def test_ab_refuses_endpoints_it_cannot_pair_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """login is the password hash on the login pool; login-link needs a token per request."""
    if not shutil.which("wrk"):
        pytest.skip("wrk is not installed")
    assert main(["--ab", str(tmp_path), "--only", "login", "login-link POST"]) == 2
    assert "not login, login-link POST" in capsys.readouterr().err


def test_ab_pairs_service_endpoints_only() -> None:
    assert GET_BALANCE in PAIRABLE
    assert all(endpoint in PAIRABLE for endpoint in PAIRED_ENDPOINTS)
    assert not {endpoint.service for endpoint in PAIRABLE} - {"ussd", "sabong"}
