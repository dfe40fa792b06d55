"""Contention and lost connections (security.md L04, L05; issue 7 item 3): a database that is
busy answers 503 with ``Retry-After`` (never 500), clients that get it retry, and a unit of
work that records what already happened waits (``db.session(patience=...)``) instead of
being lost."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from intyg.web import db
from intyg.web.errors import ServiceUnavailable

from .faults import Journey
from .system import System

POSTGRES_URL = os.environ.get("INTYG_TEST_POSTGRES_URL")


@contextmanager
def write_lock_held(path: Path, seconds: float) -> Iterator[threading.Thread]:
    """Another writer holds the SQLite write lock of ``path`` for ``seconds``."""
    taken = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        connection.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
        connection.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(30)
    try:
        yield holder
    finally:
        holder.join(seconds + 30)


def test_sqlite_busy_is_503_at_once_and_waited_out_with_patience(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite3"
    engine = db.create_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=200)
    with db.session(engine) as unit:
        unit.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    with write_lock_held(path, 1.5):
        with pytest.raises(ServiceUnavailable) as busy, db.session(engine) as unit:
            unit.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert busy.value.status_code == 503 and busy.value.headers["Retry-After"] == "1"
        started = time.monotonic()
        with db.session(engine, patience=10) as unit:
            unit.execute(sa.text("INSERT INTO t VALUES (2)"))
        assert time.monotonic() - started > 0.5  # it waited for the other writer
    with db.session(engine, write=False) as unit:
        assert unit.execute(sa.text("SELECT x FROM t")).scalars().all() == [2]
    # Patience has an end: it answers 503 when the lock outlasts it.
    with write_lock_held(path, 2.0):
        with pytest.raises(ServiceUnavailable), db.session(engine, patience=0.3) as unit:
            unit.execute(sa.text("INSERT INTO t VALUES (3)"))
    engine.dispose()


@pytest.mark.skipif(not POSTGRES_URL, reason="INTYG_TEST_POSTGRES_URL not set")
def test_postgresql_lost_connection_is_503_and_ridden_out_with_patience() -> None:
    engine = db.create_engine(POSTGRES_URL or "", pool_size=1)
    admin = sa.create_engine(db.normalise_url(POSTGRES_URL or ""), poolclass=sa.NullPool)

    def kill_pooled_connection() -> None:
        with engine.connect() as connection:
            pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    kill_pooled_connection()
    with pytest.raises(ServiceUnavailable), db.session(engine) as unit:
        unit.execute(sa.text("SELECT 1"))
    kill_pooled_connection()
    with db.session(engine, patience=10) as unit:
        assert unit.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()
    admin.dispose()


def test_issuer_busy_answers_503_and_the_wallet_retries(tmp_path: Path) -> None:
    """The AF issuer's SQLite file is write-locked for 7 s by another writer (longer than its
    5 s busy timeout): the back office gets 503 + Retry-After, not 500; a person accepting an
    offer at that moment still gets the credential (the wallet retries the issuer's 503)."""
    with System(tmp_path / "data") as system:
        journey = Journey(system)
        journey.log_in()
        offer = journey.offer()
        issuer_db = system.layout.folder("issuer-af") / "issuer.sqlite3"
        headers = journey.af.client.headers
        with write_lock_held(issuer_db, 7.0):
            busy = httpx.post(
                system.url("issuer-af") + "/backoffice/v1/offers",
                json={"person": journey.record["person"], "record_id": journey.record["record_id"]},
                headers={"Authorization": headers["Authorization"]},
                timeout=30,
            )
            accepted = journey.accept(offer)
        log = system.log("issuer-af")
        report = system.check()
    assert busy.status_code == 503, busy.text
    assert busy.headers["Retry-After"] == "1"
    assert busy.json()["error"] == "temporarily_unavailable"
    assert accepted.status_code == 200, accepted.text
    assert "/credentials/" in str(accepted.url) or accepted.url.path == "/"
    assert " 503 " in log and " 500 " not in log
    assert report.ok, report.lines()
