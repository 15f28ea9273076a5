"""Settings from the environment and `.env`; development secrets generated once."""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from .exceptions import ConfigError

# DEFAULT_REDIS_PORT and DEFAULT_POSTGRES_PORT are re-exported: they used to live here.
from .settings import DEFAULT_POSTGRES_PORT as DEFAULT_POSTGRES_PORT
from .settings import DEFAULT_REDIS_PORT as DEFAULT_REDIS_PORT
from .settings import CommonSettings, Schema, parse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DOTENV = PROJECT_ROOT / ".env"

# Secrets the platform cannot run without. In development they are generated into
# `.env` once (so every worker and restart agrees); in production a missing one is fatal.
SECRET_NAMES = (
    "USSD_LOGIN_JWT_SECRET",
    "USSD_SERVICE_ID_SECRET",
    "SABONG_CLIENT_SECRETS",
    "SABONG_SESSION_SECRET",
)
MIN_SECRET_BYTES = 32
# Partner HMAC secrets are often shared out of band and may be shorter (the contract's
# own test vector uses a 15-byte one); only production insists on the full length.
DEV_CLIENT_SECRET_MIN_BYTES = 1


@dataclass(frozen=True)
class Settings:
    """Read-only view of the configuration: environment over `.env` over defaults."""

    values: Mapping[str, str] = field(default_factory=dict)
    # Schemas parsed from `values`, by schema class (see `of`).
    _parsed: dict[type[Any], Any] = field(default_factory=dict, compare=False, repr=False)

    def of(self, schema: type[Schema]) -> Schema:
        """`values` parsed by a schema of shared.settings (once); a bad value is a ConfigError."""
        parsed = self._parsed.get(schema)
        if parsed is None:
            parsed = self._parsed[schema] = parse(schema, self.values)
        return parsed

    @property
    def common(self) -> CommonSettings:
        """The settings every component reads, typed and checked."""
        return self.of(CommonSettings)

    @property
    def app_env(self) -> str:
        return self.common.app_env

    @property
    def production(self) -> bool:
        return self.common.production

    @property
    def redis_url(self) -> str | None:
        return self.common.redis_url

    @property
    def database_url(self) -> str | None:
        return self.common.database_url

    def get(self, name: str, default: str = "") -> str:
        """The raw value of `name`, or `default` when unset or empty."""
        value = self.values.get(name)
        return value if value not in (None, "") else default

    def get_int(self, name: str, default: int) -> int:
        """An integer setting; a malformed value is a startup error, not a silent default."""
        raw = self.get(name)
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None

    def get_list(self, name: str) -> tuple[str, ...]:
        """A comma-separated setting as a tuple of non-empty, stripped items."""
        return tuple(item.strip() for item in self.get(name).split(",") if item.strip())

    def secret(self, name: str) -> str:
        """A required secret: present and long enough, or a ConfigError."""
        value = self.get(name)
        if not value:
            raise ConfigError(f"{name} is not set")
        minimum = MIN_SECRET_BYTES
        if name == "SABONG_CLIENT_SECRETS" and not self.production:
            minimum = DEV_CLIENT_SECRET_MIN_BYTES
        for part in value.split(","):
            if len(part.strip().encode("utf-8")) < minimum:
                raise ConfigError(f"{name} must be at least {minimum} bytes per secret")
        return value


def with_embedded_stores(settings: Settings) -> Settings:
    """`settings` whose unset REDIS_URL / DATABASE_URL name the servers `make run` embeds.

    So the admin CLIs, run from the project while `make run` is up, reach the platform's
    stores with no extra settings (REDIS_PORT / POSTGRES_PORT move them, as for make run).
    """
    values = dict(settings.values)
    common = settings.common
    if not common.redis_url:
        values["REDIS_URL"] = f"redis://127.0.0.1:{common.redis_port}/0"
    if not common.database_url:
        values["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{common.postgres_port}/postgres"
    return Settings(values)


def dotenv_file(environ: Mapping[str, str] | None = None) -> Path:
    """The settings file: `DOTENV_PATH` (from the environment alone), else `.env` here."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("DOTENV_PATH", "") or DEFAULT_DOTENV)


def dotenv_names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The names the settings file sets (none when there is no file)."""
    return tuple(_read_dotenv(dotenv_file(environ)))


def read_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Environment over `.env`, without the secrets check (tools that need no secrets)."""
    environ = os.environ if environ is None else environ
    path = dotenv_file(environ)
    merged: dict[str, str] = {k: v for k, v in _read_dotenv(path).items() if v is not None}
    merged.update(environ)
    return Settings(merged)


def load_settings(
    overrides: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> Settings:
    """Build Settings: overrides, then the environment, then `.env`; check secrets."""
    environ = os.environ if environ is None else environ
    path = Path(environ.get("DOTENV_PATH", "") or (dotenv_path or DEFAULT_DOTENV))
    merged: dict[str, str] = {k: v for k, v in _read_dotenv(path).items() if v is not None}
    merged.update(environ)
    merged.update(overrides or {})
    settings = Settings(merged)
    missing = [name for name in SECRET_NAMES if not settings.get(name)]
    if missing and not settings.production:
        merged.update(ensure_dev_secrets(path))
        merged.update(environ)
        merged.update(overrides or {})
        settings = Settings(merged)
    for name in SECRET_NAMES:
        settings.secret(name)
    return settings


def ensure_dev_secrets(path: Path = DEFAULT_DOTENV) -> dict[str, str]:
    """Append any missing development secret to `path`; return every secret in it."""
    if path.exists() and not path.is_file():
        # Never write secrets into (or chmod) a device, FIFO or directory by mistake.
        raise ConfigError(f"{path} is not a regular file; point DOTENV_PATH at a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        # Several gunicorn workers may start at once: the lock makes them agree.
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            current = _read_dotenv(path)
            added = {n: secrets.token_urlsafe(48) for n in SECRET_NAMES if not current.get(n)}
            if added:
                handle.seek(0, os.SEEK_END)
                if handle.tell() and not _ends_with_newline(path):
                    handle.write("\n")
                handle.write("# Development secrets, generated once. Never use in production.\n")
                handle.writelines(f"{name}={value}\n" for name, value in added.items())
                handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    os.chmod(path, 0o600)
    values = _read_dotenv(path)
    return {name: values[name] for name in SECRET_NAMES if values.get(name)}


def _read_dotenv(path: Path) -> dict[str, str]:
    """Parse a dotenv file; a missing file is an empty mapping."""
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _ends_with_newline(path: Path) -> bool:
    """True when the file is empty or its last byte is a newline."""
    data = path.read_bytes()
    return not data or data.endswith(b"\n")
