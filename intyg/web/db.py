"""Database plumbing for both deployment shapes (design.md "Deployment shapes"; security.md
L01, L02, L04, L20, T116, I3).

- :func:`create_engine`: SQLite files (embedded) or PostgreSQL through psycopg 3
  (scale-out). SQLite gets WAL, a busy timeout, foreign keys and ``synchronous=NORMAL``;
  write sessions start with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy
  timeout instead of failing on a read-to-write lock upgrade. SQL parameters are never
  rendered into error messages (they may hold personal numbers).
- :func:`session`: commit on success, roll back on error, and translate database failures:
  lock, serialization, connection, disk-full and read-only errors become
  :class:`~intyg.web.errors.ServiceUnavailable` (503 + ``Retry-After``), never a 500.
- Text parameters containing NUL are refused with ``invalid_request`` on both backends
  (PostgreSQL cannot store NUL in text; SQLite could, so the rule is made the same).
- :func:`consume_once`: single-use items (nonces, codes, states) redeemed by one atomic
  ``UPDATE ... WHERE used_at IS NULL RETURNING``: with any number of concurrent redeemers,
  exactly one gets the row.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import event
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from intyg.web.errors import ProtocolError, ServiceUnavailable, error_response

__all__ = [
    "Session",
    "consume_once",
    "create_engine",
    "install_database_error_handlers",
    "is_retriable",
    "normalise_url",
    "session",
    "translate_errors",
]

SQLITE_BUSY_TIMEOUT_MS = 5000
#: PostgreSQL connections are replaced after this long (below common idle-kill settings).
POOL_RECYCLE_SECONDS = 1800
#: RETURNING arrived in SQLite 3.35.0 (2021-03-12).
MIN_SQLITE_VERSION = (3, 35, 0)
_BEGIN_OPTION = "intyg_sqlite_begin"

# SQLite primary result codes that mean "try again" (https://sqlite.org/rescode.html).
_SQLITE_RETRIABLE = {
    5,  # SQLITE_BUSY: database is locked
    6,  # SQLITE_LOCKED: table is locked
    8,  # SQLITE_READONLY: read-only file or mount (L20)
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL: disk full (L20)
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
}
# PostgreSQL SQLSTATE classes / codes that mean "try again" (PostgreSQL docs, Appendix A).
_PG_RETRIABLE_CLASSES = ("08", "40", "53", "57P")
_PG_RETRIABLE_CODES = {"25006", "55P03", "58030"}


def normalise_url(url: str) -> sa.URL:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; ``sqlite:///path`` a file."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError("database URL must be sqlite:/// or postgresql://")
    return parsed


def create_engine(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    pool_size: int = 10,
    echo: bool = False,
) -> Engine:
    """An engine for ``url`` with the settings this module's guarantees rely on."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, sqlite_busy_timeout_ms, echo)
    # No pool_pre_ping: it costs a round trip per unit of work. A connection that died in the
    # pool fails its first statement with a disconnect error; SQLAlchemy then invalidates it
    # (and the rest of the pool) and session() answers 503, so the client's retry gets a
    # fresh connection. pool_recycle retires connections before server or proxy idle limits.
    engine = sa.create_engine(
        parsed,
        hide_parameters=True,
        pool_recycle=POOL_RECYCLE_SECONDS,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
        echo=echo,
    )
    _refuse_nul_text(engine)
    return engine


def _sqlite_engine(url: sa.URL, busy_timeout_ms: int, echo: bool) -> Engine:
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise RuntimeError(f"SQLite {sqlite3.sqlite_version} lacks RETURNING; need 3.35+")
    if url.database in (None, "", ":memory:"):
        raise ValueError("SQLite must be a file (WAL and sharing across connections)")
    engine = sa.create_engine(
        url,
        hide_parameters=True,
        echo=echo,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        # Driver-level autocommit: transactions are begun explicitly below, the only way
        # to get BEGIN IMMEDIATE from pysqlite (SQLAlchemy docs, "Serializable isolation").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    _refuse_nul_text(engine)
    return engine


def _has_nul(parameters: Any) -> bool:
    if isinstance(parameters, str):
        return "\x00" in parameters
    if isinstance(parameters, Mapping):
        return any(_has_nul(value) for value in parameters.values())
    if isinstance(parameters, list | tuple):
        return any(_has_nul(value) for value in parameters)
    return False


def _refuse_nul_text(engine: Engine) -> None:
    """T116: one behaviour on both backends; callers should refuse NUL at parse time
    (strict_json and the body readers already do), this is the last line."""

    @event.listens_for(engine, "before_cursor_execute")
    def _check(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if _has_nul(parameters):
            raise ProtocolError("invalid_request", "text value contains a NUL character")


def is_retriable(exc: BaseException) -> bool:
    """True for failures a client may retry: locks, serialization, connections, disk."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _SQLITE_RETRIABLE
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return "locked" in message or "disk" in message or "readonly" in message
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(_PG_RETRIABLE_CLASSES) or sqlstate in _PG_RETRIABLE_CODES
    # psycopg raises OperationalError without a SQLSTATE when the server is unreachable.
    return type(exc).__name__ == "OperationalError"


@contextmanager
def translate_errors() -> Iterator[None]:
    """Retriable database failures become ServiceUnavailable; bad data invalid_request."""
    try:
        yield
    except DBAPIError as exc:
        if is_retriable(exc):
            raise ServiceUnavailable("the service is busy, try again") from exc
        if isinstance(exc, sa.exc.DataError):
            raise ProtocolError("invalid_request", "a value could not be stored") from exc
        raise


@contextmanager
def session(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error, errors translated.

    ``write=True`` takes SQLite's write lock at BEGIN (queued by the busy timeout), so a
    read-then-write transaction cannot fail halfway on a lock upgrade (L04).
    """
    bind = engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE" if write else "DEFERRED"})
    with translate_errors(), Session(bind, expire_on_commit=False) as unit:
        try:
            yield unit
            unit.commit()
        except BaseException:
            unit.rollback()
            raise


def _table(model: Any) -> sa.Table:
    table = getattr(model, "__table__", model)
    if not isinstance(table, sa.Table):
        raise TypeError("consume_once needs a Table or a mapped class")
    return table


def consume_once(
    unit: Session,
    model: Any,
    key_column: str,
    key: Any,
    *,
    used_column: str = "used_at",
    now: datetime.datetime | int | None = None,
    where: Sequence[sa.ColumnElement[bool]] = (),
    delete: bool = False,
) -> Row[Any] | None:
    """Redeem a single-use row atomically; the row for the one winner, else None (I3).

    One statement, ``UPDATE t SET used_at=:now WHERE key=:k AND used_at IS NULL [AND
    where...] RETURNING *`` (or ``DELETE ... RETURNING *`` with ``delete=True``): the check
    and the mark cannot be separated, so concurrent redeemers get exactly one winner on
    SQLite (write lock) and PostgreSQL (row lock, then re-check of the WHERE clause under
    READ COMMITTED). ``where`` adds conditions such as ``expires_at > now``.
    """
    table = _table(model)
    conditions = [table.c[key_column] == key, *where]
    if delete:
        statement: Any = sa.delete(table).where(*conditions).returning(*table.c)
    else:
        used = table.c[used_column]
        # Integer unix seconds for tables that keep time that way (the issuer's), else a datetime.
        moment = datetime.datetime.now(datetime.UTC) if now is None else now
        statement = (
            sa.update(table)
            .where(*conditions, used.is_(None))
            .values({used_column: moment})
            .returning(*table.c)
        )
    with translate_errors():
        return unit.execute(statement).one_or_none()


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_retriable(exc):
        error = ServiceUnavailable("the service is busy, try again")
        return error_response(error.status_code, error.body(), error.headers)
    # Anything else is a bug: let the generic 500 handler answer without SQL text.
    raise exc


def install_database_error_handlers(app: FastAPI) -> None:
    """Safety net for database errors raised outside :func:`session`."""
    app.add_exception_handler(DBAPIError, _database_error)
