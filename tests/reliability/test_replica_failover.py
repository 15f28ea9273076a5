"""One of two Sabong replicas SIGKILLed under load behind the gateway, then brought back."""

from __future__ import annotations

import secrets
import time

import pytest

from .conftest import Figures, StartPlatform
from .traffic import Traffic, issue_token, login_page, sign_in_partner
from .wire import Answer, envelope_problems

THREADS = 8
BEFORE_KILL_SECONDS = 3.0
AFTER_KILL_SECONDS = 3.0
AFTER_RESTART_SECONDS = 4.0
TOKENS_ISSUED = "sabong_login_tokens_issued_total"
GATEWAY_FAILURES = {502: "Bad gateway", 504: "Gateway timeout"}
# Below the client's 10 s, so a stuck request still ends as a 504 rather than a client
# timeout; long enough that a freshly restarted replica on a busy 2-core box (cold
# workers) is not mistaken for a failure.
READ_TIMEOUT = 8.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_replica_killed_behind_gateway(start_platform: StartPlatform, figures: Figures) -> None:
    platform = start_platform(sabong_replicas=2, GATEWAY_READ_TIMEOUT=str(READ_TIMEOUT))
    victim, survivor = platform.sabong
    partner = sign_in_partner(platform, "failover_partner", secrets.token_urlsafe(16))
    traffic = Traffic(partner, (issue_token(), login_page), threads=THREADS).start()
    try:
        time.sleep(BEFORE_KILL_SECONDS)
        served_before = {s.name: s.metric(TOKENS_ISSUED) for s in platform.sabong}
        kill_sent = time.monotonic()
        victim.kill()
        dead = time.monotonic()
        time.sleep(AFTER_KILL_SECONDS)
        restart_sent = time.monotonic()
        victim.start().wait_until("/readyz")
        restarted = time.monotonic()
        time.sleep(AFTER_RESTART_SECONDS)
        served_after_restart = victim.metric(TOKENS_ISSUED)
    finally:
        results = traffic.stop()

    failed = [r for r in results if not r.ok]
    in_flight = [r for r in results if r.answer.started < kill_sent < r.answer.finished]
    later = [r for r in results if r.answer.started > dead]
    failed_later = [
        f"{r.answer.started - kill_sent:+.3f}s after the kill: {r.answer.brief()}"
        for r in failed
        if r.answer.started > dead
    ]
    not_gateway_made = [r.answer.brief() for r in failed if not _gateway_failure(r.answer)]
    timed_out = [r for r in failed if r.answer.status == 504]
    figures(
        f"[replica-kill] requests={len(results)} failed={len(failed)} "
        f"(in flight on either replica at the kill: {len(in_flight)}, threads: {THREADS}; "
        f"of the failures 504 after the {READ_TIMEOUT:.0f}s read timeout: {len(timed_out)}) "
        f"after the kill: {len(later)} requests, {len(failed_later)} failed; tokens issued "
        f"before the kill by replica: {served_before}; by the restarted replica within "
        f"{AFTER_RESTART_SECONDS:.0f}s of its restart: {served_after_restart:.0f} "
        f"(killed at +0s, dead at +{dead - kill_sent:.3f}s, restart sent at "
        f"+{restart_sent - kill_sent:.1f}s, ready at +{restarted - kill_sent:.1f}s)"
    )

    assert all(count > 0 for count in served_before.values()), served_before
    assert len(failed) <= THREADS, [r.answer.brief() for r in failed]
    assert not not_gateway_made, not_gateway_made[:5]
    assert not failed_later, f"requests sent after the kill failed: {failed_later[:5]}"
    assert len(later) > THREADS * 10, "too little traffic after the kill to judge"
    assert survivor.process is not None and survivor.process.poll() is None
    assert served_after_restart > 0, "the gateway never sent traffic to the restarted replica"


def _gateway_failure(answer: Answer) -> bool:
    """A 502/504 made by the gateway, in the Sabong envelope (status word "failed")."""
    if answer.status not in GATEWAY_FAILURES or envelope_problems(answer, allow_5xx=(502, 504)):
        return False
    body = answer.json()
    expected = {"status": "failed", "message": GATEWAY_FAILURES[answer.status], "data": None}
    return bool(body == expected)
