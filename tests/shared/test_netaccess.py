"""The metrics allow-list (shared.netaccess) and its use by both services' `/metrics`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from services.sabong import create_app as create_sabong
from services.ussd import create_app as create_ussd
from shared.config import Settings
from shared.exceptions import ConfigError
from shared.netaccess import metrics_allow, parse_networks, peer_allowed, wsgi_peer
from tests.sabong.conftest import base_settings
from tests.ussd.conftest import ussd_config

PUBLIC_PEER = "203.0.113.7"
AppMakers = dict[str, Callable[..., Flask]]


def test_default_allow_list_is_loopback_and_private_ranges() -> None:
    networks = metrics_allow(Settings({}))
    for peer in ("127.0.0.1", "::1", "10.1.2.3", "172.20.0.5", "192.168.1.1", "::ffff:10.0.0.1"):
        assert peer_allowed(peer, networks), peer
    for peer in (PUBLIC_PEER, "8.8.8.8", "2001:db8::1", "", None, "not-an-address"):
        assert not peer_allowed(peer, networks), peer


def test_bad_allow_list_is_a_startup_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="METRICS_ALLOW"):
        metrics_allow(Settings({"METRICS_ALLOW": "10.0.0.0/8,everyone"}))
    assert parse_networks("X", " 10.0.0.1 , ") == parse_networks("X", "10.0.0.1/32")


def test_wsgi_peer_is_the_tcp_peer_even_behind_proxy_fix() -> None:
    assert wsgi_peer({"REMOTE_ADDR": "10.0.0.1"}) == "10.0.0.1"
    rewritten = {
        "REMOTE_ADDR": "127.0.0.1",
        "werkzeug.proxy_fix.orig": {"REMOTE_ADDR": PUBLIC_PEER},
    }
    assert wsgi_peer(rewritten) == PUBLIC_PEER


@pytest.fixture
def apps(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppMakers:
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / "test.env"))
    return {
        "sabong": lambda **extra: create_sabong(base_settings(redis_url, **extra)),
        "ussd": lambda **extra: create_ussd(ussd_config(redis_url, **extra)),
    }


@pytest.mark.parametrize("service", ["sabong", "ussd"])
def test_public_peer_cannot_read_a_services_metrics(apps: AppMakers, service: str) -> None:
    client = apps[service]().test_client()
    assert client.get("/metrics").status_code == 200  # the test client's peer is 127.0.0.1
    public = {"REMOTE_ADDR": PUBLIC_PEER}
    refused = client.get("/metrics", environ_base=public)
    assert refused.status_code == 404
    assert b"http_requests_total" not in refused.get_data()
    # A forged X-Forwarded-For (which the USSD service's ProxyFix believes for its login
    # limits) does not make a public peer local.
    forged = client.get("/metrics", environ_base=public, headers={"X-Forwarded-For": "127.0.0.1"})
    assert forged.status_code == 404


@pytest.mark.parametrize("service", ["sabong", "ussd"])
def test_metrics_allow_setting_opens_a_services_metrics(apps: AppMakers, service: str) -> None:
    client = apps[service](METRICS_ALLOW="203.0.113.0/24").test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": PUBLIC_PEER}).status_code == 200
    assert client.get("/metrics").status_code == 404  # loopback is no longer listed
