"""Load held: 30 s of mixed traffic through the gateway at about 70% of measured peak."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import Figures, StartPlatform
from .traffic import Traffic, sign_in_partner, summarize
from .wire import Answer, Client, envelope_problems

THREADS = 8
PEAK_SECONDS = 3.0
HOLD_SECONDS = 30.0
HOLD_FRACTION = 0.70
# The paced client must really deliver the load it was asked for (it measured the peak itself).
MIN_ACHIEVED_FRACTION = 0.85
CONSUMERS = 8

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_load_held(start_platform: StartPlatform, figures: Figures) -> None:
    platform = start_platform()
    partner = sign_in_partner(platform, "load_partner", secrets.token_urlsafe(16))

    peak = Traffic(partner, threads=THREADS)
    peak_results = peak.run_for(PEAK_SECONDS)
    peak_summary = summarize(peak_results, peak.stopped - peak.started)
    target = peak_summary.rps * HOLD_FRACTION

    held = Traffic(partner, threads=THREADS, rate=target)
    hold_results = held.run_for(HOLD_SECONDS)
    hold_summary = summarize(hold_results, held.stopped - held.started)

    tokens = peak.tokens + held.tokens
    first, second = _consume_each_twice(platform.port, tokens)
    won = sum(1 for a in first if a.status == 303)
    refused_again = sum(1 for a in second if a.status == 410)
    figures(
        f"[load] peak (closed loop, {THREADS} threads, {PEAK_SECONDS:.0f}s): {peak_summary.line()}"
    )
    figures(
        f"[load] held {HOLD_SECONDS:.0f}s at target {target:.0f} rps (70% of peak): "
        f"{hold_summary.line()}"
    )
    figures(
        f"[load] login tokens issued={len(tokens)} first POST 303={won} "
        f"second POST 410={refused_again} (Python client on the same 2 cores is the "
        "bottleneck: peak is what this client can drive, not the platform's ceiling)"
    )

    failures = [r.answer.brief() for r in peak_results + hold_results if not r.ok]
    assert not failures, f"{len(failures)} errors, first: {failures[:5]}"
    assert hold_summary.rps >= target * MIN_ACHIEVED_FRACTION, (
        f"the client drove {hold_summary.rps:.0f} rps of the {target:.0f} asked"
    )
    assert len(set(tokens)) == len(tokens) > 0
    not_won = [a.brief() for a in first if a.status != 303 or not a.headers.get("location")]
    assert not not_won, f"{len(not_won)} tokens not consumable once: {not_won[:5]}"
    not_refused = [a.brief() for a in second if a.status != 410]
    assert not not_refused, f"{len(not_refused)} tokens consumable twice: {not_refused[:5]}"
    malformed = [a.brief() for a in second if envelope_problems(a)]
    assert not malformed, malformed[:5]


def _consume_each_twice(port: int, tokens: list[str]) -> tuple[list[Answer], list[Answer]]:
    """POST /login/<token> twice per token (a browser submitting the page, then a repeat)."""
    local = threading.local()
    clients: list[Client] = []

    def consume(token: str) -> tuple[Answer, Answer]:
        if not hasattr(local, "client"):
            local.client = Client(port)
            clients.append(local.client)
        client: Client = local.client
        first = client.send("POST", f"/login/{token}")
        second = client.send("POST", f"/login/{token}")
        return first, second

    started = time.monotonic()
    with ThreadPoolExecutor(CONSUMERS) as pool:
        pairs = list(pool.map(consume, tokens))
    for client in clients:
        client.close()
    assert time.monotonic() - started < 120, "consuming the tokens took too long"
    return [p[0] for p in pairs], [p[1] for p in pairs]
