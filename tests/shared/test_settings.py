"""The settings schemas: defaults, environment over `.env`, bad values named, README table."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import GatewaySettings
from scripts.settings import RunSettings, ServeSettings, check_all, check_dotenv, schemas
from services.sabong.settings import SabongSettings
from services.ussd.settings import UssdSettings
from shared import observability
from shared.config import PROJECT_ROOT, Settings, load_settings, read_settings
from shared.exceptions import ConfigError
from shared.settings import CommonSettings, Setting, parse, settings_of

SECRETS = {
    "USSD_LOGIN_JWT_SECRET": "l" * 40,
    "USSD_SERVICE_ID_SECRET": "i" * 40,
    "SABONG_CLIENT_SECRETS": "c" * 40,
    "SABONG_SESSION_SECRET": "s" * 40,
}


def test_unset_and_empty_values_are_the_defaults() -> None:
    for schema in schemas():
        assert parse(schema, {}) == schema()
        empty = {spec.env: "" for spec in settings_of(schema)}
        assert parse(schema, empty) == schema()
    common = Settings({}).common
    assert (common.app_env, common.log_level, common.bind_host) == (
        "development",
        "INFO",
        "127.0.0.1",
    )
    assert (common.redis_port, common.postgres_port, common.database_pool_size) == (6390, 6391, 16)


def test_each_variable_is_declared_once() -> None:
    names = [spec.env for schema in schemas() for spec in settings_of(schema)]
    assert len(names) == len(set(names))


def test_values_are_typed() -> None:
    settings = Settings(
        {
            "LOG_LEVEL": "debug",
            "APP_ENV": "Production",
            "GATEWAY_ACCESS_LOG": "off",
            "GATEWAY_READ_TIMEOUT": "2.5",
            "SABONG_CLIENT_SECRETS": " a , b ,",
            "USSD_LOGIN_JWT_TTL": " 60 ",
        }
    )
    assert settings.common.log_level == "DEBUG"
    assert settings.production
    assert settings.of(GatewaySettings).access_log is False
    assert settings.of(GatewaySettings).read_timeout == 2.5
    assert settings.of(SabongSettings).client_secrets == ("a", "b")
    assert settings.of(UssdSettings).login_jwt_ttl == 60
    assert settings.of(UssdSettings) is settings.of(UssdSettings)  # parsed once


def test_environment_wins_over_dotenv_for_every_schema(tmp_path: Path) -> None:
    dotenv = tmp_path / "chosen.env"
    dotenv.write_text(
        "LOG_LEVEL=WARNING\nGATEWAY_RATE_LIMIT=5\nUSSD_LOGIN_JWT_TTL=60\nRUN_STOP_GRACE=3\n"
    )
    environ = {"DOTENV_PATH": str(dotenv), "GATEWAY_RATE_LIMIT": "7", **SECRETS}
    for settings in (load_settings(environ=environ), read_settings(environ)):
        assert settings.common.log_level == "WARNING"
        assert settings.of(GatewaySettings).rate_limit == 7
        assert settings.of(UssdSettings).login_jwt_ttl == 60
        assert settings.of(RunSettings).stop_grace == 3.0
    overridden = load_settings({"USSD_LOGIN_JWT_TTL": "90"}, environ=environ)
    assert overridden.of(UssdSettings).login_jwt_ttl == 90  # create_app's overrides win


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("APP_ENV", "prod", "APP_ENV must be one of development, production, got 'prod'"),
        ("USSD_LOGIN_JWT_TTL", "abc", "USSD_LOGIN_JWT_TTL must be an integer, got 'abc'"),
        ("USSD_LOGIN_JWT_TTL", "0", "USSD_LOGIN_JWT_TTL must be at least 1, got 0"),
        ("USSD_SCRYPT_N", "1000", "USSD_SCRYPT_N must be a power of two, got 1000"),
        ("USSD_TRUSTED_PROXY_COUNT", "-1", "USSD_TRUSTED_PROXY_COUNT must not be negative"),
        ("USSD_TRUSTED_PROXIES", "gateway", "USSD_TRUSTED_PROXIES: 'gateway' is not an address"),
        ("SABONG_MAX_BODY_BYTES", "64k", "SABONG_MAX_BODY_BYTES must be an integer, got '64k'"),
        ("SABONG_SESSION_SECONDS", "0", "SABONG_SESSION_SECONDS must be at least 1, got 0"),
        ("GATEWAY_PORT", "70000", "GATEWAY_PORT must be between 1 and 65535, got 70000"),
        ("GATEWAY_USSD_LOGIN_UPSTREAMS", "ussd", "GATEWAY_USSD_LOGIN_UPSTREAMS: 'ussd' is not"),
        ("SABONG_NICE", "20", "SABONG_NICE must be between 0 and 19, got 20"),
        ("RUN_READY_TIMEOUT", "soon", "RUN_READY_TIMEOUT must be a number of seconds"),
        ("DATABASE_POOL_SIZE", "0", "DATABASE_POOL_SIZE must be at least 1, got 0"),
        ("REDIS_PORT", "x", "REDIS_PORT must be an integer, got 'x'"),
    ],
)
def test_malformed_values_are_refused_naming_the_variable(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_all(Settings({name: value}))


@pytest.mark.parametrize(("name", "value"), [("APP_ENV", "prod"), ("LOG_LEVEL", "verbose")])
def test_load_settings_refuses_a_malformed_common_value(
    name: str, value: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(environ={name: value, **SECRETS}, dotenv_path=tmp_path / ".env")


@pytest.fixture
def restored_root_logger() -> Iterator[logging.Logger]:
    """The root logger, put back as it was (handlers and level) after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_services_take_log_level_from_dotenv(
    restored_root_logger: logging.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / "log.env"
    dotenv.write_text("LOG_LEVEL=warning\n")
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.setenv("DOTENV_PATH", str(dotenv))
    observability.configure_logging("test")
    assert restored_root_logger.level == logging.WARNING
    monkeypatch.setenv("LOG_LEVEL", "ERROR")  # the environment wins over .env
    observability.configure_logging("test")
    assert restored_root_logger.level == logging.ERROR
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        observability.configure_logging("test")


# -- the README's configuration table ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    names: tuple[str, ...]
    defaults: tuple[str, ...]  # one per name, or one for all
    meaning: str

    def default_of(self, name: str) -> str:
        if len(self.defaults) == len(self.names):
            return self.defaults[self.names.index(name)]
        return ", ".join(self.defaults)


def readme_rows() -> list[Row]:
    """The rows of the table under `## Configuration` in README.md."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) != 3:
            continue
        names = tuple(re.findall(r"`([A-Z0-9_]+)`", cells[0]))
        defaults = tuple(part.strip() for part in cells[1].split("`, `"))
        if len(defaults) > 1:  # `1`, `8`: one literal per name
            defaults = tuple(f"`{part.strip('`')}`" for part in defaults)
        rows.append(Row(names, defaults, cells[2]))
    return rows


def all_settings() -> dict[str, Setting]:
    return {spec.env: spec for schema in schemas() for spec in settings_of(schema)}


def suggested_row(spec: Setting) -> str:
    """The table row a schema field asks for (printed when the README lacks it)."""
    default = spec.shown or f"`{_literal(spec.default)}`"
    return f"| `{spec.env}` | {default} | {spec.meaning} |"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def test_every_schema_variable_is_in_the_readme_table_with_its_default_and_meaning() -> None:
    by_name = {name: row for row in readme_rows() for name in row.names}
    for name, spec in all_settings().items():
        row = by_name.get(name)
        assert row is not None, f"README lacks {name}:\n{suggested_row(spec)}"
        assert row.meaning == spec.meaning, f"{name}: README says {row.meaning!r}"
        cell = row.default_of(name)
        if spec.shown is not None:
            assert cell == spec.shown, f"{name}: README default {cell!r}"
        else:
            assert re.fullmatch(r"`[^`]+`", cell), f"{name}: README default {cell!r}"
            assert spec.parse(name, cell.strip("`")) == spec.default, f"{name}: {cell}"


def test_every_readme_row_is_a_schema_variable() -> None:
    known = all_settings()
    listed = [name for row in readme_rows() for name in row.names]
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    assert [name for name in listed if name not in known] == []
    assert len(listed) == len(known)


def test_schemas_cover_common_serve_and_component_settings() -> None:
    assert {CommonSettings, RunSettings, ServeSettings, GatewaySettings} <= set(schemas())
    assert {UssdSettings, SabongSettings} <= set(schemas())


def test_a_misspelt_project_setting_in_dotenv_is_refused(tmp_path: Path) -> None:
    dotenv = tmp_path / "typo.env"
    dotenv.write_text("GATEWAY_RATE_LIMIT=10\nGATEWAY_RATE_LIMTI=5\nOTHER_TOOL_SETTING=1\n")
    with pytest.raises(ConfigError, match=r"GATEWAY_RATE_LIMTI \(in .*typo.env\) is not a setting"):
        check_dotenv({"DOTENV_PATH": str(dotenv)})
    dotenv.write_text("GATEWAY_RATE_LIMIT=10\nGATEWAY_PUBLISH_PORT=9000\nOTHER_TOOL_SETTING=1\n")
    check_dotenv({"DOTENV_PATH": str(dotenv)})  # other prefixes are not ours to judge
    check_dotenv({"DOTENV_PATH": str(tmp_path / "absent.env")})
