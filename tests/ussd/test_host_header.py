"""A forged Host header cannot make the USSD service redirect anywhere (no Werkzeug slash
redirects: `POST /api/auth//login` must not become a 308 that replays the password)."""

from __future__ import annotations

import urllib.parse

import pytest
from flask.testing import FlaskClient

from tests.host_header import (
    EVIL_HOST,
    SLASH_TRICKS,
    assert_no_location_from_host,
    location_is_relative,
    raw_request,
)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", SLASH_TRICKS)
def test_forged_host_cannot_steer_a_redirect(client: FlaskClient, method: str, path: str) -> None:
    for headers in ({"Host": EVIL_HOST}, {}):
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code not in (301, 302, 307, 308), response.headers
        assert location_is_relative(response.headers)
        assert EVIL_HOST not in str(response.headers)
        assert response.status_code < 500


@pytest.mark.parametrize("path", ["/api/auth//login", "//api/auth/login", "/api/clients/me/"])
@pytest.mark.parametrize("host", [EVIL_HOST, None])
def test_forged_host_cannot_steer_a_redirect_of_the_real_server(
    ussd_server: str, path: str, host: str | None
) -> None:
    own_address = urllib.parse.urlsplit(ussd_server).netloc
    for method in ("GET", "POST"):
        status, head = raw_request(ussd_server, method, path, host)
        assert_no_location_from_host(status, head.decode("latin-1"), own_address)
