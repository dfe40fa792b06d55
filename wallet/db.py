"""Wallet database: engine, migrations on start, the session dependency.

The schema is owned by Alembic (``wallet/migrations``): :func:`migrate` upgrades to
``head`` on every start. On PostgreSQL an advisory lock makes concurrent replicas migrate
one at a time; on SQLite the write lock does the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from fastapi import Request
from sqlalchemy.engine import Engine

from intyg.web import db
from intyg.web.db import Session

from .settings import WalletSettings

__all__ = ["alembic_config", "get_session", "lock", "make_engine", "migrate"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_lock key: "intyg-wallet-migrate" folded to a bigint.
_MIGRATION_LOCK = 0x696E7479_6777616C


def make_engine(settings: WalletSettings) -> Engine:
    """The configured database (SQLite file under ``data_dir`` by default)."""
    url = settings.sqlalchemy_url()
    if db.normalise_url(url).get_backend_name() == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return db.create_engine(url)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration for the wallet's migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (applied on start)."""
    with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(sa.select(sa.func.pg_advisory_lock(_MIGRATION_LOCK)))
            connection.commit()
        try:
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
        finally:
            if postgres:
                connection.execute(sa.select(sa.func.pg_advisory_unlock(_MIGRATION_LOCK)))
                connection.commit()


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: a write unit of work on the app's engine."""
    with db.session(request.app.state.wallet.engine) as unit:
        yield unit


def lock(unit: Session, name: str) -> None:
    """Serialise a start-up step across replicas for the rest of the transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, a write
    session already holds the database's write lock (``BEGIN IMMEDIATE``).
    """
    if unit.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)
        unit.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
