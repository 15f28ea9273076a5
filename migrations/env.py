"""Alembic environment: migrations run online against DATABASE_URL (see scripts/migrate.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from shared.config import read_settings
from shared.db import sqlalchemy_url


def database_url() -> str:
    """The URL given by scripts.migrate, else DATABASE_URL from the settings."""
    given = context.config.get_main_option("sqlalchemy.url")
    if given:
        return given
    url = read_settings().database_url
    if not url:
        raise SystemExit("DATABASE_URL is not set")
    return sqlalchemy_url(url)


def run_migrations_online() -> None:
    """Apply the pending revisions in one transaction (PostgreSQL has transactional DDL)."""
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run_migrations_online()
