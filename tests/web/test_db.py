"""Database plumbing on SQLite and PostgreSQL (security.md L02, L04, L20, T116, I3)."""

from __future__ import annotations

import datetime
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, SQLModel

from intyg.web import db
from intyg.web.errors import ProtocolError, ServiceUnavailable, install_error_handlers

metadata = sa.MetaData()
codes = sa.Table(
    "web_test_codes",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
)
counter = sa.Table(
    "web_test_counter",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)
parents = sa.Table("web_test_parent", metadata, sa.Column("id", sa.Integer, primary_key=True))
children = sa.Table(
    "web_test_child",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("web_test_parent.id"), nullable=False),
)


class WebTestNonce(SQLModel, table=True):
    __tablename__ = "web_test_nonce"

    nonce: str = Field(primary_key=True, max_length=64)
    used_at: datetime.datetime | None = Field(default=None, nullable=True)


@pytest.fixture
def tables(engine: sa.Engine) -> Iterator[sa.Engine]:
    metadata.create_all(engine)
    WebTestNonce.__table__.create(engine)  # type: ignore[attr-defined]
    yield engine


def _insert_code(engine: sa.Engine, code: str = "c1", **values: object) -> None:
    with db.session(engine) as unit:
        unit.execute(sa.insert(codes).values(code=code, subject="person-1", **values))


def test_normalise_url() -> None:
    assert db.normalise_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert db.normalise_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert db.normalise_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(ValueError, match="sqlite:/// or postgresql://"):
        db.normalise_url("mysql://u@h/d")


def test_sqlite_must_be_a_file() -> None:
    with pytest.raises(ValueError, match="must be a file"):
        db.create_engine("sqlite://")


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'p.sqlite3'}", sqlite_busy_timeout_ms=1234)
    with engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == 1234
        assert pragma("foreign_keys") == 1
        assert pragma("synchronous") == 1  # NORMAL
    assert sqlite3.sqlite_version_info >= db.MIN_SQLITE_VERSION
    engine.dispose()


def test_session_commits_and_rolls_back(tables: sa.Engine) -> None:
    _insert_code(tables, "kept")
    with pytest.raises(RuntimeError), db.session(tables) as unit:
        unit.execute(sa.insert(codes).values(code="lost", subject="x"))
        raise RuntimeError("abort")
    with db.session(tables, write=False) as unit:
        assert unit.execute(sa.select(codes.c.code)).scalars().all() == ["kept"]


def test_foreign_keys_enforced(tables: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), db.session(tables) as unit:
        unit.execute(sa.insert(children).values(id=1, parent_id=99))


def test_consume_once_single_use(tables: sa.Engine) -> None:
    _insert_code(tables)
    with db.session(tables) as unit:
        row = db.consume_once(unit, codes, "code", "c1")
    assert row is not None and row.subject == "person-1" and row.used_at is not None
    with db.session(tables) as unit:
        assert db.consume_once(unit, codes, "code", "c1") is None
        assert db.consume_once(unit, codes, "code", "unknown") is None


def test_consume_once_extra_conditions_and_delete(tables: sa.Engine) -> None:
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    _insert_code(tables, "expired", expires_at=past)
    now = datetime.datetime.now(datetime.UTC)
    with db.session(tables) as unit:
        assert (
            db.consume_once(unit, codes, "code", "expired", where=[codes.c.expires_at > now])
            is None
        )
    with db.session(tables) as unit:
        row = db.consume_once(unit, codes, "code", "expired", delete=True)
        assert row is not None and row.code == "expired"
    with db.session(tables) as unit:
        assert db.consume_once(unit, codes, "code", "expired", delete=True) is None


def test_consume_once_with_sqlmodel_model(tables: sa.Engine) -> None:
    with db.session(tables) as unit:
        unit.add(WebTestNonce(nonce="n1"))
    with db.session(tables) as unit:
        assert db.consume_once(unit, WebTestNonce, "nonce", "n1") is not None
    with db.session(tables) as unit:
        assert db.consume_once(unit, WebTestNonce, "nonce", "n1") is None


def test_consume_once_rolled_back_is_not_consumed(tables: sa.Engine) -> None:
    # Redeeming inside a transaction that fails (e.g. signing failed) leaves it usable.
    _insert_code(tables)
    with pytest.raises(RuntimeError), db.session(tables) as unit:
        assert db.consume_once(unit, codes, "code", "c1") is not None
        raise RuntimeError("credential signing failed")
    with db.session(tables) as unit:
        assert db.consume_once(unit, codes, "code", "c1") is not None


def _race(engine: sa.Engine, workers: int, action) -> list[object]:
    barrier = threading.Barrier(workers)
    results: list[object] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            outcome: object = action()
        except Exception as exc:  # collected and asserted on below
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_fifty_concurrent_redeemers_exactly_one_winner(tables: sa.Engine) -> None:
    _insert_code(tables, "hot")
    engine = db.create_engine(str(tables.url.render_as_string(hide_password=False)), pool_size=50)

    def redeem() -> object:
        with db.session(engine) as unit:
            return db.consume_once(unit, codes, "code", "hot")

    results = _race(engine, 50, redeem)
    engine.dispose()
    winners = [r for r in results if r is not None and not isinstance(r, Exception)]
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(results) == 50
    assert len(winners) == 1
    assert errors == []  # busy timeout / row locks queue them; nobody fails


def test_fifty_concurrent_writers_lose_nothing(tables: sa.Engine) -> None:
    # L04: read-modify-write increments from 50 threads; every one must land.
    with db.session(tables) as unit:
        unit.execute(sa.insert(counter).values(id=1, value=0))
    engine = db.create_engine(str(tables.url.render_as_string(hide_password=False)), pool_size=50)

    def increment() -> object:
        with db.session(engine) as unit:
            value = unit.execute(
                sa.select(counter.c.value).where(counter.c.id == 1).with_for_update()
            ).scalar_one()
            unit.execute(sa.update(counter).where(counter.c.id == 1).values(value=value + 1))
        return True

    results = _race(engine, 50, increment)
    engine.dispose()
    assert results.count(True) == 50
    with db.session(tables, write=False) as unit:
        assert unit.execute(sa.select(counter.c.value)).scalar_one() == 50


def test_nul_in_text_is_a_clean_400(tables: sa.Engine) -> None:
    with pytest.raises(ProtocolError, match="NUL") as excinfo, db.session(tables) as unit:
        unit.execute(sa.insert(codes).values(code="n", subject="a\x00b"))
    assert excinfo.value.status_code == 400
    assert excinfo.value.error == "invalid_request"
    with db.session(tables, write=False) as unit:
        assert unit.execute(sa.select(sa.func.count()).select_from(codes)).scalar_one() == 0


def test_sqlite_lock_contention_is_service_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    engine = db.create_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=100)
    metadata.create_all(engine)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ServiceUnavailable) as excinfo, db.session(engine) as unit:
            unit.execute(sa.insert(codes).values(code="x", subject="y"))
        assert excinfo.value.status_code == 503
        assert excinfo.value.headers["Retry-After"] == "1"
        assert isinstance(excinfo.value.__cause__, OperationalError)
        assert "locked" in str(excinfo.value.__cause__.orig)
        # Readers are not blocked by a writer in WAL mode.
        with db.session(engine, write=False) as unit:
            assert unit.execute(sa.select(sa.func.count()).select_from(codes)).scalar_one() == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


def test_sqlite_read_only_database_is_service_unavailable(tmp_path: Path) -> None:
    # L20: a read-only mount. Opening the file read-only through a URI models it.
    path = tmp_path / "ro.sqlite3"
    setup = db.create_engine(f"sqlite:///{path}")
    metadata.create_all(setup)
    setup.dispose()
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(ServiceUnavailable), db.translate_errors(), engine.begin() as connection:
        connection.execute(sa.insert(codes).values(code="x", subject="y"))
    engine.dispose()


def test_unreachable_postgres_is_service_unavailable() -> None:
    engine = db.create_engine("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(ServiceUnavailable), db.session(engine) as unit:
        unit.execute(sa.text("SELECT 1"))
    engine.dispose()


def test_serialization_failure_is_retriable(tables: sa.Engine) -> None:
    if tables.dialect.name != "postgresql":
        pytest.skip("serialization failures are a PostgreSQL behaviour")
    _insert_code(tables, "s")
    first = tables.connect().execution_options(isolation_level="SERIALIZABLE")
    second = tables.connect().execution_options(isolation_level="SERIALIZABLE")
    try:
        first.begin()
        first.execute(sa.select(codes)).all()
        with second.begin():
            second.execute(sa.update(codes).values(subject="second"))
        with pytest.raises(ServiceUnavailable) as excinfo, db.translate_errors():
            first.execute(sa.update(codes).values(subject="first"))
        assert excinfo.value.__cause__.orig.sqlstate == "40001"
    finally:
        first.rollback()
        first.close()
        second.close()


def test_database_errors_in_fastapi_become_503(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    engine = db.create_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=50)
    metadata.create_all(engine)
    app = FastAPI()
    install_error_handlers(app)
    db.install_database_error_handlers(app)

    @app.post("/write")
    def write() -> dict[str, str]:
        with engine.begin() as connection:  # bypasses db.session: the safety net answers
            connection.execute(sa.insert(codes).values(code="x", subject="y"))
        return {}

    @app.get("/bug")
    def bug() -> dict[str, str]:
        with engine.begin() as connection:
            connection.execute(sa.text("SELECT secret FROM missing_table"))
        return {}

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            busy = client.post("/write")
            bug_response = client.get("/bug")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"] == "temporarily_unavailable"
    assert bug_response.status_code == 500
    assert "missing_table" not in bug_response.text and "SELECT" not in bug_response.text


def test_parameters_hidden_from_error_messages(tables: sa.Engine) -> None:
    _insert_code(tables, "dup")
    with pytest.raises(sa.exc.IntegrityError) as excinfo, db.session(tables) as unit:
        unit.execute(sa.insert(codes).values(code="dup", subject="199001011234"))
    assert "199001011234" not in str(excinfo.value)


def test_postgres_native_nul_refusal_also_maps_to_400(tables: sa.Engine) -> None:
    # Without the engine's NUL guard PostgreSQL itself refuses; the translation still
    # answers invalid_request rather than a 500.
    if tables.dialect.name != "postgresql":
        pytest.skip("PostgreSQL refuses NUL in text; SQLite stores it")
    raw = sa.create_engine(tables.url, hide_parameters=True)
    try:
        with pytest.raises(ProtocolError, match="could not be stored") as excinfo:
            with db.translate_errors(), raw.begin() as connection:
                connection.execute(sa.insert(codes).values(code="n", subject="a\x00b"))
        assert isinstance(excinfo.value.__cause__, sa.exc.DataError)
    finally:
        raw.dispose()
