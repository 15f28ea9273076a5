"""What `make run` prints: secrets only in development, passwords in URLs masked."""

from __future__ import annotations

import pytest

from scripts import banner
from scripts.children import redact_url
from scripts.run import Stores
from shared.config import SECRET_NAMES, Settings

SECRETS = {name: f"{name.lower()}-value-that-is-long-enough-000000" for name in SECRET_NAMES}


def test_development_prints_every_generated_secret() -> None:
    """The newcomer sees the development secrets (the SPEC asks for it)."""
    section = banner.secrets_section(Settings(SECRETS))
    for name, value in SECRETS.items():
        assert f"{name}={value}" in section


def test_production_never_prints_secrets() -> None:
    """APP_ENV=production: not one secret value in the banner."""
    section = banner.secrets_section(Settings({**SECRETS, "APP_ENV": "production"}))
    assert not any(value in section for value in SECRETS.values())
    assert "not shown" in section


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/0"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://app:s3cret@cache/1", "rediss://app:***@cache/1"),
    ],
)
def test_redis_url_passwords_are_masked(url: str, shown: str) -> None:
    """A REDIS_URL is printed without its password."""
    assert redact_url(url) == shown


def test_examples_follow_the_configured_gateway_port() -> None:
    """The copy-paste commands target the gateway where it actually listens."""
    settings = Settings({**SECRETS, "GATEWAY_PORT": "9999"})
    found = Stores("redis://x/0", "postgresql://u:secret@h/db", None, None)
    example = banner.k2_example(settings, found)
    assert "http://127.0.0.1:9999/api/auth/login" in example
    assert "DATABASE_URL='postgresql://u:***@h/db' " in example
    assert "secret" not in example  # a password is never printed
    assert "--base-url http://127.0.0.1:9999" in banner.sabong_example(settings)
