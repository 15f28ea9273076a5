"""`python -m bench` options: which endpoints a run measures."""

from __future__ import annotations

from bench.__main__ import parse_args, selected


def names(argv: list[str]) -> list[str]:
    return [endpoint.name for endpoint in selected(parse_args(argv))]


def test_only_brings_the_floor_rows_of_the_chosen_endpoints() -> None:
    assert names(["--only", "get-balance"]) == ["floor (flask)", "floor +redis+pg", "get-balance"]
    assert names(["--only", "healthz (ussd)"]) == ["healthz (ussd)"]  # it has no floor row


def test_a_full_run_measures_every_floor_row() -> None:
    assert {"floor (flask)", "floor +redis", "floor +redis+pg"} <= set(names([]))
