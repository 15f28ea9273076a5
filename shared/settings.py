"""Typed settings schemas: each variable's name, type, bounds, default and meaning, once.

A schema is a frozen dataclass whose fields are declared with `setting(...)`; `parse`
turns a mapping of raw strings (environment over `.env`, see `shared.config`) into an
instance, refusing a malformed value with a ConfigError that names the variable. The
README's configuration table is checked against every schema (tests/shared/test_settings).

Every component has one schema: `CommonSettings` (here), `services.ussd.settings`,
`services.sabong.settings`, `gateway.settings` and `scripts.settings` (serving, make run).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .exceptions import ConfigError
from .netaccess import DEFAULT_METRICS_ALLOW, Network, parse_networks

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Schema = TypeVar("Schema", bound=DataclassInstance)
else:
    Schema = TypeVar("Schema")

# Ports of the embedded servers `make run` starts (away from a system Redis on 6379 and a
# system PostgreSQL on 5432); the admin CLIs fall back to them when no URL is set.
DEFAULT_REDIS_PORT = 6390
DEFAULT_POSTGRES_PORT = 6391
DEFAULT_POOL_SIZE = 16  # also the default of a shared.db.Database built directly
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
APP_ENVS = ("development", "production")

# A parser turns (variable name, non-empty raw value) into the typed value, or raises a
# ConfigError naming the variable.
Parser = Callable[[str, str], Any]


@dataclass(frozen=True)
class Integer:
    """An integer within [minimum, maximum] (either bound optional)."""

    minimum: int | None = None
    maximum: int | None = None

    def __call__(self, name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        low, high = self.minimum, self.maximum
        if low is not None and high is not None and not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
        if low == 0 and value < 0:
            raise ConfigError(f"{name} must not be negative, got {value}")
        if low is not None and value < low:
            raise ConfigError(f"{name} must be at least {low}, got {value}")
        if high is not None and value > high:
            raise ConfigError(f"{name} must be at most {high}, got {value}")
        return value


def seconds(name: str, raw: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def flag(name: str, raw: str) -> bool:
    """1/0, true/false, yes/no, on/off."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/0 (or true/false), got {value!r}")


def text(name: str, raw: str) -> str:
    """Any non-empty string, as given."""
    return raw


def items(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list of non-empty, stripped items."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of words (compared case-insensitively, returned as listed)."""

    choices: tuple[str, ...]

    def __call__(self, name: str, raw: str) -> str:
        for choice in self.choices:
            if raw.strip().lower() == choice.lower():
                return choice
        raise ConfigError(f"{name} must be one of {', '.join(self.choices)}, got {raw!r}")


@dataclass(frozen=True)
class Setting:
    """One environment variable: its parser, default and the README's words for it."""

    env: str
    parse: Parser
    default: Any
    meaning: str
    # The README's default column when the default is not a literal value (for example
    # "generated in development"); otherwise the column holds the literal default.
    shown: str | None = None


def setting(
    env: str, parse: Parser, default: Any, meaning: str, *, shown: str | None = None
) -> Any:
    """A schema field read from `env` (a dataclass field carrying its Setting)."""
    spec = Setting(env, parse, default, meaning, shown)
    return dataclasses.field(default=default, metadata={"setting": spec})


def settings_of(schema: type[DataclassInstance]) -> tuple[Setting, ...]:
    """The Settings declared by a schema class, in declaration order."""
    return tuple(field.metadata["setting"] for field in dataclasses.fields(schema))


def parse(schema: type[Schema], values: Mapping[str, str]) -> Schema:
    """An instance of `schema` from raw `values`; unset or empty means the default."""
    parsed: dict[str, Any] = {}
    for field in dataclasses.fields(schema):
        spec: Setting = field.metadata["setting"]
        raw = values.get(spec.env)
        if raw is not None and raw != "":
            parsed[field.name] = spec.parse(spec.env, raw)
    return schema(**parsed)


@dataclass(frozen=True)
class CommonSettings:
    """The settings every component reads."""

    app_env: str = setting(
        "APP_ENV",
        Choice(APP_ENVS),
        "development",
        "`production`: secrets must be given (never generated), session cookies are "
        "`Secure`, secrets are never printed",
    )
    # Read from the environment alone, before the file it names (see shared.config).
    dotenv_path: str | None = setting(
        "DOTENV_PATH",
        text,
        None,
        "The settings file read (and, in development, where generated secrets go)",
        shown="`.env` in the project",
    )
    redis_url: str | None = setting(
        "REDIS_URL",
        text,
        None,
        "Use this Redis instead of the embedded one (e.g. `redis://host:6379/0`)",
        shown="unset: `make run` starts its own Redis",
    )
    redis_port: int = setting(
        "REDIS_PORT",
        Integer(1, 65535),
        DEFAULT_REDIS_PORT,
        "Port of the embedded Redis `make run` starts (away from a system Redis on 6379)",
    )
    database_url: str | None = setting(
        "DATABASE_URL",
        text,
        None,
        "Use this PostgreSQL instead (`postgresql://user:pass@host:5432/db`); required by "
        "both services",
        shown="unset: `make run` starts its own PostgreSQL",
    )
    postgres_port: int = setting(
        "POSTGRES_PORT",
        Integer(1, 65535),
        DEFAULT_POSTGRES_PORT,
        "Port of the embedded PostgreSQL `make run` starts (away from a system one on 5432)",
    )
    database_pool_size: int = setting(
        "DATABASE_POOL_SIZE",
        Integer(minimum=1),
        DEFAULT_POOL_SIZE,
        "Connections per service process at most (a bounded pool; waits at most 2 s for one)",
    )
    bind_host: str = setting(
        "BIND_HOST",
        text,
        "127.0.0.1",
        "Address every component listens on (`0.0.0.0` in containers)",
    )
    log_level: str = setting(
        "LOG_LEVEL", Choice(LOG_LEVELS), "INFO", "Log level of every component"
    )
    metrics_allow: tuple[Network, ...] = setting(
        "METRICS_ALLOW",
        parse_networks,
        parse_networks("METRICS_ALLOW", DEFAULT_METRICS_ALLOW),
        "CIDRs allowed to read `/metrics` of the gateway and of both services (the TCP "
        "peer, never a header); others get 404",
        shown="loopback and private ranges",
    )

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def log_level_number(self) -> int:
        """LOG_LEVEL as a `logging` level number."""
        return logging.getLevelNamesMapping()[self.log_level]
