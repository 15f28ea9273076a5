"""`python -m scripts.migrate`: apply the database migrations (Alembic) to DATABASE_URL.

The one command for production deployments (the compose file runs it as a one-shot job
before the services start); `make run` and the tests call `upgrade()` themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.config import read_settings
from shared.db import sqlalchemy_url
from shared.exceptions import ConfigError

# Beside this package, not shared.config.PROJECT_ROOT: in the container image `shared` is
# installed into site-packages while scripts/ and migrations/ are copied to /app.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for our migrations against `database_url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # `%` is Alembic's interpolation character; a password may contain it.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` to `revision` (idempotent); ConfigError if not."""
    try:
        command.upgrade(alembic_config(database_url), revision)
    except Exception as exc:  # Alembic and the driver raise many types; each means "not done"
        raise ConfigError(f"database migrations failed: {type(exc).__name__}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Apply every pending migration to DATABASE_URL; exit 1 with a message on failure."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        sys.exit("usage: python -m scripts.migrate   (applies every pending migration)")
    try:
        url = read_settings().database_url
        if not url:
            raise ConfigError("DATABASE_URL is not set")
        upgrade(url)
    except ConfigError as exc:
        print(f"migrate: configuration error: {exc}", file=sys.stderr)
        return 1
    print("migrate: database is at the latest revision", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
