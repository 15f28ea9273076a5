"""shared.timestamps: one spelling of a time (ISO 8601 UTC, milliseconds, `Z`) everywhere."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.timestamps import iso_from_epoch, iso_from_epoch_ms, iso_utc, parse_iso, utc_datetime


def test_iso_utc_converts_to_utc_and_truncates_to_milliseconds() -> None:
    moment = datetime(2026, 12, 2, 7, 1, 2, 345_999, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(moment) == "2026-12-02T05:01:02.345Z"
    assert iso_utc(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    assert iso_utc(None) is None


def test_the_epoch_spellings_match_iso_utc() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        epoch_ms = rng.randrange(0, 4_102_444_800_000)  # 1970 to 2100
        moment = utc_datetime(epoch_ms / 1000)
        assert iso_from_epoch_ms(epoch_ms) == iso_utc(
            moment.replace(microsecond=epoch_ms % 1000 * 1000)
        )
        assert iso_from_epoch(epoch_ms // 1000 + 0.5) == iso_from_epoch_ms(
            epoch_ms // 1000 * 1000 + 500
        )


def test_parse_iso_round_trips_and_refuses_naive_times() -> None:
    moment = datetime(2026, 2, 1, 14, 59, 42, 123_000, tzinfo=UTC)
    assert parse_iso(iso_utc(moment)) == moment
    with pytest.raises(ValueError):
        parse_iso("2026-02-01T14:59:42")
