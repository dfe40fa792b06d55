"""The live services on PostgreSQL: databases per service, unique to a test, dropped after.

``intyg up`` takes ``INTYG_UP_POSTGRES_URL=postgresql://user@host:port/PREFIX`` and keeps the
records of each service in ``PREFIX_issuer_af``, ``PREFIX_issuer_myh``, ``PREFIX_verifier``
and ``PREFIX_wallet``. :func:`postgres_prefix_url` hands a test such a URL with a fresh
prefix on the server of ``INTYG_TEST_POSTGRES_URL`` and drops every ``PREFIX_*`` database
afterwards::

    with postgres_prefix_url() as url:
        up = Up(data, ports, settings={"INTYG_UP_POSTGRES_URL": url})
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from intyg.web import db

POSTGRES_URL = os.environ.get("INTYG_TEST_POSTGRES_URL")


def _admin_engine() -> sa.Engine:
    """Autocommit engine on the test server; skips the test when there is none."""
    if not POSTGRES_URL:
        pytest.skip("INTYG_TEST_POSTGRES_URL not set: no PostgreSQL server to run on")
    engine = sa.create_engine(
        db.normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    try:
        engine.connect().close()
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL of INTYG_TEST_POSTGRES_URL unreachable: {exc.orig}")
    return engine


def drop_databases(engine: sa.Engine, prefix: str) -> None:
    """Drop every ``prefix_*`` database (connections still open are ended)."""
    with engine.connect() as connection:
        names = connection.execute(
            sa.text("SELECT datname FROM pg_database WHERE datname LIKE :pattern"),
            {"pattern": prefix.replace("_", r"\_") + r"\_%"},
        ).scalars()
        for name in list(names):
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def postgres_prefix_url() -> Iterator[str]:
    """``INTYG_UP_POSTGRES_URL`` with a prefix unique to the caller; databases dropped after."""
    engine = _admin_engine()
    prefix = f"intyg_t{secrets.token_hex(5)}"
    url = db.normalise_url(POSTGRES_URL or "").set(drivername="postgresql", database=prefix)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop_databases(engine, prefix)
        engine.dispose()
