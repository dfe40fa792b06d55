"""Alembic environment for the wallet: the connection comes from :func:`wallet.db.migrate`
(or from ``sqlalchemy.url`` when run by the ``alembic`` command with wallet/alembic.ini)."""

from __future__ import annotations

from alembic import context

from intyg.web import db
from wallet import models

config = context.config
target_metadata = models.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = db.create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as fresh:
        _run(fresh)
        fresh.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
