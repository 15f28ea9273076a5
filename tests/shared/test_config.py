"""Settings: precedence, development secrets generated once, production strictness."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import SECRET_NAMES, ensure_dev_secrets, load_settings
from shared.exceptions import ConfigError


def test_development_generates_secrets_once(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    first = load_settings(environ={}, dotenv_path=dotenv)
    second = load_settings(environ={}, dotenv_path=dotenv)
    for name in SECRET_NAMES:
        assert len(first.get(name)) >= 32
        assert first.get(name) == second.get(name)
    assert oct(dotenv.stat().st_mode & 0o777) == "0o600"


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    ensure_dev_secrets(dotenv)
    settings = load_settings(environ={"USSD_LOGIN_JWT_SECRET": "e" * 40}, dotenv_path=dotenv)
    assert settings.get("USSD_LOGIN_JWT_SECRET") == "e" * 40


def test_production_without_secrets_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(environ={"APP_ENV": "production"}, dotenv_path=tmp_path / ".env")
    assert not (tmp_path / ".env").exists()


def test_short_jwt_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(environ={"USSD_SERVICE_ID_SECRET": "short"}, dotenv_path=tmp_path / ".env")


def test_malformed_integer_setting_is_a_config_error(tmp_path: Path) -> None:
    settings = load_settings(environ={"X": "ten"}, dotenv_path=tmp_path / ".env")
    with pytest.raises(ConfigError):
        settings.get_int("X", 1)
    assert settings.get_list("MISSING") == ()


def test_dotenv_path_that_is_not_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(environ={"DOTENV_PATH": str(tmp_path)})


def test_unset_store_urls_default_to_the_servers_make_run_embeds() -> None:
    from shared.config import Settings, with_embedded_stores

    filled = with_embedded_stores(Settings({"POSTGRES_PORT": "7001"}))
    assert filled.redis_url == "redis://127.0.0.1:6390/0"
    assert filled.database_url == "postgresql://postgres@127.0.0.1:7001/postgres"
    given = Settings({"REDIS_URL": "redis://r:1/0", "DATABASE_URL": "postgresql://d/db"})
    assert with_embedded_stores(given).values == given.values
