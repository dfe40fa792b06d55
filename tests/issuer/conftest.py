"""Fixtures for the issuer tests: a database per test on SQLite and, when
``INTYG_TEST_POSTGRES_URL`` is set, on PostgreSQL (a schema unique to the test, dropped
afterwards); settings, an injectable clock, a started issuer context and an app client."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from intyg.web import db
from intyg.web.crypto_store import generate_master_key
from issuer.app import IssuerContext, build_context, create_app, startup
from issuer.settings import IssuerSettings

POSTGRES_URL = os.environ.get("INTYG_TEST_POSTGRES_URL")
ISSUER_URL = "https://issuer.test"


class Clock:
    """Integer Unix seconds that tests move forward explicitly."""

    def __init__(self, now: int | None = None) -> None:
        self.now = int(time.time()) if now is None else now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds


def _backends() -> list[object]:
    postgres = pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="INTYG_TEST_POSTGRES_URL not set"),
    )
    return ["sqlite", postgres]


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL private to this test, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'issuer.sqlite3'}"
        return
    assert POSTGRES_URL
    schema = f"intyg_issuer_{secrets.token_hex(6)}"
    admin = db.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> IssuerSettings:
    values: dict[str, object] = {
        "environment": "development",
        "public_base_url": ISSUER_URL,
        "master_key": generate_master_key(),
        "database_url": database_url,
        "data_dir": data_dir,
        "agency": "af",
    }
    values.update(overrides)
    return IssuerSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> IssuerSettings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = db.create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def ctx(settings: IssuerSettings, clock: Clock, engine: sa.Engine) -> IssuerContext:
    """A started issuer (migrated, keys, status lists, person vault), without HTTP."""
    context = build_context(settings, clock=clock, engine=engine)
    startup(context)
    return context


@pytest.fixture
def client(settings: IssuerSettings, clock: Clock, engine: sa.Engine) -> Iterator[TestClient]:
    app = create_app(settings, clock=clock, engine=engine)
    with TestClient(app, base_url=ISSUER_URL) as test_client:
        yield test_client
