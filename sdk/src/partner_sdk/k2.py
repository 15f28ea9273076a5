"""K2 USSD API client: login, a Service ID kept fresh automatically, authenticated calls."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from .connections import Timeout
from .errors import ApiError
from .jwt_payload import token_expiry, token_lifetime
from .transport import DEFAULT_RETRY, DEFAULT_TIMEOUT, Response, Retry, Transport, dump_json

LOGIN_PATH = "/api/auth/login"
SERVICE_ID_PATH = "/api/clients/generate-service-id"
API_KEY_PATH = "/api/clients/generate-api-key"
ME_PATH = "/api/clients/me"
REVOKE_PATH = "/api/clients/revoke-service-id"
# Every (method, path) this client calls; a test checks each against shared/openapi.json.
ENDPOINTS = (
    ("POST", LOGIN_PATH),
    ("POST", SERVICE_ID_PATH),
    ("POST", API_KEY_PATH),
    ("GET", ME_PATH),
    ("POST", REVOKE_PATH),
)

# The seed's advice: regenerate the Service ID 5 minutes before it expires.
REFRESH_MARGIN_SECONDS = 300.0
# The server's answer when the Service ID given to generate-api-key is not usable.
SERVICE_ID_REJECTED = "Service ID expired or invalid"

Clock = Callable[[], float]

__all__ = ["K2Client"]


class _Token:
    """A bearer token and the moment (client clock) from which it should be replaced."""

    def __init__(self, value: str, now: float, margin: float) -> None:
        self.value = value
        expires = token_expiry(value)
        lifetime = token_lifetime(value)
        if lifetime is not None and lifetime > 0:
            # Counting the lifetime from receipt on the client's own clock makes a skew
            # between client and server clocks harmless; a short-lived token is replaced
            # at half its life rather than constantly.
            self.refresh_at: float | None = now + lifetime - min(margin, lifetime / 2)
        else:
            self.refresh_at = None if expires is None else expires - margin

    def fresh(self, now: float) -> bool:
        """True while the token is not yet due for replacement."""
        return self.refresh_at is None or now < self.refresh_at


class K2Client:
    """Thread-safe K2 client; every `request` carries `Authorization: Bearer <SERVICE_ID>`."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        timeout: float | Timeout = DEFAULT_TIMEOUT,
        *,
        clock: Clock = time.time,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        retry: Retry = DEFAULT_RETRY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._transport = Transport(base_url, timeout, retry=retry, ssl_context=ssl_context)
        self._username = username
        self._password = password
        self._clock = clock
        self._margin = refresh_margin
        # One lock for both tokens: concurrent callers wait for a single refresh.
        self._lock = threading.Lock()
        self._login: _Token | None = None
        self._service: _Token | None = None
        self.user: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"K2Client(username={self._username!r})"

    def __enter__(self) -> K2Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle keep-alive connections (the client stays usable)."""
        self._transport.close()

    # -- public calls -------------------------------------------------------------------

    def login(self) -> dict[str, Any]:
        """Log in now (normally automatic); returns the `user` object of the answer."""
        with self._lock:
            self._login_locked()
            return dict(self.user or {})

    def login_token(self) -> str:
        """The current login JWT (for login-JWT endpoints), logging in first when due."""
        with self._lock:
            return self._login_token_locked()

    def service_id(self) -> str:
        """The current Service ID, generated or regenerated first when due."""
        with self._lock:
            return self._service_id_locked()

    def generate_service_id(self) -> str:
        """Generate a new Service ID now, replacing the one held."""
        with self._lock:
            return self._generate_service_id_locked()

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        check: bool = True,
    ) -> Response:
        """Call a Service-ID endpoint; on 401/403 regenerate the ID and retry once."""
        body = None if json is None else dump_json(json)
        service_id = self.service_id()
        response = self._send(method, path, body, service_id, headers)
        if response.status in (401, 403):
            response = self._send(method, path, body, self._replace(service_id), headers)
        return response.raise_for_status() if check else response

    def me(self) -> dict[str, Any]:
        """`GET /api/clients/me`: the client profile and the Service ID's id and expiry."""
        return _data_dict(self.request("GET", ME_PATH))

    def generate_api_key(self) -> str:
        """`POST /api/clients/generate-api-key` for the current Service ID; returns the key id."""
        with self._lock:
            login = self._login_token_locked()
            service_id = self._service_id_locked()
        response = self._post_api_key(login, service_id)
        if response.status in (401, 403):
            if response.message == SERVICE_ID_REJECTED:
                service_id = self._replace(service_id)
            else:
                login = self._replace_login(login)
            response = self._post_api_key(login, service_id)
        key_id = _data_dict(response.raise_for_status()).get("id")
        if not isinstance(key_id, str):
            raise ApiError(response.status, "Response has no API key id", response.data)
        return key_id

    def revoke_service_id(self) -> None:
        """Revoke the held Service ID on the server and forget it (the next call makes one)."""
        with self._lock:
            held = self._service
            self._service = None
        if held is None:
            return
        self._send("POST", REVOKE_PATH, None, held.value, None).raise_for_status()

    # -- token management (callers hold self._lock where the name says so) --------------

    def _login_locked(self) -> str:
        """POST the credentials; keep and return the login JWT."""
        credentials = {"username": self._username, "password": self._password}
        response = self._transport.send(
            "POST", self._transport.full_path(LOGIN_PATH), dump_json(credentials), _JSON
        ).raise_for_status()
        data = _data_dict(response)
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise ApiError(response.status, "Login response has no token", None)
        user = data.get("user")
        self.user = user if isinstance(user, dict) else None
        self._login = _Token(token, self._clock(), self._margin)
        return token

    def _login_token_locked(self) -> str:
        """A login JWT not due for replacement, logging in when needed."""
        if self._login is not None and self._login.fresh(self._clock()):
            return self._login.value
        return self._login_locked()

    def _service_id_locked(self) -> str:
        """The held Service ID if fresh, else a newly generated one."""
        if self._service is not None and self._service.fresh(self._clock()):
            return self._service.value
        return self._generate_service_id_locked()

    def _generate_service_id_locked(self) -> str:
        """POST generate-service-id; a rejected login JWT means log in again, once."""
        login = self._login_token_locked()
        response = self._post_generate(login)
        if response.status in (401, 403):
            response = self._post_generate(self._login_locked())
        data = _data_dict(response.raise_for_status())
        service_id = data.get("SERVICE_ID")
        if not isinstance(service_id, str) or not service_id:
            raise ApiError(response.status, "Response has no SERVICE_ID", data)
        self._service = _Token(service_id, self._clock(), self._margin)
        return service_id

    def _replace(self, stale: str) -> str:
        """After a rejection of `stale`: regenerate unless another thread already did."""
        with self._lock:
            if self._service is not None and self._service.value != stale:
                return self._service.value
            return self._generate_service_id_locked()

    def _replace_login(self, stale: str) -> str:
        """After a rejection of login JWT `stale`: log in unless another thread already did."""
        with self._lock:
            if self._login is not None and self._login.value != stale:
                return self._login.value
            return self._login_locked()

    # -- wire ---------------------------------------------------------------------------

    def _post_generate(self, login: str) -> Response:
        """One generate-service-id call with the given login JWT."""
        return self._send("POST", SERVICE_ID_PATH, None, login, None)

    def _post_api_key(self, login: str, service_id: str) -> Response:
        """One generate-api-key call."""
        return self._send("POST", API_KEY_PATH, dump_json({"service_id": service_id}), login, None)

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        bearer: str,
        headers: Mapping[str, str] | None,
    ) -> Response:
        """Send with `Authorization: Bearer <bearer>` (and a JSON content type for a body)."""
        all_headers = dict(headers or {})
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        all_headers["Authorization"] = f"Bearer {bearer}"
        return self._transport.send(method, self._transport.full_path(path), body, all_headers)


_JSON = {"Content-Type": "application/json"}


def _data_dict(response: Response) -> dict[str, Any]:
    """The envelope's `data` object (empty when absent) of a successful response."""
    data = response.data
    return data if isinstance(data, dict) else {}
