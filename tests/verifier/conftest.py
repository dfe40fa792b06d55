"""Fixtures for the verifier tests: a database per test on SQLite and, when
``INTYG_TEST_POSTGRES_URL`` is set, on PostgreSQL (a schema per test); a test PKI and trust
list, a loopback status list server, the app with its development employer client."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from intyg import jose, status
from intyg.web import db
from intyg.web.crypto_store import generate_master_key
from verifier.app import VerifierContext, create_app
from verifier.settings import VerifierSettings

from .helpers import Pki, StatusServer

POSTGRES_URL = os.environ.get("INTYG_TEST_POSTGRES_URL")
VERIFIER_URL = "https://verifier.test"
DEV_SECRET = "dev-employer-secret"
API_KEY = {"X-API-Key": f"dev-employer:{DEV_SECRET}"}


class Clock:
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
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'verifier.sqlite3'}"
        return
    assert POSTGRES_URL
    schema = f"intyg_verifier_{secrets.token_hex(6)}"
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


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki()


@pytest.fixture
def holder() -> jose.Key:
    return jose.generate_key("ES256")


@pytest.fixture(scope="session")
def status_server() -> Iterator[StatusServer]:
    server = StatusServer()
    yield server
    server.close()


@pytest.fixture
def status_lists(status_server: StatusServer, pki: Pki) -> dict[str, object]:
    """Fresh AF and MYH lists (2 bits per entry) for this test, published on loopback."""
    name = secrets.token_hex(4)
    af = status.StatusList.create(64, bits=2)
    myh = status.StatusList.create(64, bits=2)
    return {
        "af": af,
        "myh": myh,
        "af_uri": status_server.publish(f"af-{name}", af, pki.af),
        "myh_uri": status_server.publish(f"myh-{name}", myh, pki.myh),
        "name": name,
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_settings(database_url: str, data_dir: Path, trust_file: Path, **overrides: object):
    values: dict[str, object] = {
        "environment": "development",
        "public_base_url": VERIFIER_URL,
        "master_key": generate_master_key(),
        "database_url": database_url,
        "data_dir": data_dir,
        "trust_list_file": trust_file,
        "dev_api_client_secret": DEV_SECRET,
        "status_cache_min_seconds": 0,
    }
    values.update(overrides)
    return VerifierSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def trust_file(tmp_path: Path, pki: Pki) -> Path:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(pki.trust_list()), encoding="utf-8")
    return path


@pytest.fixture
def settings(database_url: str, tmp_path: Path, trust_file: Path) -> VerifierSettings:
    return make_settings(database_url, tmp_path, trust_file)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = db.create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def client(settings: VerifierSettings, clock: Clock, engine: sa.Engine) -> Iterator[TestClient]:
    app = create_app(settings, clock=clock, engine=engine)
    with TestClient(app, base_url=VERIFIER_URL) as test_client:
        yield test_client


@pytest.fixture
def ctx(client: TestClient) -> VerifierContext:
    return client.app.state.verifier  # type: ignore[attr-defined, no-any-return]
