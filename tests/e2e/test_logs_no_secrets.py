"""A full run as `make run` does it: every log line is JSON with a request id, no
password, secret, token, Service ID, cookie or signature of the run appears in any log,
and each component's /metrics counted the flow."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from prometheus_client.parser import text_string_to_metric_families

from shared.config import PROJECT_ROOT, SECRET_NAMES
from shared.observability import TALLY_FLUSH_SECONDS
from shared.signing import sign

from .conftest import Platform

K2_USERNAME = "log-audit"
K2_PASSWORD = "Log-Audit-Pass-" + uuid.uuid4().hex[:12]
TOKEN_PATH = "/api/v1/generate-auth-token"
SESSION_COOKIE = "sabong_session"
# Logs of the components written by our code (and gunicorn's through scripts.gunicorn_hooks).
JSON_LOGS = ("ussd.log", "ussd-login.log", "sabong.log", "gateway.log")
# Not ours: Redis writes its own plain-text log format.
FOREIGN_LOGS = ("redis.log",)


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class Flow:
    """Everything the run handed out or was given that must never be logged."""

    secrets: dict[str, str] = field(default_factory=dict)
    request_ids: set[str] = field(default_factory=set)

    def keep(self, name: str, value: str | None) -> str:
        assert value, f"the flow produced no {name}"
        self.secrets[name] = value
        return value


def call(
    platform: Platform,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    flow: Flow | None = None,
) -> Answer:
    """One request to the gateway on a new connection; redirects are not followed."""
    sent = dict(headers or {})
    if flow is not None:
        request_id = f"audit-{len(flow.request_ids)}-{uuid.uuid4().hex[:8]}"
        flow.request_ids.add(request_id)
        sent["X-Request-ID"] = request_id
    conn = http.client.HTTPConnection("127.0.0.1", platform.ports.gateway, timeout=15)
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


def json_headers(token: str | None = None) -> dict[str, str]:
    """Content-Type JSON, and a Bearer token when given."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def create_k2_client(platform: Platform) -> None:
    """The admin CLI, as an operator runs it against the run's Redis."""
    env = {**platform.env, "REDIS_URL": f"redis://127.0.0.1:{platform.ports.redis}/0"}
    argv = [sys.executable, "-m", "services.ussd", "create-client"]
    result = subprocess.run(
        [*argv, "--username", K2_USERNAME, "--password", K2_PASSWORD],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def k2_flow(platform: Platform, flow: Flow) -> None:
    """Login, Service ID, /me, API key, revoke; and one wrong password."""
    flow.keep("K2 password", K2_PASSWORD)
    login = json.dumps({"username": K2_USERNAME, "password": K2_PASSWORD}).encode()
    answer = call(platform, "POST", "/api/auth/login", login, json_headers(), flow)
    assert answer.status == 200, answer.body
    jwt = flow.keep("login JWT", answer.json()["data"]["token"])
    flow.keep("login JWT signature", jwt.rsplit(".", 1)[1])

    answer = call(
        platform, "POST", "/api/clients/generate-service-id", None, json_headers(jwt), flow
    )
    assert answer.status == 201, answer.body
    service_id = flow.keep("SERVICE_ID", answer.json()["data"]["SERVICE_ID"])
    flow.keep("SERVICE_ID signature", service_id.rsplit(".", 1)[1])

    answer = call(platform, "GET", "/api/clients/me", None, json_headers(service_id), flow)
    assert answer.status == 200, answer.body
    flow.keep("serviceId", answer.json()["data"]["serviceId"])

    key_body = json.dumps({"service_id": service_id}).encode()
    answer = call(
        platform, "POST", "/api/clients/generate-api-key", key_body, json_headers(jwt), flow
    )
    assert answer.status == 201, answer.body
    flow.keep("API key id", answer.json()["data"]["id"])

    answer = call(
        platform, "POST", "/api/clients/revoke-service-id", None, json_headers(service_id), flow
    )
    assert answer.status == 200, answer.body

    wrong = json.dumps({"username": K2_USERNAME, "password": K2_PASSWORD + "-wrong"}).encode()
    flow.keep("wrong K2 password", K2_PASSWORD + "-wrong")
    answer = call(platform, "POST", "/api/auth/login", wrong, json_headers(), flow)
    assert answer.status == 401, answer.body


def signed(secret: str, body: bytes, flow: Flow, name: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = flow.keep(name, sign(secret, "POST", TOKEN_PATH, stamp, body))
    return {"Content-Type": "application/json", "x-timestamp": stamp, "x-signature": signature}


def sabong_flow(platform: Platform, flow: Flow, partner_secret: str) -> None:
    """Signed token, login link (GET, POST), /me, /api/v1/me, logout; a bad signature."""
    body = json.dumps(
        {
            "clientId": "LOG_AUDIT_001",
            "username": "logaudit",
            "displayName": "Log Audit",
            "ipAddress": "192.0.2.77",
        }
    ).encode()
    headers = signed(partner_secret, body, flow, "x-signature")
    answer = call(platform, "POST", TOKEN_PATH, body, headers, flow)
    assert answer.status == 200, answer.body
    data = answer.json()["data"]
    token = flow.keep("Sabong login token", data["token"])
    digest = hashlib.sha256(token.encode()).digest()
    flow.keep("SHA-256 of the token (hex)", digest.hex())
    flow.keep(
        "SHA-256 of the token (base64url)", base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    )
    link_path = "/login/" + token
    assert data["loginLink"] == platform.gateway + link_path

    assert call(platform, "GET", link_path, flow=flow).status == 200
    answer = call(platform, "POST", link_path, flow=flow)
    assert answer.status == 303, answer.body
    set_cookie = answer.header("Set-Cookie") or ""
    cookie = flow.keep("session cookie", set_cookie.split(";", 1)[0].split("=", 1)[1])
    signed_in = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    assert call(platform, "GET", "/me", headers=signed_in, flow=flow).status == 200
    assert call(platform, "GET", "/api/v1/me", headers=signed_in, flow=flow).status == 200
    assert call(platform, "POST", "/logout", headers=signed_in, flow=flow).status == 303

    forged = signed(partner_secret + "-not-it", body, flow, "bad x-signature")
    answer = call(platform, "POST", TOKEN_PATH, body, forged, flow)
    assert answer.status == 401, answer.body


def scrape(port: int) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """The /metrics text of the component on `port`, and its samples by name and labels."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        conn.close()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def check_flow_metrics(platform: Platform, secrets: dict[str, str]) -> None:
    """Each component counted the flow's events; no secret became a label value."""
    # Request counts reach /metrics through each worker's tally, folded in every second.
    time.sleep(2 * TALLY_FLUSH_SECONDS)
    ussd_text, ussd = scrape(platform.ports.ussd)
    # The gateway sends logins to the USSD login pool: their failures are counted there.
    login_text, login_pool = scrape(platform.ports.ussd_login)
    sabong_text, sabong = scrape(platform.ports.sabong)
    gateway_text, gateway = scrape(platform.ports.gateway)
    for text in (ussd_text, login_text, sabong_text, gateway_text):
        assert not leaks(text, secrets)  # names only, should it fail

    def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    assert sample(ussd, "k2_service_ids_issued_total") == 1
    assert sample(login_pool, "k2_login_failures_total", reason="bad_credentials") == 1
    assert sample(sabong, "sabong_login_tokens_issued_total") == 1
    assert sample(sabong, "sabong_login_tokens_consumed_total", outcome="ok") == 1
    assert sample(sabong, "sabong_signature_failures_total", reason="signature_mismatch") == 1
    route = {"service": "sabong", "route": "/login/<token>", "method": "POST", "status": "303"}
    assert sample(sabong, "http_requests_total", **route) == 1
    route = {"service": "gateway", "route": "/login/", "method": "POST", "status": "303"}
    assert sample(gateway, "http_requests_total", **route) == 1


def dotenv_secrets(platform: Platform) -> dict[str, str]:
    """Each development secret of the run's `.env` (each partner secret on its own)."""
    values = dotenv_values(platform.env["DOTENV_PATH"])
    found: dict[str, str] = {}
    for name in SECRET_NAMES:
        for index, item in enumerate(str(values[name] or "").split(",")):
            if item.strip():
                found[f"{name}[{index}]"] = item.strip()
    return found


def without_banner(stdout: str) -> str:
    """scripts.run's stdout minus the start-up banner (which shows the .env secrets)."""
    start = stdout.find("Partner auth platform is ready in")
    assert start >= 0, stdout
    end_marker = stdout.find("scripts.sabong_example", start)
    end = stdout.find("\n", end_marker)
    return stdout[:start] + (stdout[end:] if end >= 0 else "")


def log_files(var: Path) -> list[Path]:
    """Every log file the run wrote under its var directory."""
    return sorted(p for p in var.rglob("*.log") if p.is_file())


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


def check_json_lines(path: Path, request_ids: set[str]) -> set[str]:
    """Every line is a JSON object with a request id; the ids of the flow it mentions."""
    seen: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line[:200]}") from None
        assert isinstance(entry, dict), f"{path.name}:{number}"
        assert entry.get("request_id"), f"{path.name}:{number} has no request_id: {line[:200]}"
        if entry["request_id"] in request_ids:
            seen.add(entry["request_id"])
    return seen


def test_a_full_run_logs_json_lines_and_no_secret(platform: Platform) -> None:
    platform.start()
    platform.wait_ready()
    secrets = dotenv_secrets(platform)
    create_k2_client(platform)
    flow = Flow()
    k2_flow(platform, flow)
    sabong_flow(platform, flow, secrets["SABONG_CLIENT_SECRETS[0]"])
    check_flow_metrics(platform, {**flow.secrets, **secrets})
    status, _ = platform.stop()
    assert status == 0, platform.stderr()

    var = Path(platform.env["RUN_VAR_DIR"])
    logs = log_files(var)
    names = {p.name for p in logs}
    assert set(JSON_LOGS) <= names, names
    assert names <= set(JSON_LOGS) | set(FOREIGN_LOGS), f"unexpected log files: {names}"

    everything = {**flow.secrets, **secrets}
    # Named, not shown: a failure message must not print the secrets either.
    found = {str(p): leaks(p.read_text(errors="replace"), everything) for p in logs}
    # The metrics files hold label values: no secret may have become one.
    for path in (var / "metrics").rglob("*.db"):
        found[str(path)] = leaks(path.read_bytes().decode("latin-1"), everything)
    found["scripts.run stderr"] = leaks(platform.stderr(), everything)
    found["scripts.run stdout after the banner"] = leaks(
        without_banner(platform.stdout()), everything
    )
    # The banner may show the .env secrets, nothing the flow produced.
    found["scripts.run banner"] = leaks(platform.stdout(), flow.secrets)
    assert not {where: names for where, names in found.items() if names}

    seen_by: dict[str, set[str]] = {
        name: check_json_lines(var / "log" / name, flow.request_ids) for name in JSON_LOGS
    }
    # The client's request id travels through the gateway into the service's lines.
    assert seen_by["gateway.log"] == flow.request_ids
    services = ("ussd.log", "ussd-login.log", "sabong.log")
    assert set().union(*(seen_by[name] for name in services)) == flow.request_ids
    print(f"checked {len(everything)} secrets in {sorted(names)} and the run's output")
