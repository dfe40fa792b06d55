"""Issuer database: engine, migrations on start, the session dependency.

The schema is owned by Alembic (``issuer/migrations``), run by :mod:`intyg.web.migrations`:
:func:`migrate` upgrades to ``head`` on every start, one replica at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from fastapi import Request
from sqlalchemy.engine import Engine

from intyg.web import db
from intyg.web import migrations as web_migrations
from intyg.web.db import Session
from intyg.web.migrations import lock, make_engine

__all__ = ["Unit", "alembic_config", "get_session", "lock", "make_engine", "migrate"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: A unit of work: an ORM session (:func:`intyg.web.db.session`) or, on the OpenID4VCI hot
#: paths, a Core connection (:func:`intyg.web.db.transaction`). Code taking a ``Unit`` uses
#: only what both have: ``execute``, ``commit``, ``begin_nested``.
Unit = Session | sa.Connection


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration for the issuer's migrations (no ini file needed)."""
    return web_migrations.alembic_config(MIGRATIONS, connection)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (applied on start)."""
    web_migrations.migrate(engine, MIGRATIONS, "issuer", revision)


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: a write unit of work on the app's engine."""
    with db.session(request.app.state.issuer.engine) as unit:
        yield unit
