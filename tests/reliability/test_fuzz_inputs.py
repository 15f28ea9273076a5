"""Hand-made bad input to every endpoint of both APIs, through the gateway.

Malformed signature headers, junk header values, huge headers and bodies, invalid
UTF-8, deeply nested and odd JSON, random paths and methods. Every answer must be below
500, free of stack traces, in its family's envelope (HTML only on the browser paths), and
prompt (no request may hang the gateway or a worker).

Random cases stay inside what both the gateway and gunicorn accept; what lies between
them is tested on its own (test_requests_gunicorn_refuses_answer_in_envelope).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.signing import sign

from .conftest import record_figures
from .platform import Platform, dump
from .traffic import Partner
from .wire import Answer, envelope_problems, raw_request, send_raw

PROMPT_SECONDS = 3.0  # a scrypt login on a busy 2-core box included
GATEWAY_MAX_BODY = 65536
SIGNED_PATH = "/api/v1/generate-auth-token"
VALID_TOKEN_BODY = {
    "clientId": "FUZZ_001",
    "username": "fuzzuser",
    "displayName": "Fuzz User",
    "ipAddress": "192.0.2.1",
}
AUTH_ERROR_REASONS = {
    "missing_headers",
    "timestamp_invalid",
    "timestamp_expired",
    "signature_mismatch",
    "replayed",
}
FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases every run: a failure reproduces, a pass stays a pass
    suppress_health_check=list(HealthCheck),
)

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class Endpoint:
    """One operation of either API, and the credential that gets a request past auth."""

    method: str
    path: str
    auth: str  # "none", "login", "service", "own-service" (a fresh Service ID), "signed"

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = (
    Endpoint("POST", "/api/auth/login", "none"),
    Endpoint("POST", "/api/clients/generate-service-id", "login"),
    Endpoint("POST", "/api/clients/generate-api-key", "login"),
    Endpoint("GET", "/api/clients/me", "service"),
    Endpoint("POST", "/api/clients/revoke-service-id", "own-service"),
    Endpoint("POST", SIGNED_PATH, "signed"),
    Endpoint("GET", "/api/v1/me", "none"),
    Endpoint("GET", "/login/" + "A" * 64, "none"),
    Endpoint("POST", "/login/" + "A" * 64, "none"),
    Endpoint("GET", "/login/", "none"),
    Endpoint("GET", "/me", "none"),
    Endpoint("POST", "/logout", "none"),
)
POST_ENDPOINTS = tuple(e for e in ENDPOINTS if e.method == "POST")
PREFIXES = ("/api/auth/", "/api/clients/", "/api/v1/", "/login/", "/me/", "/logout/", "/")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND")


class Tally:
    """Requests and statuses of one module, for its figures line."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.slowest = 0.0

    def add(self, answer: Answer) -> Answer:
        self.statuses[answer.status] += 1
        self.slowest = max(self.slowest, answer.elapsed)
        return answer


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    counts = Tally()
    started = time.monotonic()
    yield counts
    by_status = " ".join(f"{k}={v}" for k, v in sorted(counts.statuses.items()))
    record_figures(
        request.config,
        f"[fuzz-inputs] requests={sum(counts.statuses.values())} in "
        f"{time.monotonic() - started:.0f}s slowest={counts.slowest * 1000:.0f}ms; "
        f"by status: {by_status}",
    )


class Sender:
    """Sends raw requests to the gateway with valid credentials for the endpoint."""

    def __init__(self, platform: Platform, partner: Partner, tally: Tally) -> None:
        self.platform = platform
        self.partner = partner
        self.tally = tally

    def credentials(
        self, endpoint: Endpoint, body: bytes, path: str | None = None
    ) -> list[tuple[bytes, bytes]]:
        if endpoint.auth == "login":
            return [(b"Authorization", b"Bearer " + self.partner.login_jwt.encode())]
        if endpoint.auth == "service":
            return [(b"Authorization", b"Bearer " + self.partner.service_id.encode())]
        if endpoint.auth == "own-service":
            return [(b"Authorization", b"Bearer " + self.fresh_service_id().encode())]
        if endpoint.auth == "signed":
            stamp = str(int(time.time()))
            signature = sign(
                self.platform.sabong_secret, endpoint.method, path or endpoint.path, stamp, body
            )
            return [(b"x-timestamp", stamp.encode()), (b"x-signature", signature.encode())]
        return []

    def fresh_service_id(self) -> str:
        """A Service ID of its own, for revoke-service-id (the shared one must stay valid)."""
        headers = [(b"Authorization", b"Bearer " + self.partner.login_jwt.encode())]
        issued = self.send("POST", b"/api/clients/generate-service-id", headers)
        assert issued.status == 201, issued.brief()
        service_id: str = issued.json()["data"]["SERVICE_ID"]
        return service_id

    def send(
        self,
        method: str,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
    ) -> Answer:
        data = raw_request(method, target, headers, body)
        return self.tally.add(send_raw(self.platform.port, data, timeout=15))

    def send_to(
        self, endpoint: Endpoint, body: bytes = b"", extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> Answer:
        """`body` to `endpoint`, authenticated (signed over exactly `body`), plus `extra`."""
        headers = [(b"Content-Type", b"application/json"), *self.credentials(endpoint, body)]
        return self.send(endpoint.method, endpoint.path.encode(), [*headers, *extra], body)


@pytest.fixture(scope="module")
def sender(shared_platform: Platform, shared_partner: Partner, tally: Tally) -> Sender:
    return Sender(shared_platform, shared_partner, tally)


def assert_sound(answer: Answer, bound: float = PROMPT_SECONDS) -> None:
    """No 5xx, no stack trace, the right envelope, and in time."""
    problems = envelope_problems(answer)
    assert not problems, f"{problems}: {answer.brief()}"
    assert answer.elapsed < bound, f"slow: {answer.brief()}"


# -- header values ----------------------------------------------------------------------

# Field values HTTP allows (RFC 9110 5.5: visible characters, space, tab, obs-text):
# control characters are refused by the gateway's parser, which is tested on its own
# (test_gateway_refusals_on_sabong_paths_use_the_sabong_envelope).
CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])
header_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=64)


def _without_controls(data: bytes) -> bytes:
    return data.translate(None, CONTROL_BYTES)


junk_values = st.one_of(
    st.just(""),
    st.just(" "),
    header_text,
    st.binary(max_size=64).map(_without_controls),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text("0123456789abcdefABCDEF", min_size=60, max_size=70),
    st.sampled_from(["Bearer", "Bearer ", "Bearer a.b.c", "Basic Zm9vOmJhcg==", "0x1F", "1e9"]),
    st.integers(min_value=100, max_value=4000).map(lambda n: "z" * n),
)


def _encoded(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


@FUZZ_SETTINGS
@given(signature=junk_values, timestamp=junk_values, upper=st.booleans())
def test_fuzz_signature_headers(
    sender: Sender, signature: str | bytes, timestamp: str | bytes, upper: bool
) -> None:
    body = dump({**VALID_TOKEN_BODY, "username": f"fuzz{time.monotonic_ns()}"})
    headers = [
        (b"Content-Type", b"application/json"),
        (b"x-signature", _encoded(signature)),
        (b"x-timestamp", _encoded(timestamp)),
    ]
    if upper and isinstance(timestamp, str) and timestamp.strip().isdigit():
        # A correct signature in upper-case hex over this (maybe odd) timestamp.
        correct = sign(sender.platform.sabong_secret, "POST", SIGNED_PATH, timestamp, body)
        headers[1] = (b"x-signature", correct.upper().encode())
    answer = sender.send("POST", SIGNED_PATH.encode(), headers, body)
    assert_sound(answer)
    assert answer.status in (200, 401), answer.brief()
    if answer.status == 401:
        assert answer.headers.get("x-auth-error") in AUTH_ERROR_REASONS, answer.headers


def test_signature_header_edge_cases(sender: Sender) -> None:
    """The named cases: empty, huge, unicode, negative, float, expired, upper-case hex."""
    now = int(time.time())
    body = dump({**VALID_TOKEN_BODY, "username": "edge"})

    def signed(stamp: str) -> str:
        return sign(sender.platform.sabong_secret, "POST", SIGNED_PATH, stamp, body)

    cases: list[tuple[str, bytes, bytes, int]] = [
        ("both empty", b"", b"", 401),
        ("huge signature", b"a" * 4000, str(now).encode(), 401),
        ("unicode signature", ("é" * 64).encode(), str(now).encode(), 401),
        ("negative timestamp", signed("-1").encode(), b"-1", 401),
        ("float timestamp", signed(f"{now}.0").encode(), f"{now}.0".encode(), 401),
        ("expired timestamp", signed(str(now - 301)).encode(), str(now - 301).encode(), 401),
        ("future timestamp", signed(str(now + 301)).encode(), str(now + 301).encode(), 401),
        ("huge timestamp", signed("9" * 400).encode(), b"9" * 400, 401),
        ("hex timestamp", signed(hex(now)).encode(), hex(now).encode(), 401),
        ("upper-case hex", signed(str(now)).upper().encode(), str(now).encode(), 200),
    ]
    for name, signature, stamp, expected in cases:
        headers = [(b"Content-Type", b"application/json"), (b"x-signature", signature)]
        answer = sender.send(
            "POST", SIGNED_PATH.encode(), [*headers, (b"x-timestamp", stamp)], body
        )
        assert_sound(answer)
        assert answer.status == expected, f"{name}: {answer.brief()}"


@FUZZ_SETTINGS
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    name=st.sampled_from(
        [
            "Authorization",
            "x-signature",
            "x-timestamp",
            "Content-Type",
            "Cookie",
            "X-Request-ID",
            "Accept",
            "X-Forwarded-For",
            "Host",
            "Expect",
        ]
    ),
    value=junk_values,
)
def test_fuzz_junk_header_on_every_endpoint(
    sender: Sender, endpoint: Endpoint, name: str, value: str | bytes
) -> None:
    body = dump(VALID_TOKEN_BODY) if endpoint.method == "POST" else b""
    # The junk replaces a header of the same name (one Host, one Authorization...).
    credentials = sender.credentials(endpoint, body)
    headers = [(n, v) for n, v in credentials if n.lower() != name.lower().encode()]
    answer = sender.send(
        endpoint.method,
        endpoint.path.encode(),
        [*headers, (name.encode(), _encoded(value))],
        body,
    )
    assert_sound(answer)


# -- sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.label)
def test_huge_headers_are_refused_promptly(sender: Sender, endpoint: Endpoint) -> None:
    """Over the gateway's head limit: 431 at once, no 5xx, no hang."""
    one_huge = sender.send(endpoint.method, endpoint.path.encode(), [(b"X-Big", b"a" * 65536)])
    many = [(b"X-H%d" % i, b"v" * 40) for i in range(1200)]
    too_many = sender.send(endpoint.method, endpoint.path.encode(), many)
    for answer in (one_huge, too_many):
        assert answer.status == 431, answer.brief()
        assert answer.elapsed < 2.0, answer.brief()
        assert not [p for p in envelope_problems(answer) if "Sabong envelope" not in p]


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.path.startswith("/api/v1/")], ids=lambda e: e.label
)
def test_gateway_refusals_on_sabong_paths_use_the_sabong_envelope(
    sender: Sender, endpoint: Endpoint
) -> None:
    huge = sender.send(endpoint.method, endpoint.path.encode(), [(b"X-Big", b"a" * 65536)])
    bad_target = sender.send(endpoint.method, endpoint.path.encode() + b"\xff\xfe")
    control = sender.send(endpoint.method, endpoint.path.encode(), [(b"X-A", b"a\x01b")])
    for answer in (huge, bad_target, control):
        assert answer.status in (400, 431), answer.brief()
        assert not envelope_problems(answer), f"{envelope_problems(answer)}: {answer.brief()}"


GUNICORN_REFUSES = {
    "one 16 KiB header (gunicorn: 8190 bytes per field)": (
        b"/api/clients/me",
        [(b"X-Big", b"a" * 16384)],
    ),
    "150 headers (gunicorn: 100)": (b"/api/v1/me", [(b"X-H%d" % i, b"v") for i in range(150)]),
    "a 5000-byte path (gunicorn: 4094-byte request line)": (b"/api/clients/" + b"a" * 5000, []),
    "two Host headers (gunicorn: 400)": (b"/api/v1/me", [(b"Host", b"a"), (b"Host", b"b")]),
}


@pytest.mark.parametrize("case", GUNICORN_REFUSES, ids=list(GUNICORN_REFUSES))
def test_requests_gunicorn_refuses_answer_in_envelope(sender: Sender, case: str) -> None:
    target, headers = GUNICORN_REFUSES[case]
    answer = sender.send("GET", target, headers)
    assert_sound(answer)


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS, ids=lambda e: e.label)
def test_bodies_over_the_limit_get_413(sender: Sender, endpoint: Endpoint) -> None:
    over = b'{"x":"' + b"a" * GATEWAY_MAX_BODY + b'"}'
    declared_huge = raw_request(endpoint.method, endpoint.path.encode(), [], b"{}").replace(
        b"Content-Length: 2", b"Content-Length: 10000000000"
    )
    chunks = b"".join(b"%x\r\n%s\r\n" % (8192, b"a" * 8192) for _ in range(9)) + b"0\r\n\r\n"
    chunked = (
        f"{endpoint.method} {endpoint.path} HTTP/1.1\r\nHost: x\r\n".encode()
        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunks
    )
    answers = [
        sender.send_to(endpoint, over),
        sender.tally.add(send_raw(sender.platform.port, declared_huge)),
        sender.tally.add(send_raw(sender.platform.port, chunked)),
    ]
    for answer in answers:
        assert answer.status == 413, answer.brief()
        assert_sound(answer, bound=2.0)
    at_limit = sender.send_to(endpoint, b'{"x":"' + b"a" * (GATEWAY_MAX_BODY - 8) + b'"}')
    assert at_limit.status != 413, "a body of exactly the limit was refused"
    assert_sound(at_limit)


# -- bodies -------------------------------------------------------------------------------


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


invalid_utf8 = st.one_of(
    st.binary(min_size=1, max_size=200).filter(_not_utf8),
    st.builds(
        lambda prefix, junk: b'{"username":"' + prefix.encode() + junk + b'","password":"x"}',
        st.text(max_size=10),
        st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]),
    ),
)


@FUZZ_SETTINGS
@given(endpoint=st.sampled_from(POST_ENDPOINTS), body=invalid_utf8)
def test_fuzz_invalid_utf8_bodies(sender: Sender, endpoint: Endpoint, body: bytes) -> None:
    answer = sender.send_to(endpoint, body)
    assert_sound(answer)
    if endpoint.path in ("/api/auth/login", SIGNED_PATH):
        assert answer.status == 400, answer.brief()


NESTED = {
    "60k open brackets": b"[" * 60000,
    "12k open objects": b'{"a":' * 12000,
    "5k closed brackets": b"[" * 5000 + b"]" * 5000,
    "2k closed objects": b'{"a":' * 2000 + b"1" + b"}" * 2000,
    "nested under a field": b'{"clientId":' + b"[" * 3000 + b"]" * 3000 + b"}",
}


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS, ids=lambda e: e.label)
def test_deeply_nested_json(sender: Sender, endpoint: Endpoint) -> None:
    # 100k brackets are over the gateway's body limit: refused there, cleanly.
    too_big = sender.send_to(endpoint, b"[" * 100_000)
    assert too_big.status == 413, too_big.brief()
    assert_sound(too_big)
    # Under the limit, the services' JSON parsers meet the nesting themselves.
    for name, body in NESTED.items():
        answer = sender.send_to(endpoint, body)
        assert_sound(answer)
        if endpoint.path in ("/api/auth/login", SIGNED_PATH):
            assert answer.status == 400, f"{name}: {answer.brief()}"


ODD_JSON = [
    b'{"username": NaN, "password": "x"}',
    b'{"expiration": Infinity}',
    b'{"expiration": -Infinity, "clientId": "C"}',
    b'{"username":"a","username":"b","password":"c","password":"d"}',
    b'{"expiration": 1e400}',
    b'{"expiration": ' + b"1" * 5000 + b"}",
    b'{"username": "\\ud800", "password": "\\udfff"}',
    b'\xef\xbb\xbf{"username":"a","password":"b"}',
    b"null",
    b"[]",
    b'""',
    b"0",
    b"-0.0e-0",
    b"{}",
    b'{"service_id": null}',
    b'{"service_id": ["x"]}',
    b'{"service_id": "' + b"a" * 5000 + b'"}',
    b'{"clientId":{"$ne":1},"username":[],"displayName":{},"ipAddress":1,"expiration":true}',
    b'{"clientId":"C","username":"u","displayName":"d","ipAddress":"::ffff:1.2.3.4","expiration":"5"}',
    b'{"clientId":"C","username":"u","displayName":"d","ipAddress":"1.2.3.4","expiration":5.5}',
    b'{"clientId":"C","username":"u","displayName":"d","ipAddress":"1.2.3.4","expiration":"1e3"}',
    b'{"clientId":"C","username":"u","displayName":"d","ipAddress":"1.2.3.4","expiration":-1}',
    b'{"clientId":"C\\u0000","username":"u","displayName":"d","ipAddress":"fe80::1%eth0"}',
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
token_fields = st.fixed_dictionaries(
    {},
    optional={
        "clientId": json_values,
        "username": json_values,
        "displayName": json_values,
        "ipAddress": json_values,
        "expiration": json_values,
        "password": json_values,
        "service_id": json_values,
    },
)


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS, ids=lambda e: e.label)
def test_odd_json(sender: Sender, endpoint: Endpoint) -> None:
    for body in ODD_JSON:
        assert_sound(sender.send_to(endpoint, body))


@FUZZ_SETTINGS
@given(endpoint=st.sampled_from(POST_ENDPOINTS), document=token_fields)
def test_fuzz_json_bodies(sender: Sender, endpoint: Endpoint, document: dict[str, object]) -> None:
    # json.dumps writes NaN and Infinity for such floats: odd JSON on purpose.
    body = json.dumps(document).encode("utf-8")
    answer = sender.send_to(endpoint, body)
    assert_sound(answer)


# -- paths and methods --------------------------------------------------------------------


@FUZZ_SETTINGS
@given(
    prefix=st.sampled_from(PREFIXES),
    suffix=st.text(max_size=60),
    method=st.sampled_from(METHODS),
    with_body=st.booleans(),
)
def test_fuzz_random_paths(
    sender: Sender, prefix: str, suffix: str, method: str, with_body: bool
) -> None:
    path = prefix + urllib.parse.quote(suffix, safe="/;=&?")
    body = b'{"a":1}' if with_body else b""
    answer = sender.send(
        method, path.encode("ascii"), [(b"Content-Type", b"application/json")], body
    )
    assert_sound(answer)


def test_fuzz_dot_segments_and_encodings(sender: Sender) -> None:
    """Traversal and encoding tricks: refused or routed, never a 5xx or a stack trace."""
    targets = [
        b"/api/v1/../../etc/passwd",
        b"/api/v1/%2e%2e/%2e%2e/api/auth/login",
        b"/login/..%2f..%2fapi%2fclients%2fme",
        b"//api/v1/me",
        b"/api/v1/me;x=1",
        b"/api/v1/me?" + b"a=" * 1000,
        b"/me/%00",
        b"/api/clients/me#frag",
        b"/api/auth/login%20",
        b"*",
    ]
    for target in targets:
        answer = sender.send("GET", target)
        assert answer.status != 0, answer.brief()
        assert answer.status < 500 and b"Traceback" not in answer.body, answer.brief()
