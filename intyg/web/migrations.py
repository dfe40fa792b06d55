"""Schema migrations for every service: Alembic, applied on start, one replica at a time.

Each service keeps its own Alembic scripts (``<service>/migrations``) and metadata; this
module is the one place that knows how they run: :func:`migrate` upgrades to ``head`` under a
PostgreSQL advisory lock (on SQLite the write lock serialises replicas), :func:`run_env` is
the whole body of a service's ``migrations/env.py``, and :func:`lock` serialises any other
start-up step across replicas.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from intyg.web import db
from intyg.web.settings import ServiceSettings

__all__ = ["alembic_config", "lock", "make_engine", "migrate", "run_env"]


def make_engine(settings: ServiceSettings) -> Engine:
    """The configured database (an SQLite file under ``data_dir`` by default)."""
    url = settings.sqlalchemy_url()
    if db.normalise_url(url).get_backend_name() == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return db.create_engine(url)


def alembic_config(migrations: Path, connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration for ``migrations`` (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["connection"] = connection
    return config


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def migrate(engine: Engine, migrations: Path, name: str, revision: str = "head") -> None:
    """Upgrade to ``revision``; ``name`` keys the advisory lock (one per service)."""
    key = _lock_key(f"intyg-migrate:{name}")
    with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(sa.select(sa.func.pg_advisory_lock(key)))
            connection.commit()
        try:
            command.upgrade(alembic_config(migrations, connection), revision)
            connection.commit()
        finally:
            if postgres:
                connection.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                connection.commit()


def lock(unit: db.Session, name: str) -> None:
    """Serialise a start-up step across replicas for the rest of the transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, a write
    session already holds the database's write lock (``BEGIN IMMEDIATE``).
    """
    if unit.get_bind().dialect.name == "postgresql":
        unit.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(name))))


def run_env(metadata: sa.MetaData) -> None:
    """The body of a service's ``migrations/env.py``: online migrations only.

    The connection comes from :func:`migrate`, or from ``sqlalchemy.url`` when the
    ``alembic`` command runs with the service's ``alembic.ini``.
    """
    from alembic import context  # only importable while Alembic runs an environment

    def run(connection: Any) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            compare_type=True,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        raise SystemExit("offline migrations are not supported; run against a database")
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = db.create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as fresh:
        run(fresh)
        fresh.commit()
    engine.dispose()
