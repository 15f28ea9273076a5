"""Schemathesis against shared/openapi.json, through the gateway, with negative data.

Coverage phase (boundary and invalid values of every parameter and body field, missing
required fields, wrong types) and fuzzing phase, positive and negative generation. Every
answer must be below 500, free of stack traces and in its family's envelope (HTML only on
the browser paths). Conformance to the document itself is tests/test_openapi_live.py.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from shared.signing import canonical_query, sign

from .conftest import record_figures
from .platform import Platform
from .traffic import Partner
from .wire import Answer, Client, envelope_problems

DOC: dict[str, Any] = json.loads(resources.files("shared").joinpath("openapi.json").read_bytes())
# Bounded: a few random examples per operation on top of the (finite) coverage cases.
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"mode": "all", "max-examples": 30, "deterministic": True},
        "phases": {
            "examples": {"enabled": False},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
SIGNED = "/api/v1/generate-auth-token"
_SIGN_NEXT = itertools.cycle((True, False))  # alternate: signed, unsigned, signed...
SCHEMA = schemathesis.openapi.from_dict(DOC, config=CONFIG)

pytestmark = pytest.mark.timeout(120)


class SabongSigner(requests.auth.AuthBase):
    """Signs the prepared request over exactly the bytes requests is about to send."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        payload = body.encode("utf-8") if isinstance(body, str) else body
        assert isinstance(payload, bytes), "streamed bodies are never generated here"
        path, _, query = (request.path_url or "/").partition("?")
        if request.method == "GET":
            payload = canonical_query(urllib.parse.parse_qsl(query)).encode("utf-8")
        stamp = str(int(time.time()))
        request.headers["x-timestamp"] = stamp
        request.headers["x-signature"] = sign(
            self.secret, request.method or "GET", path, stamp, payload
        )
        return request


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Counter[str]]:
    """Requests by status over the whole module; one figures line at its end."""
    counts: Counter[str] = Counter()
    started = time.monotonic()
    yield counts
    statuses = " ".join(f"{k}={v}" for k, v in sorted(counts.items()) if k[0].isdigit())
    record_figures(
        request.config,
        f"[fuzz-openapi] requests={counts['requests']} problems={counts['problems']} "
        f"in {time.monotonic() - started:.0f}s; by status: {statuses}",
    )


@SCHEMA.parametrize()
@settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_fuzz_openapi_through_gateway(
    case: Case[Any], shared_platform: Platform, shared_partner: Partner, tally: Counter[str]
) -> None:
    headers, auth = _credentials(case, shared_platform, shared_partner)
    response = case.call(
        base_url=shared_platform.url, headers=headers, auth=auth, timeout=15, allow_redirects=False
    )
    answer = _answer(response)
    problems = envelope_problems(answer)
    tally["requests"] += 1
    tally[str(answer.status)] += 1
    tally["problems"] += bool(problems)
    assert not problems, f"{problems}: {answer.brief()}"


def _credentials(
    case: Case[Any], platform: Platform, partner: Partner
) -> tuple[dict[str, str], requests.auth.AuthBase | None]:
    """Valid credentials for the operation, so the fuzzed input gets past authentication.

    Sabong's signed endpoint is signed in every other case only: the unsigned half keeps
    the generated (often malformed) x-signature / x-timestamp headers.
    """
    schemes = {
        name
        for requirement in case.operation.definition.raw.get("security", [])
        for name in requirement
    }
    if "k2ServiceId" in schemes:
        # A fresh one each time: revoke-service-id may revoke what it is given.
        return {"Authorization": f"Bearer {_fresh_service_id(platform, partner)}"}, None
    if "k2LoginJwt" in schemes:
        if isinstance(case.body, dict) and "service_id" in case.body:
            case.body["service_id"] = _fresh_service_id(platform, partner)
        return {"Authorization": f"Bearer {partner.login_jwt}"}, None
    if case.operation.path == SIGNED and next(_SIGN_NEXT):
        return {}, SabongSigner(platform.sabong_secret)
    return {}, None


def _fresh_service_id(platform: Platform, partner: Partner) -> str:
    client = Client(platform.port)
    try:
        issued = client.send(
            "POST",
            "/api/clients/generate-service-id",
            b"",
            {"Authorization": f"Bearer {partner.login_jwt}"},
        )
    finally:
        client.close()
    assert issued.status == 201, issued.brief()
    service_id: str = issued.json()["data"]["SERVICE_ID"]
    return service_id


def _answer(response: schemathesis.Response) -> Answer:
    """The response as an Answer, for the shared envelope checks."""
    path = urllib.parse.urlsplit(response.request.url).path
    now = time.monotonic()
    return Answer(
        response.request.method or "",
        urllib.parse.unquote(path),
        response.status_code,
        {name.lower(): ", ".join(values) for name, values in response.headers.items()},
        response.content,
        now - response.elapsed,
        now,
    )
