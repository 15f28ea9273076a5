"""Sign and send one Sabong generate-auth-token request, the way a partner would.

    python -m scripts.sabong_example --client-id CLIENT_001

The signature covers the exact bytes that are POSTed: the body is serialised once and
those same bytes are both signed and sent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from gateway.settings import GatewaySettings
from services.sabong.settings import SabongSettings
from shared.config import load_settings
from shared.signing import sign

PATH = "/api/v1/generate-auth-token"
# The example talks to a local gateway: an http_proxy in the environment must not intercept it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parse_args(argv: Sequence[str] | None, default_base_url: str) -> argparse.Namespace:
    """Command-line options; every field of the request has a usable default."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--client-id", required=True, help="the partner's user id (clientId)")
    parser.add_argument("--username", default="player001")
    parser.add_argument("--display-name", default="Player One")
    parser.add_argument("--ip-address", default="127.0.0.1")
    parser.add_argument("--expiration", type=int, default=5, help="minutes (1..1440)")
    parser.add_argument("--base-url", default=default_base_url, help="the gateway's URL")
    return parser.parse_args(argv)


def request_body(args: argparse.Namespace) -> bytes:
    """The JSON body, serialised once, compactly, as UTF-8."""
    payload = {
        "clientId": args.client_id,
        "username": args.username,
        "displayName": args.display_name,
        "ipAddress": args.ip_address,
        "expiration": args.expiration,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_request(base_url: str, secret: str, body: bytes) -> urllib.request.Request:
    """A POST carrying `body` with x-timestamp and the x-signature over those bytes."""
    if not base_url.startswith(("http://", "https://")):
        raise SystemExit(f"--base-url must be an http(s) URL, got {base_url!r}")
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "x-timestamp": timestamp,
        "x-signature": sign(secret, "POST", PATH, timestamp, body),
    }
    url = base_url.rstrip("/") + PATH
    return urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310


def send(request: urllib.request.Request) -> tuple[int, Any]:
    """The status and decoded JSON (or text) of the answer, errors included."""
    try:
        with _OPENER.open(request, timeout=10) as response:
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def main(argv: Sequence[str] | None = None) -> int:
    """Send the request, print what was sent and what came back; 0 on a 2xx answer."""
    settings = load_settings()
    default_base_url = f"http://127.0.0.1:{settings.of(GatewaySettings).port}"
    args = parse_args(argv, default_base_url)
    secret = settings.of(SabongSettings).client_secrets[0]
    body = request_body(args)
    request = signed_request(args.base_url, secret, body)
    print(f"POST {request.full_url}")
    print(f"x-timestamp: {request.get_header('X-timestamp')}")
    print(f"x-signature: {request.get_header('X-signature')}")
    print(f"body: {body.decode('utf-8')}")
    try:
        status, answer = send(request)
    except OSError as exc:
        print(f"could not reach {args.base_url}: {exc}", file=sys.stderr)
        return 2
    print(f"\nHTTP {status}")
    print(
        json.dumps(answer, indent=2, ensure_ascii=False) if not isinstance(answer, str) else answer
    )
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
