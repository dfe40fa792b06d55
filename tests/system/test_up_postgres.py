"""``intyg up`` on PostgreSQL (``INTYG_UP_POSTGRES_URL``): a database per service, created on
the first start, reused on the next; no SQLite file for the services that have a database."""

from __future__ import annotations

from pathlib import Path

import httpx
import sqlalchemy as sa

from intyg.web import db

from . import SERVICE_NAMES, Up, free_ports
from .postgres import postgres_prefix_url

DATABASE_SERVICES = ("issuer-af", "issuer-myh", "verifier", "wallet")


def _migrated_revision(url: str, name: str) -> str | None:
    """The Alembic revision of a service's database (migrated on start)."""
    prefix = url.rsplit("/", 1)[1]
    database = f"{prefix}_{name.replace('-', '_')}"
    engine = sa.create_engine(db.normalise_url(url).set(database=database), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def test_up_on_postgres_creates_a_database_per_service_and_keeps_it(tmp_path: Path) -> None:
    ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
    data = tmp_path / "data"
    with postgres_prefix_url() as url:
        up = Up(data, ports, settings={"INTYG_UP_POSTGRES_URL": url})
        try:
            up.wait_ready(timeout=90)
            for name in SERVICE_NAMES:
                path = "/.well-known/openid-configuration" if name == "eid" else "/readyz"
                assert httpx.get(up.url(name) + path, timeout=5).status_code == 200, name
            kids = httpx.get(up.url("issuer-af") + "/jwks.json").json()["keys"]
        finally:
            assert up.stop() == 0, up.output
        prefix = url.rsplit("/", 1)[1]
        for name in DATABASE_SERVICES:
            assert f"PostgreSQL database {prefix}_{name.replace('-', '_')} created" in up.output
            assert _migrated_revision(url, name), name
            assert list((data / name).glob("*.sqlite3")) == [], name
        assert "sample records" in up.output

        again = Up(data, ports, settings={"INTYG_UP_POSTGRES_URL": url})
        try:
            again.wait_ready(timeout=90)
            assert "created" not in again.output  # the databases are reused
            assert "sample records" not in again.output  # loaded once per set of databases
            assert httpx.get(again.url("issuer-af") + "/jwks.json").json()["keys"] == kids
        finally:
            assert again.stop() == 0, again.output


def test_up_refuses_a_postgres_url_without_a_prefix(tmp_path: Path) -> None:
    ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
    up = Up(tmp_path / "data", ports, settings={"INTYG_UP_POSTGRES_URL": "postgresql://x@h/A-b"})
    assert up.process.wait(30) == 1
    up._reader.join(5)
    assert "must end with a database name prefix" in up.output
    assert "Traceback" not in up.output
