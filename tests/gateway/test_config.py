"""Settings parsing and the server command line (no processes needed)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import create_app
from gateway.config import (
    GatewayConfig,
    configure_logging_from,
    parse_networks,
    parse_route_limits,
    parse_targets,
)
from gateway.routing import Family, error_body, match
from gateway.server import _parse_args, command
from gateway.upstream import Target
from shared.config import Settings, load_settings
from shared.exceptions import ConfigError


def test_defaults_match_the_contract() -> None:
    config = GatewayConfig.from_settings(Settings({"REDIS_URL": "redis://127.0.0.1:1/0"}))
    assert config.upstreams == {
        "ussd": (Target("127.0.0.1", 8081),),
        "ussd-login": (Target("127.0.0.1", 8083),),
        "sabong": (Target("127.0.0.1", 8082),),
    }
    assert config.rate_limit == 6000
    assert config.max_body_bytes == 65536
    assert (config.timeouts.connect, config.timeouts.read) == (1.0, 30.0)
    assert config.timeouts.dns_refresh == 5.0


def test_logins_go_to_the_login_pool() -> None:
    assert match("/api/auth/login").service == "ussd-login"  # type: ignore[union-attr]
    assert match("/api/auth/other").service == "ussd"  # type: ignore[union-attr]
    pools = {
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "GATEWAY_USSD_UPSTREAMS": "ussd:8081",
        "GATEWAY_USSD_LOGIN_UPSTREAMS": "ussd-login:8083",
    }
    config = GatewayConfig.from_settings(Settings(pools))
    assert config.upstreams["ussd-login"] == (Target("ussd-login", 8083),)


def test_named_ussd_replicas_without_a_login_pool_serve_logins_too() -> None:
    settings = Settings({"REDIS_URL": "redis://127.0.0.1:1/0", "GATEWAY_USSD_UPSTREAMS": "u:81"})
    config = GatewayConfig.from_settings(settings)
    assert config.upstreams["ussd-login"] == (Target("u", 81),)


def test_upstream_lists_names_and_ipv6() -> None:
    targets = parse_targets("X", " sabong:8082, 10.0.0.7:9000 ,[::1]:8083,")
    assert targets == (
        Target("sabong", 8082),
        Target("10.0.0.7", 9000),
        Target("::1", 8083),
    )
    assert [t.is_literal for t in targets] == [False, True, True]


@pytest.mark.parametrize("raw", ["", "sabong", "sabong:", ":8080", "h:0", "h:70000", "h:x"])
def test_bad_upstream_list_is_a_startup_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_SABONG_UPSTREAMS"):
        parse_targets("GATEWAY_SABONG_UPSTREAMS", raw)


def test_route_limits_longest_prefix_first() -> None:
    assert parse_route_limits("/api/=100, /api/auth/=600,/login/=0") == (
        ("/api/auth/", 600),
        ("/login/", 0),
        ("/api/", 100),
    )


@pytest.mark.parametrize("raw", ["/api/auth/", "api/=5", "/api/=-1", "/api/=x", "=5"])
def test_bad_route_limits_are_a_startup_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_RATE_LIMIT_ROUTES"):
        parse_route_limits(raw)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_CONNECT_TIMEOUT", "0"),
        ("GATEWAY_READ_TIMEOUT", "soon"),
        ("GATEWAY_MAX_BODY_BYTES", "-1"),
        ("GATEWAY_RATE_LIMIT", "lots"),
        ("GATEWAY_ACCESS_LOG", "maybe"),
    ],
)
def test_bad_numbers_are_startup_errors(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        GatewayConfig.from_settings(Settings({"GATEWAY_RATE_LIMIT": "0", name: value}))


def test_server_command_is_the_gateway_server_module() -> None:
    assert command("::1", 9999, 3) == [
        sys.executable,
        "-m",
        "gateway.server",
        "--host",
        "::1",
        "--port",
        "9999",
        "--workers",
        "3",
    ]


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/me", "sabong"),
        ("/me/", "sabong"),
        ("/metrics", None),
        ("/logout", "sabong"),
        ("/logoutx", None),
        ("/login/", "sabong"),
        ("/api/clients/", "ussd"),
    ],
)
def test_prefix_matching_respects_segment_boundaries(path: str, service: str | None) -> None:
    route = match(path)
    assert (route.service if route else None) == service


def test_sabong_errors_say_error_when_refused_and_failed_when_upstream_failed() -> None:
    assert error_body(Family.SABONG, 429) == (
        b'{"status":"error","message":"Too many requests","data":null}'
    )
    assert error_body(Family.SABONG, 504) == (
        b'{"status":"failed","message":"Gateway timeout","data":null}'
    )
    assert error_body(Family.K2, 413) == (
        b'{"status":413,"message":"Request body too large","data":null}'
    )


def test_metrics_allow_list_defaults_to_loopback_and_private_ranges() -> None:
    config = GatewayConfig.from_settings(Settings({"GATEWAY_RATE_LIMIT": "0"}))
    assert [str(n) for n in config.metrics_allow] == [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ]


def test_metrics_allow_list_rejects_what_is_not_a_cidr() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_METRICS_ALLOW"):
        parse_networks("GATEWAY_METRICS_ALLOW", "10.0.0.0/8,everyone")


def test_metrics_allow_is_one_setting_for_gateway_and_services() -> None:
    shared_only = Settings({"GATEWAY_RATE_LIMIT": "0", "METRICS_ALLOW": "10.1.0.0/16"})
    assert [str(n) for n in GatewayConfig.from_settings(shared_only).metrics_allow] == [
        "10.1.0.0/16"
    ]
    both = Settings({**shared_only.values, "GATEWAY_METRICS_ALLOW": "10.2.0.0/16"})
    assert [str(n) for n in GatewayConfig.from_settings(both).metrics_allow] == ["10.2.0.0/16"]


@pytest.fixture
def gateway_logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """The `gateway` logger, its level put back after the test (and a throwaway `.env`)."""
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / "test.env"))
    logger = logging.getLogger("gateway")
    level = logger.level
    yield logger
    logger.setLevel(level)


def test_log_level_is_applied_by_the_gateway(gateway_logger: logging.Logger) -> None:
    gateway = create_app({"GATEWAY_RATE_LIMIT": "0", "LOG_LEVEL": "warning"})
    assert gateway_logger.level == logging.WARNING
    # As at the services, whose access lines are INFO records: above INFO, none are written.
    assert gateway.config.access_log is False
    create_app({"GATEWAY_RATE_LIMIT": "0", "LOG_LEVEL": "DEBUG"})
    assert gateway_logger.level == logging.DEBUG


def test_log_level_from_dotenv_reaches_the_gateway(
    gateway_logger: logging.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / "gateway.env"
    dotenv.write_text("LOG_LEVEL=ERROR\nGATEWAY_RATE_LIMIT=0\n")
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.delenv("GATEWAY_RATE_LIMIT", raising=False)
    monkeypatch.setenv("DOTENV_PATH", str(dotenv))
    configure_logging_from(load_settings())
    assert gateway_logger.level == logging.ERROR


def test_malformed_log_level_stops_the_gateway(gateway_logger: logging.Logger) -> None:
    with pytest.raises(ConfigError, match="LOG_LEVEL must be one of"):
        create_app({"GATEWAY_RATE_LIMIT": "0", "LOG_LEVEL": "verbose"})


def test_server_defaults_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings({"BIND_HOST": "::1", "GATEWAY_PORT": "9100", "GATEWAY_WORKERS": "2"})
    args = _parse_args([], settings)
    assert (args.host, args.port, args.workers) == ("::1", 9100, 2)
    args = _parse_args([], Settings({"BIND_HOST": "::1", "GATEWAY_HOST": "127.0.0.2"}))
    assert (args.host, args.port, args.workers) == ("127.0.0.2", 8080, 1)
    with pytest.raises(ConfigError, match="GATEWAY_WORKERS must be at least 1"):
        _parse_args([], Settings({"GATEWAY_WORKERS": "0"}))
