"""ISO 8601 UTC timestamps as both APIs and the logs show them: milliseconds and `Z`.

Every service formats and parses times through these functions, so a time reads the same
(2026-12-02T05:01:02.345Z, like JavaScript's toISOString()) wherever it appears.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import overload


@overload
def iso_utc(moment: datetime) -> str: ...
@overload
def iso_utc(moment: None) -> None: ...
def iso_utc(moment: datetime | None) -> str | None:
    """`moment` in UTC with milliseconds (truncated) and `Z`; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_epoch_ms(epoch_ms: int) -> str:
    """A Unix time in whole milliseconds as iso_utc writes it."""
    # gmtime and plain formatting: several times cheaper than datetime + isoformat, and
    # Sabong's token issuance runs this twice per request.
    t = time.gmtime(epoch_ms // 1000)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{epoch_ms % 1000:03d}Z"
    )


# iso_from_epoch runs for every log line (the gateway's access log is its hot path): the
# date and time are formatted once per second, the milliseconds looked up. Entry 1000
# repeats .999 for a fraction that float rounding turns into 1000 ms.
_cached_second: tuple[int, str] = (-1, "")
_MILLIS = (*(f".{ms:03d}Z" for ms in range(1000)), ".999Z")


def iso_from_epoch(epoch: float) -> str:
    """A Unix time (float seconds) as iso_utc writes it, e.g. 2026-01-31T23:59:59.123Z."""
    global _cached_second
    second = int(epoch)
    cached = _cached_second
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        _cached_second = cached
    return cached[1] + _MILLIS[int((epoch - second) * 1000)]


def parse_iso(text: str) -> datetime:
    """The instant an ISO 8601 string names (a `Z` suffix is UTC); ValueError otherwise."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment


def utc_datetime(epoch: float) -> datetime:
    """A Unix time as an aware UTC datetime (what timestamptz columns take)."""
    return datetime.fromtimestamp(epoch, UTC)
