"""A forged Host header cannot make Sabong redirect anywhere (no Werkzeug slash redirects;
every Location is relative or the configured SABONG_APP_URL)."""

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

from .conftest import LiveSabong, MakeApp, Partner


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", SLASH_TRICKS)
def test_forged_host_cannot_steer_a_redirect(client: FlaskClient, method: str, path: str) -> None:
    for headers in ({"Host": EVIL_HOST}, {}):
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code not in (301, 302, 307, 308), response.headers
        assert location_is_relative(response.headers)
        assert EVIL_HOST not in str(response.headers)


def test_every_redirect_sabong_sends_is_relative_or_configured(
    make_app: MakeApp, partner: Partner
) -> None:
    evil = {"Host": EVIL_HOST}
    signed_in = partner.client.post("/login/" + partner.issue()["token"], headers=evil)
    assert signed_in.headers["Location"] == "/me"
    assert (
        partner.client.post("/logout", headers=evil).headers["Location"] == "/login/?signed_out=1"
    )
    assert partner.client.get("/me", headers=evil).headers["Location"] == "/login/"
    configured = Partner(make_app(SABONG_APP_URL="https://play.example.com/").test_client())
    answer = configured.client.post("/login/" + configured.issue()["token"], headers=evil)
    assert answer.headers["Location"] == "https://play.example.com/"


@pytest.mark.parametrize("path", ["/login//abc", "/api/v1//generate-auth-token", "/me/"])
@pytest.mark.parametrize("host", [EVIL_HOST, None])
def test_forged_host_cannot_steer_a_redirect_of_the_real_server(
    live_sabong: LiveSabong, path: str, host: str | None
) -> None:
    own_address = urllib.parse.urlsplit(live_sabong.url).netloc
    for method in ("GET", "POST"):
        status, head = raw_request(live_sabong.url, method, path, host)
        assert_no_location_from_host(status, head.decode("latin-1"), own_address)
