"""Live responses of the REAL services checked against the OpenAPI document (schemathesis)."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from partner_sdk import K2Client, SabongClient
from schemathesis import Case
from schemathesis.checks import (
    FailureGroup,
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devtools.embedded import EmbeddedRedis, free_port
from shared.signing import canonical_query, sign
from tests.live_services import (
    Platform,
    Recorded,
    Reply,
    create_k2_client,
    json_reply,
    live_platform,
    real_gateway,
    scripted_server,
    service_env,
)
from tests.sabong.conftest import reconcile_exit, seed_user

# Starts both services and gateways as subprocesses.
pytestmark = [pytest.mark.timeout(240), pytest.mark.server]

DOC: dict[str, Any] = json.loads(resources.files("shared").joinpath("openapi.json").read_bytes())
SCHEMA = schemathesis.openapi.from_dict(DOC)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# For chosen requests the status is asserted exactly; a documented 5xx is then no failure.
CONFORMANCE_CHECKS = [check for check in CHECKS if check is not not_a_server_error]
EXAMPLES_PER_OPERATION = 5
K2_PREFIXES = ("/api/auth/", "/api/clients/")


class SabongSigner(requests.auth.AuthBase):
    """Signs the prepared request: the exact body bytes requests is about to send."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        payload = body.encode("utf-8") if isinstance(body, str) else body
        path, _, query = (request.path_url or "/").partition("?")
        if request.method == "GET":
            payload = canonical_query(urllib.parse.parse_qsl(query)).encode("utf-8")
        # A repeated identical request in the same second is refused as a replay (401):
        # that answer is documented too, so the checks still apply to it.
        stamp = str(int(time.time()))
        request.headers["x-timestamp"] = stamp
        request.headers["x-signature"] = sign(
            self.secret, request.method or "GET", path, stamp, payload
        )
        return request


@pytest.fixture(scope="module")
def platform(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """Both services for this module, on the session Redis (emptied first)."""
    redis_py.Redis.from_url(redis_server.url).flushall()
    with live_platform(redis_server.url, tmp_path_factory.mktemp("live-openapi")) as running:
        yield running


@pytest.fixture(scope="module")
def k2_account(platform: Platform) -> tuple[str, str]:
    username, password = f"oas_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    create_k2_client(platform.env, username, password)
    return username, password


@pytest.fixture(scope="module")
def k2_client(platform: Platform, k2_account: tuple[str, str]) -> K2Client:
    return K2Client(platform.ussd_url, *k2_account, timeout=10)


def _operations() -> list[tuple[str, str]]:
    """(label, which service) for every operation; health is checked on both services."""
    found = []
    for result in SCHEMA.get_all_operations():
        operation = result.ok()
        if operation.path in ("/healthz", "/readyz"):
            found += [(operation.label, "ussd"), (operation.label, "sabong")]
        else:
            service = "ussd" if operation.path.startswith(K2_PREFIXES) else "sabong"
            found.append((operation.label, service))
    return sorted(found)


def _k2_auth(case: Case, client: K2Client) -> dict[str, str]:
    """The credential the operation's security scheme names, fresh for this request."""
    schemes = {
        name
        for requirement in case.operation.definition.raw.get("security", [])
        for name in requirement
    }
    if "k2ServiceId" in schemes:
        return {"Authorization": f"Bearer {client.generate_service_id()}"}
    if "k2LoginJwt" in schemes:
        if isinstance(case.body, dict) and "service_id" in case.body:
            case.body["service_id"] = client.generate_service_id()
        return {"Authorization": f"Bearer {client.login_token()}"}
    return {}


@pytest.mark.parametrize(("label", "service"), _operations())
def test_live_responses_conform(
    label: str, service: str, platform: Platform, k2_client: K2Client
) -> None:
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None
    base_url = platform.ussd_url if service == "ussd" else platform.sabong_url
    signer = SabongSigner(platform.sabong_secret)
    seen_statuses: list[int] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Case) -> None:
        if service == "ussd":
            response = case.call(base_url=base_url, headers=_k2_auth(case, k2_client), timeout=15)
        else:
            response = case.call(base_url=base_url, auth=signer, timeout=15)
        seen_statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    exercise()
    assert seen_statuses  # the operation really was called


def _operation(label: str) -> Any:
    found = SCHEMA.find_operation_by_label(label)
    assert found is not None, label
    return found


def _conforms(label: str, response: requests.Response, status: int, **case: Any) -> None:
    """Check a hand-made request's response against the document, and its status."""
    assert response.status_code == status, response.text[:300]
    _operation(label).Case(**case).validate_response(response, checks=CONFORMANCE_CHECKS)


def test_k2_documented_answers_beyond_random_inputs(
    platform: Platform, k2_account: tuple[str, str], k2_client: K2Client
) -> None:
    url = platform.ussd_url
    username, password = k2_account
    login = requests.post(
        f"{url}/api/auth/login", json={"username": username, "password": password}, timeout=15
    )
    _conforms("POST /api/auth/login", login, 200)
    login_jwt = login.json()["data"]["token"]
    service_id = k2_client.generate_service_id()
    as_login = {"Authorization": f"Bearer {login_jwt}"}
    as_service = {"Authorization": f"Bearer {service_id}"}

    wrong_type = requests.post(
        f"{url}/api/clients/generate-service-id", headers=as_service, timeout=15
    )
    _conforms("POST /api/clients/generate-service-id", wrong_type, 401)
    not_json = requests.post(
        f"{url}/api/clients/generate-service-id",
        data=b"{oops",
        headers={**as_login, "Content-Type": "application/json"},
        timeout=15,
    )
    _conforms("POST /api/clients/generate-service-id", not_json, 400)
    missing = requests.post(
        f"{url}/api/clients/generate-api-key", json={}, headers=as_login, timeout=15
    )
    _conforms("POST /api/clients/generate-api-key", missing, 400)
    bogus = requests.post(
        f"{url}/api/clients/generate-api-key",
        json={"service_id": "x.y.z"},
        headers=as_login,
        timeout=15,
    )
    _conforms("POST /api/clients/generate-api-key", bogus, 403)
    login_as_service = requests.get(f"{url}/api/clients/me", headers=as_login, timeout=15)
    _conforms("GET /api/clients/me", login_as_service, 401)
    requests.post(f"{url}/api/clients/revoke-service-id", headers=as_service, timeout=15)
    revoked = requests.get(f"{url}/api/clients/me", headers=as_service, timeout=15)
    _conforms("GET /api/clients/me", revoked, 401)


def test_sabong_login_link_flow_conforms(platform: Platform) -> None:
    url = platform.sabong_url
    issued = SabongClient(url, platform.sabong_secret).generate_auth_token(
        f"OAS_{uuid.uuid4().hex[:8]}", "oasuser", "OAS User", "2001:db8::1"
    )
    token = issued["token"]
    browser = requests.Session()
    page = browser.get(f"{url}/login/{token}", timeout=15)
    _conforms("GET /login/{token}", page, 200, path_parameters={"token": token})
    signed_in = browser.post(f"{url}/login/{token}", allow_redirects=False, timeout=15)
    _conforms("POST /login/{token}", signed_in, 303, path_parameters={"token": token})
    _conforms("GET /api/v1/me", browser.get(f"{url}/api/v1/me", timeout=15), 200)
    _conforms("GET /me", browser.get(f"{url}/me", allow_redirects=False, timeout=15), 200)
    used = browser.get(f"{url}/login/{token}", timeout=15)
    _conforms("GET /login/{token}", used, 410, path_parameters={"token": token})
    _conforms("POST /logout", browser.post(f"{url}/logout", allow_redirects=False, timeout=15), 303)
    _conforms("GET /api/v1/me", browser.get(f"{url}/api/v1/me", timeout=15), 401)


def test_sabong_documented_errors(platform: Platform) -> None:
    url = f"{platform.sabong_url}/api/v1/generate-auth-token"
    label = "POST /api/v1/generate-auth-token"
    signer = SabongSigner(platform.sabong_secret)
    invalid = requests.post(
        url, json={"clientId": "C", "ipAddress": "nope"}, auth=signer, timeout=15
    )
    _conforms(label, invalid, 400)
    assert set(invalid.json()["data"]["errors"]) == {"username", "displayName", "ipAddress"}
    not_json = requests.post(
        url, data=b"[1,2]", auth=signer, timeout=15, headers={"Content-Type": "application/json"}
    )
    _conforms(label, not_json, 400)
    unsigned = requests.post(url, json={"clientId": "C"}, timeout=15)
    _conforms(label, unsigned, 401)
    assert unsigned.headers["X-Auth-Error"] == "missing_headers"
    wrong = requests.post(url, json={"clientId": "C"}, auth=SabongSigner("wrong"), timeout=15)
    _conforms(label, wrong, 401)


def test_sabong_wallet_answers_conform(platform: Platform, db: Any, database_url: str) -> None:
    seed_user(db, "OAS_WALLET", balance="10.00")
    url = platform.sabong_url
    signer = SabongSigner(platform.sabong_secret)

    def post(path: str, body: dict[str, Any]) -> requests.Response:
        body = {**body, "requestId": uuid.uuid4().hex}  # unique: no replay within a second
        return requests.post(url + path, json=body, auth=signer, timeout=15)

    def get(path: str, **params: str) -> requests.Response:
        params["requestId"] = uuid.uuid4().hex
        return requests.get(url + path, params=params, auth=signer, timeout=15)

    credit, debit = "POST /api/v1/credit-balance", "POST /api/v1/debit-balance"
    applied = post("/api/v1/credit-balance", {"clientId": "OAS_WALLET", "amount": "0.07",
                                              "reference": "oas-1"})  # fmt: skip
    _conforms(credit, applied, 200)
    again = post("/api/v1/credit-balance", {"clientId": "OAS_WALLET", "amount": 0.07,
                                            "reference": "oas-1"})  # fmt: skip
    _conforms(credit, again, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    conflict = post("/api/v1/credit-balance", {"clientId": "OAS_WALLET", "amount": 1,
                                               "reference": "oas-1"})  # fmt: skip
    _conforms(credit, conflict, 409)
    _conforms(debit, post("/api/v1/debit-balance", {"clientId": "OAS_WALLET", "amount": 1}), 200)
    short = post("/api/v1/debit-balance", {"clientId": "OAS_WALLET", "amount": 100})
    _conforms(debit, short, 400)
    assert short.json()["message"] == "Insufficient balance"
    unknown = post("/api/v1/debit-balance", {"clientId": "NOBODY", "amount": 1})
    _conforms(debit, unknown, 404)
    _conforms("GET /api/v1/get-balance", get("/api/v1/get-balance", clientId="OAS_WALLET"), 200)
    history = get("/api/v1/get-transactions", clientId="OAS_WALLET", type="credit", limit="1")
    _conforms("GET /api/v1/get-transactions", history, 200)
    assert history.json()["data"]["data"][0]["amount"] == "0.07"
    bad = get("/api/v1/get-transactions", clientId="OAS_WALLET", dateFrom="2026-02-02",
              dateTo="2026-02-01")  # fmt: skip
    _conforms("GET /api/v1/get-transactions", bad, 400)
    assert reconcile_exit(database_url) == (0, "")


def test_a_response_that_breaks_the_document_is_caught(platform: Platform) -> None:
    """The conformance check must be able to fail: a stricter copy rejects a real answer."""
    stricter = json.loads(json.dumps(DOC))
    stricter["components"]["schemas"]["Health"]["required"].append("uptime")
    operation = schemathesis.openapi.from_dict(stricter).find_operation_by_label("GET /healthz")
    assert operation is not None
    response = requests.get(f"{platform.sabong_url}/healthz", timeout=15)
    with pytest.raises(FailureGroup) as caught:
        operation.Case().validate_response(response, checks=CHECKS)
    assert "uptime" in str(caught.value)


# -- errors made by the gateway ---------------------------------------------------------

GATEWAY_CASES = [
    # (family label used for validation, path, the upstream that is slow (the other is down))
    ("POST /api/clients/generate-service-id", "/api/clients/generate-service-id", "ussd"),
    ("POST /api/v1/generate-auth-token", "/api/v1/generate-auth-token", "sabong"),
]


@contextlib.contextmanager
def _gateway(redis_url: str, tmp_path: Path, slow: str) -> Iterator[str]:
    """The real gateway: `slow` service answers too late, the other refuses connections."""

    def too_late(seen: Recorded) -> Reply:
        time.sleep(2)
        return json_reply(200, {})

    with scripted_server(too_late) as slow_server:
        closed = f"127.0.0.1:{free_port()}"
        slow_target = slow_server.url.removeprefix("http://")
        upstreams = {"ussd": closed, "sabong": closed, slow: slow_target}
        env = service_env(
            redis_url,
            tmp_path / "gateway.env",
            GATEWAY_USSD_UPSTREAMS=upstreams["ussd"],
            GATEWAY_SABONG_UPSTREAMS=upstreams["sabong"],
            GATEWAY_READ_TIMEOUT="0.5",
            GATEWAY_RATE_LIMIT="4",
        )
        with real_gateway(env, tmp_path) as base:
            yield base


@pytest.mark.parametrize(("label", "path", "slow"), GATEWAY_CASES)
def test_gateway_made_errors_conform(
    label: str, path: str, slow: str, redis_url: str, tmp_path: Path
) -> None:
    other = "sabong" if slow == "ussd" else "ussd"
    other_path = next(p for _, p, s in GATEWAY_CASES if s == other)
    other_label = next(lbl for lbl, _, s in GATEWAY_CASES if s == other)
    with _gateway(redis_url, tmp_path, slow) as base:
        _conforms(label, requests.post(base + path, timeout=10), 504)
        _conforms(other_label, requests.post(base + other_path, timeout=10), 502)
        huge = b'{"x":"' + b"a" * 70_000 + b'"}'
        too_big = requests.post(base + path, data=huge, timeout=10,
                                headers={"Content-Type": "application/json"})  # fmt: skip
        _conforms(label, too_big, 413)
        statuses = []
        for _ in range(10):  # the limit is 4 a minute: one of these must be refused
            answer = requests.post(base + path, timeout=10)
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                _conforms(label, answer, 429)
                assert int(answer.headers["Retry-After"]) >= 1
                break
        assert statuses[-1] == 429, statuses
