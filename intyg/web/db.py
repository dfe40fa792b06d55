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

import collections
import datetime
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import event
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from intyg.web.errors import ProtocolError, ServiceUnavailable, error_response

__all__ = [
    "WORKFLOW_PATIENCE_SECONDS",
    "DriverConnection",
    "Prepared",
    "Session",
    "add_unless_taken",
    "consume_once",
    "consume_once_statement",
    "create_engine",
    "dialect_name",
    "driver_connection",
    "install_database_error_handlers",
    "is_retriable",
    "normalise_url",
    "patiently",
    "session",
    "transaction",
    "translate_errors",
]

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 5000
#: How long :func:`session` ``patience`` waits when a workflow must record what happened.
WORKFLOW_PATIENCE_SECONDS = 60.0
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
def session(engine: Engine, *, write: bool = True, patience: float = 0.0) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error, errors translated.

    ``write=True`` takes SQLite's write lock at BEGIN (queued by the busy timeout), so a
    read-then-write transaction cannot fail halfway on a lock upgrade (L04).

    ``patience`` (seconds) is for units that record what already happened outside the
    database (a credential received, a presentation delivered): they must not be lost to a
    moment of contention or a database restart, so the unit begins before its body runs and
    a retriable failure to begin (lock, lost connection) is retried for that long
    (:data:`WORKFLOW_PATIENCE_SECONDS`). A request that has changed nothing yet keeps the
    default, 0: it answers 503 at once and the client retries.
    """
    bind = engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE" if write else "DEFERRED"})
    with translate_errors(), Session(bind, expire_on_commit=False) as unit:
        try:
            if patience > 0:
                _begin_patiently(unit, patience)
            yield unit
            unit.commit()
        except BaseException:
            unit.rollback()
            raise


def _begin_patiently(unit: Session, patience: float) -> None:
    """Begin now (SQLite: the write lock; PostgreSQL: a live connection), retrying retriable
    failures with jittered backoff until ``patience`` seconds have passed (L04, L05)."""
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        try:
            unit.execute(sa.text("SELECT 1"))
            return
        except DBAPIError as exc:
            unit.rollback()
            if not is_retriable(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay + random.uniform(0, delay))  # noqa: S311 - jitter, not a secret
        delay = min(delay * 2, 1.0)


@contextmanager
def transaction(engine: Engine, *, write: bool = True) -> Iterator[sa.Connection]:
    """:func:`session` without the ORM: a Core connection for hot paths that run prebuilt
    statements (no identity map, no flush; a fraction of the CPU per unit of work).

    The same guarantees: commit on success, roll back on error, errors translated, SQLite's
    write lock taken at BEGIN when ``write``. ``connection.commit()`` inside the block is
    allowed (commit as you go): the next statement begins a new transaction.
    """
    with translate_errors(), engine.connect() as connection:
        if write and connection.dialect.name == "sqlite":
            connection.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        try:
            yield connection
            connection.commit()
        except BaseException:
            connection.rollback()
            raise


def add_unless_taken(unit: Session, row: Any) -> bool:
    """Insert ``row`` in a savepoint of ``unit``: False (nothing inserted, the unit still
    usable) when one of its UNIQUE keys was taken by a concurrent unit, which then has
    committed (PostgreSQL makes the insert wait for it). For read-then-create of rows that
    two requests may create at once (a new person, a first login): the caller reads the
    other's row instead of failing."""
    try:
        with unit.begin_nested():
            unit.add(row)
            unit.flush()
    except sa.exc.IntegrityError:
        return False
    return True


def dialect_name(unit: Session | sa.Connection) -> str:
    """``"postgresql"`` or ``"sqlite"``, for a :func:`session` or a :func:`transaction`."""
    if isinstance(unit, sa.Connection):
        return unit.dialect.name
    return unit.get_bind().dialect.name


class _Plan:
    """A statement compiled for one dialect and one set of parameter names."""

    def __init__(self, statement: Any, dialect: sa.Dialect, names: frozenset[str]) -> None:
        if isinstance(statement, sa.Insert):
            table = statement.table
            missing = [c.name for c in table.c if c.default is not None and c.key not in names]
            if missing:  # a Python-side default is applied by SQLAlchemy's execution only
                raise TypeError(f"columns with defaults need values here: {missing}")
        self.compiled = statement.compile(dialect=dialect, column_keys=sorted(names))
        self.sql = self.compiled.string
        self.positions = self.compiled.positiontup  # qmark (SQLite); None for named styles
        self.processors = self.compiled._bind_processors
        entries = self.compiled._result_columns
        self.returns_rows = bool(entries)
        self.row = collections.namedtuple("Row", [e.keyname for e in entries])  # type: ignore[misc]
        self.loaders = [e.type._cached_result_processor(dialect, None) for e in entries]

    def parameters(self, values: Mapping[str, Any]) -> Any:
        bound = self.compiled.construct_params(values)
        for name, processor in self.processors.items():
            if name in bound:
                bound[name] = processor(bound[name])
        if self.positions is not None:
            return tuple(bound[name] for name in self.positions)
        return bound

    def rows(self, fetched: list[Any]) -> list[Any]:
        if not any(self.loaders):
            return [self.row(*values) for values in fetched]
        return [
            self.row(*(f(v) if f else v for f, v in zip(self.loaders, values, strict=True)))
            for values in fetched
        ]


class Prepared:
    """A Core statement a hot path runs on every request, executed at the driver level in a
    :func:`transaction`: compiled once per dialect and set of parameter names, then run on
    the transaction's own DBAPI cursor. SQLAlchemy's per-execution work (execution context,
    result metadata, events) costs about twice the driver's own; the statement stays written
    in Core, one definition for both backends, with SQLAlchemy's type processing (JSON,
    dates, booleans) applied both ways, NUL text refused (T116) and driver errors raised as
    SQLAlchemy's, so :func:`translate_errors` and ``except IntegrityError`` work as usual.
    Rows are named tuples. On a :func:`session` it is plain ``unit.execute``.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, frozenset[str]], _Plan] = {}

    def rows(self, unit: Session | sa.Connection, values: Mapping[str, Any]) -> list[Any]:
        """Execute with ``values``; the rows returned (empty without RETURNING)."""
        if not isinstance(unit, sa.Connection):
            result = unit.execute(self.statement, values)
            return list(result) if result.returns_rows else []
        dialect = unit.dialect
        key = (dialect.name, frozenset(values))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(self.statement, dialect, key[1])
        if _has_nul(values):
            raise ProtocolError("invalid_request", "text value contains a NUL character")
        if not unit.in_transaction():
            unit.begin()  # SQLAlchemy's BEGIN (SQLite: BEGIN IMMEDIATE for writers)
        parameters = plan.parameters(values)
        cursor = unit.connection.cursor()
        try:
            cursor.execute(plan.sql, parameters)
            fetched = cursor.fetchall() if plan.returns_rows else []
        except dialect.loaded_dbapi.Error as exc:
            gone = dialect.is_disconnect(exc, unit.connection.dbapi_connection, cursor)
            if gone:
                unit.invalidate(exc)
            raise DBAPIError.instance(
                plan.sql,
                parameters,
                exc,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                dialect=dialect,
                connection_invalidated=gone,
            ) from exc
        finally:
            cursor.close()
        return plan.rows(fetched)

    def first(self, unit: Session | sa.Connection, values: Mapping[str, Any]) -> Any | None:
        """The first row, or None."""
        found = self.rows(unit, values)
        return found[0] if found else None


# -- driver-level statements (hot paths) -------------------------------------------------------

_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@lru_cache(maxsize=256)
def _for_driver(sql: str, paramstyle: str) -> str:
    """``:name`` parameters in the driver's style: sqlite3 takes them as they are, psycopg
    wants ``%(name)s`` (and ``%%`` for a literal ``%``)."""
    if paramstyle == "named":
        return sql
    return _PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))


class DriverConnection:
    """A pooled DBAPI connection in autocommit mode, for a hot path's few fixed statements
    (see :func:`driver_connection`): each statement is its own transaction, or several are
    grouped with :meth:`transaction`."""

    def __init__(self, raw: Any, dialect: sa.Dialect) -> None:
        self.raw = raw
        self.dialect_name = dialect.name
        self._paramstyle = "named" if dialect.name == "sqlite" else "pyformat"
        self._no_result = dialect.loaded_dbapi.ProgrammingError

    def execute(self, sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``:name`` parameters, same SQL on both backends where possible);
        the rows it returns. Text containing NUL is refused as everywhere (T116)."""
        if _has_nul(parameters):
            raise ProtocolError("invalid_request", "text value contains a NUL character")
        cursor = self.raw.cursor()
        try:
            cursor.execute(_for_driver(sql, self._paramstyle), parameters)
            return self._rows(cursor)
        finally:
            cursor.close()

    def _rows(self, cursor: Any) -> list[tuple[Any, ...]]:
        # fetchall, not a look at cursor.description first: psycopg builds the column
        # descriptions for that (~2% of a hot request); a statement without rows makes
        # psycopg's fetchall raise ProgrammingError and sqlite3's return [].
        try:
            return cursor.fetchall()  # type: ignore[no-any-return]
        except self._no_result:
            return []

    def execute_together(
        self, statements: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[list[tuple[Any, ...]]]:
        """Run ``statements`` in one transaction; the rows of each. PostgreSQL gets them in
        one round trip (psycopg pipeline mode: BEGIN, the statements, COMMIT; a lone
        statement is sent as it is, autocommit makes it its own transaction); an error in
        any rolls back all."""
        if any(_has_nul(parameters) for _, parameters in statements):
            raise ProtocolError("invalid_request", "text value contains a NUL character")
        if len(statements) == 1 and self.dialect_name != "sqlite":
            return [self.execute(*statements[0])]
        if self.dialect_name == "sqlite":
            with self.transaction():
                return [self.execute(sql, parameters) for sql, parameters in statements]
        with self.raw.pipeline(), self.raw.transaction():
            cursors = []
            for sql, parameters in statements:
                cursor = self.raw.cursor()
                cursor.execute(_for_driver(sql, self._paramstyle), parameters)
                cursors.append(cursor)
        try:
            return [self._rows(cursor) for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN (SQLite: ``BEGIN IMMEDIATE``, the write lock at once, L04) ... COMMIT, or
        ROLLBACK on any error."""
        cursor = self.raw.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE" if self.dialect_name == "sqlite" else "BEGIN")
            try:
                yield
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
        finally:
            cursor.close()


@contextmanager
def driver_connection(engine: Engine) -> Iterator[DriverConnection]:
    """:func:`transaction` one level lower, for the few statements of a hot path that runs
    at hundreds per second: the DBAPI connection from the engine's pool, in autocommit mode
    (a lone statement needs no BEGIN/COMMIT round trips), statements sent as written (no
    compilation, no result objects; psycopg prepares repeated ones on the server).

    The same guarantees as :func:`session`: retriable failures become 503, bad data 400, NUL
    refused; a connection found broken is dropped from the pool, not reused.
    """
    dialect, dbapi = engine.dialect, engine.dialect.loaded_dbapi
    try:
        with translate_errors():
            pooled = engine.raw_connection()
    except dbapi.Error as exc:  # the pool hands out the driver's own errors, not DBAPIError
        if is_retriable(exc):  # e.g. PostgreSQL restarting: 503, never 500 (L05)
            raise ServiceUnavailable("the service is busy, try again") from exc
        raise
    raw = pooled.driver_connection
    autocommit = dialect.name != "sqlite"  # sqlite3 is in driver autocommit already
    try:
        if autocommit:
            raw.autocommit = True
        yield DriverConnection(raw, dialect)
    except dbapi.Error as exc:
        if dialect.is_disconnect(exc, pooled.dbapi_connection, None):
            pooled.invalidate(exc)
            raise ServiceUnavailable("the service is busy, try again") from exc
        if is_retriable(exc):
            raise ServiceUnavailable("the service is busy, try again") from exc
        if isinstance(exc, dbapi.DataError):
            raise ProtocolError("invalid_request", "a value could not be stored") from exc
        raise
    finally:
        if autocommit and pooled.is_valid:
            try:
                raw.autocommit = False  # the pool's other users expect transactions
            except dbapi.Error as exc:
                pooled.invalidate(exc)
        pooled.close()


def patiently(work: Callable[[], T], patience: float) -> T:
    """Run ``work`` (a whole unit of work, e.g. one :func:`driver_connection` block),
    retrying it after a 503-class failure with jittered backoff until ``patience`` seconds
    have passed: for units that record what already happened (see :func:`session`)."""
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        try:
            return work()
        except ServiceUnavailable:
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay + random.uniform(0, delay))  # noqa: S311 - jitter, not a secret
        delay = min(delay * 2, 1.0)


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
    params: dict[str, Any] = {}
    if delete:
        conditions = [table.c[key_column] == key, *where]
        statement: Any = sa.delete(table).where(*conditions).returning(*table.c)
    else:
        # Integer unix seconds for tables that keep time that way (the issuer's), else a datetime.
        moment = datetime.datetime.now(datetime.UTC) if now is None else now
        statement = consume_once_statement(table, key_column, used_column=used_column, where=where)
        params = {"key": key, "now": moment}
    with translate_errors():
        return unit.execute(statement, params).one_or_none()


def consume_once_statement(
    model: Any,
    key_column: str,
    *,
    used_column: str = "used_at",
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> sa.Update:
    """The :func:`consume_once` statement, to build once and run many times: execute it with
    ``{"key": ..., "now": ...}`` and take ``.one_or_none()``. ``where`` may use
    ``sa.bindparam("now")`` too (e.g. ``expires_at > :now``)."""
    table = _table(model)
    return (
        sa.update(table)
        .where(table.c[key_column] == sa.bindparam("key"), *where, table.c[used_column].is_(None))
        .values({used_column: sa.bindparam("now")})
        .returning(*table.c)
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_retriable(exc):
        error = ServiceUnavailable("the service is busy, try again")
        return error_response(error.status_code, error.body(), error.headers)
    # Anything else is a bug: let the generic 500 handler answer without SQL text.
    raise exc


def install_database_error_handlers(app: FastAPI) -> None:
    """Safety net for database errors raised outside :func:`session`."""
    app.add_exception_handler(DBAPIError, _database_error)
