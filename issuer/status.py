"""Status entries for issued credentials, and the signed status lists (protocols.md §5).

- SD-JWT VCs point into an IETF **Token Status List** (``bits`` 2: VALID 0, INVALID 1,
  SUSPENDED 2), published as a ``statuslist+jwt`` at ``/statuslists/{id}``.
- VCDM credentials point into a pair of W3C **Bitstring Status Lists** sharing indices:
  one with ``statusPurpose`` ``revocation`` (irreversible) and its ``suspension`` companion,
  each published as a ``vc+jwt`` credential at ``/status/{id}``.

Every credential gets its own index, drawn with :mod:`secrets` from the whole list, so the
index says nothing about issue order (TSL "Linkability Mitigation", HAIP: unique and
unpredictable). An allocated index is a :class:`~issuer.models.StatusEntry` row that is never
deleted: indices are never handed out twice, even after the credential expired (I2). When
random draws keep hitting taken indices the list is marked full and a new one starts.

Publication is cached in memory for at most ``status_ttl_seconds`` and rebuilt as soon as
the list's ``version`` changes, so a revocation is served by every replica at once and by
HTTP caches within ``ttl`` seconds.
"""

from __future__ import annotations

import datetime
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from intyg import status as core_status
from intyg import vcdm
from intyg.status import INVALID, SUSPENDED, VALID
from intyg.web import db

from .db import Unit, lock
from .keys import KeyRing
from .models import Issuance, IssuanceStatus, StatusEntry, StatusListRow
from .settings import IssuerSettings

__all__ = [
    "BITSTRING",
    "INVALID",
    "SUSPENDED",
    "TSL",
    "VALID",
    "Allocation",
    "OpenLists",
    "Published",
    "StatusManagementError",
    "StatusPublisher",
    "allocate",
    "credential_status",
    "ensure_lists",
    "set_status",
    "status_claim",
]

TSL = "tsl"
BITSTRING = "bitstring"
#: ``purpose`` of a Token Status List (it carries every status value at once).
PURPOSE_STATUS = "status"
REVOCATION = "revocation"
SUSPENSION = "suspension"
BITSTRING_MEDIA_TYPE = "application/vc+jwt"
#: Consecutive collisions after which a list counts as full (at 97 % occupancy the chance
#: of 32 collisions in a row is 38 %; at 50 % it is 2e-10).
MAX_ALLOCATION_ATTEMPTS = 32

_STATUS_NAMES = {VALID: IssuanceStatus.VALID, INVALID: IssuanceStatus.REVOKED}
_STATUS_NAMES[SUSPENDED] = IssuanceStatus.SUSPENDED


class StatusManagementError(ValueError):
    """A status change that is not allowed (e.g. undoing a revocation)."""


@dataclass(frozen=True)
class Allocation:
    """An allocated status entry: ``list_id`` is the TSL or the Bitstring revocation list."""

    kind: str
    list_id: int
    idx: int
    suspension_list_id: int | None = None


# Allocation statements, built once (they run for every credential).
_LISTS = StatusListRow.__table__  # type: ignore[attr-defined]
_OPEN_LIST_HEAD = db.Prepared(
    sa.select(_LISTS.c.id, _LISTS.c.size, _LISTS.c.suspension_list_id)
    .where(
        _LISTS.c.kind == sa.bindparam("kind"),
        _LISTS.c.purpose == sa.bindparam("purpose"),
        _LISTS.c.full.is_(False),
    )
    .order_by(_LISTS.c.id)
    .limit(1)
)


def _claim_statement(dialect: Any) -> db.Prepared:
    table = StatusEntry.__table__  # type: ignore[attr-defined]
    return db.Prepared(
        dialect.insert(table)
        .on_conflict_do_nothing(index_elements=["status_list_id", "idx"])
        .returning(table.c.idx)
    )


_CLAIM_INDEX = {"postgresql": _claim_statement(postgresql), "sqlite": _claim_statement(sqlite)}


# -- lists ---------------------------------------------------------------------------------


def _new_row(
    kind: str, purpose: str, size: int, bits: int, now: int, suspension_list_id: int | None
) -> StatusListRow:
    return StatusListRow(
        kind=kind,
        purpose=purpose,
        size=size,
        bits=bits,
        content=bytes(-(-size * bits // 8)),
        suspension_list_id=suspension_list_id,
        created_at=now,
        updated_at=now,
    )


def _create_list(unit: db.Session, settings: IssuerSettings, kind: str, now: int) -> StatusListRow:
    if kind == TSL:
        row = _new_row(
            TSL, PURPOSE_STATUS, settings.status_list_size, settings.status_list_bits, now, None
        )
    else:
        size = max(settings.status_list_size, core_status.MIN_BITSTRING_ENTRIES)
        companion = _new_row(BITSTRING, SUSPENSION, size, 1, now, None)
        unit.add(companion)
        unit.flush()
        row = _new_row(BITSTRING, REVOCATION, size, 1, now, companion.id)
    unit.add(row)
    unit.flush()
    return row


def _open_list(unit: db.Session, kind: str) -> StatusListRow | None:
    """The list new entries of ``kind`` go to (the oldest one not full)."""
    purpose = PURPOSE_STATUS if kind == TSL else REVOCATION
    return unit.scalars(
        sa.select(StatusListRow)
        .where(
            StatusListRow.kind == kind,
            StatusListRow.purpose == purpose,
            StatusListRow.full.is_(False),  # type: ignore[attr-defined]
        )
        .order_by(StatusListRow.id)
    ).first()


def _open_list_head(unit: Unit, kind: str) -> Any | None:
    """:func:`_open_list` without the list content: allocation needs only the id and size
    (the bitmap is written by :func:`set_status`, never at issuance)."""
    purpose = PURPOSE_STATUS if kind == TSL else REVOCATION
    return _OPEN_LIST_HEAD.first(unit, {"kind": kind, "purpose": purpose})


def ensure_lists(unit: db.Session, settings: IssuerSettings, now: int) -> None:
    """Start-up: one open Token Status List and one Bitstring pair exist."""
    lock(unit, "issuer-status-lists")
    for kind in (TSL, BITSTRING):
        if _open_list(unit, kind) is None:
            _create_list(unit, settings, kind, now)


# -- allocation ----------------------------------------------------------------------------


def _try_index(unit: Unit, list_id: int, idx: int, now: int) -> bool:
    """Claim ``(list_id, idx)``: ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, one
    statement that cannot abort the transaction, so no savepoint is needed. A concurrent
    transaction holding the same key makes PostgreSQL wait for its outcome, so exactly one
    of them gets the row."""
    statement = _CLAIM_INDEX[db.dialect_name(unit)]
    values = {"status_list_id": list_id, "idx": idx, "allocated_at": now}
    with db.translate_errors():
        return statement.first(unit, values) is not None


@dataclass
class OpenLists:
    """Per process: the head (id, size, suspension companion) of each kind's open list, so
    an allocation is one statement. A stale head is harmless: the claimed primary key is
    what counts, and a list another replica found full only costs retries here until the
    head is re-read (after ``max_age`` seconds, or at once when this process finds it full).
    A list this process creates is not remembered for ``suspend_after_create`` seconds: the
    creating transaction (the only one that sees it before commit) might still roll back.
    """

    max_age: float = 30.0
    suspend_after_create: float = 300.0
    _heads: dict[str, tuple[Any, float]] = field(default_factory=dict)
    _suspended_until: dict[str, float] = field(default_factory=dict)

    def get(self, kind: str) -> Any | None:
        entry = self._heads.get(kind)
        if entry is None or time.monotonic() - entry[1] > self.max_age:
            return None
        return entry[0]

    def put(self, kind: str, head: Any) -> None:
        now = time.monotonic()
        if now >= self._suspended_until.get(kind, 0.0):
            self._heads[kind] = (head, now)

    def drop(self, kind: str, *, created: bool = False) -> None:
        self._heads.pop(kind, None)
        if created:
            self._suspended_until[kind] = time.monotonic() + self.suspend_after_create


@contextmanager
def _orm(unit: Unit) -> Iterator[db.Session]:
    """The rare paths (a new list, a full list) use the ORM; on a Core connection they run
    in a session joined to the connection's transaction (it commits nothing itself)."""
    if isinstance(unit, sa.Connection):
        with db.Session(bind=unit) as session:
            yield session
    else:
        yield unit


def _start_list(unit: Unit, settings: IssuerSettings, kind: str, now: int) -> Any:
    """The open list of ``kind`` under the start-up lock, created if there is none."""
    with _orm(unit) as session, session.begin_nested():
        lock(session, "issuer-status-lists")
        return _open_list(session, kind) or _create_list(session, settings, kind, now)


def _mark_full(unit: Unit, list_id: int, now: int) -> None:
    with unit.begin_nested():
        unit.execute(
            sa.update(_LISTS).where(_LISTS.c.id == list_id).values(full=True, updated_at=now)
        )


def allocate(
    unit: Unit,
    settings: IssuerSettings,
    kind: str,
    now: int,
    *,
    randbelow: Callable[[int], int] = secrets.randbelow,
    open_lists: OpenLists | None = None,
) -> Allocation:
    """Take a random free index of the open list of ``kind`` (``"tsl"`` / ``"bitstring"``).

    Each draw is an INSERT of the (list, index) primary key that does nothing on conflict;
    a taken index (also one taken concurrently by another transaction) inserts no row and
    we draw again. The entry belongs to the surrounding transaction: if issuance fails and
    rolls back, the index is simply never used. ``open_lists`` spares the list lookup.
    """
    if kind not in (TSL, BITSTRING):
        raise ValueError("kind must be 'tsl' or 'bitstring'")
    for _ in range(2):
        row = open_lists.get(kind) if open_lists is not None else None
        if row is None:
            row = _open_list_head(unit, kind)
            if row is not None and open_lists is not None:
                open_lists.put(kind, row)
            elif row is None:
                row = _start_list(unit, settings, kind, now)
                if open_lists is not None:
                    open_lists.drop(kind, created=True)
        assert row.id is not None
        for _ in range(MAX_ALLOCATION_ATTEMPTS):
            idx = randbelow(row.size)
            if _try_index(unit, row.id, idx, now):
                return Allocation(kind, row.id, idx, row.suspension_list_id)
        _mark_full(unit, row.id, now)
        if open_lists is not None:
            open_lists.drop(kind)
    raise StatusManagementError("no free status list index")


def status_claim(settings: IssuerSettings, allocation: Allocation) -> dict[str, Any]:
    """The SD-JWT VC ``status`` claim (TSL §6.2)."""
    if allocation.kind != TSL:
        raise ValueError("a status claim needs a Token Status List entry")
    return {
        "status_list": {"idx": allocation.idx, "uri": settings.status_list_url(allocation.list_id)}
    }


def _bitstring_entry(url: str, idx: int, purpose: str) -> dict[str, str]:
    return {
        "id": f"{url}#{idx}",
        "type": core_status.BITSTRING_ENTRY_TYPE,
        "statusPurpose": purpose,
        "statusListIndex": str(idx),
        "statusListCredential": url,
    }


def credential_status(settings: IssuerSettings, allocation: Allocation) -> list[dict[str, str]]:
    """The VCDM ``credentialStatus`` entries: revocation and suspension (Bitstring §2.1)."""
    if allocation.kind != BITSTRING or allocation.suspension_list_id is None:
        raise ValueError("credentialStatus needs a Bitstring Status List entry")
    return [
        _bitstring_entry(
            settings.bitstring_list_url(allocation.list_id), allocation.idx, REVOCATION
        ),
        _bitstring_entry(
            settings.bitstring_list_url(allocation.suspension_list_id), allocation.idx, SUSPENSION
        ),
    ]


# -- status changes ------------------------------------------------------------------------


def _check_transition(current: str, value: int) -> None:
    if value not in _STATUS_NAMES:
        raise StatusManagementError("status must be VALID, INVALID or SUSPENDED")
    if current == IssuanceStatus.REVOKED:
        raise StatusManagementError("a revoked credential stays revoked")


def _write_entry(row: StatusListRow, idx: int, value: int, now: int) -> None:
    if row.kind == TSL:
        tsl = core_status.StatusList(row.bits, row.content)
        tsl.set(idx, value)
        row.content = tsl.to_bytes()
    else:
        bitstring = core_status.BitstringStatusList(row.content, row.bits)
        bitstring.set(idx, value)
        row.content = bitstring.to_bytes()
    row.version += 1
    row.updated_at = now


def _locked_list(unit: db.Session, list_id: int) -> StatusListRow:
    row = unit.get(StatusListRow, list_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise StatusManagementError("status list not found")
    return row


def set_status(unit: db.Session, issuance: Issuance | str, value: int, now: int) -> Issuance:
    """Set a credential's status: VALID, INVALID (revoke) or SUSPENDED.

    Revocation is irreversible; suspension can be undone with VALID. For a VCDM
    credential the revocation bit or the suspension bit of the pair is set (a revoked one
    also has its suspension bit cleared). The list rows are locked (``FOR UPDATE``) so
    concurrent changes to one list never lose each other's bits.
    """
    issuance_id = issuance if isinstance(issuance, str) else issuance.id
    row = unit.get(Issuance, issuance_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise StatusManagementError("issuance not found")
    _check_transition(row.status, value)
    primary = _locked_list(unit, row.status_list_id)
    if primary.kind == TSL:
        _write_entry(primary, row.status_idx, value, now)
        unit.add(primary)
    else:
        assert primary.suspension_list_id is not None
        companion = _locked_list(unit, primary.suspension_list_id)
        if value == INVALID:
            _write_entry(primary, row.status_idx, 1, now)
        _write_entry(companion, row.status_idx, 1 if value == SUSPENDED else 0, now)
        unit.add_all([primary, companion])
    row.status = _STATUS_NAMES[value]
    row.status_changed_at = now
    unit.add(row)
    unit.flush()
    return row


# -- publication ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """A signed list ready to serve."""

    body: str
    media_type: str
    max_age: int
    version: int
    generated_at: int


class StatusPublisher:
    """Signs and caches the published lists (per list id, per process)."""

    def __init__(
        self,
        engine: Engine,
        settings: IssuerSettings,
        keys: KeyRing,
        clock: Callable[[], int],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.keys = keys
        self.clock = clock
        self._cache: dict[int, Published] = {}
        self._lock = threading.Lock()

    def token(self, list_id: int) -> Published:
        """The Token Status List token of list ``list_id``; LookupError if none."""
        return self._publish(list_id, TSL)

    def bitstring_credential(self, list_id: int) -> Published:
        """The BitstringStatusListCredential (``vc+jwt``) of ``list_id``; LookupError if none."""
        return self._publish(list_id, BITSTRING)

    def _publish(self, list_id: int, kind: str) -> Published:
        now = self.clock()
        with db.session(self.engine, write=False) as unit:
            head = unit.execute(
                sa.select(StatusListRow.kind, StatusListRow.version).where(
                    StatusListRow.id == list_id  # type: ignore[arg-type]
                )
            ).first()
            if head is None or head.kind != kind:
                raise LookupError("no such status list")
            cached = self._cache.get(list_id)
            if (
                cached is not None
                and cached.version == head.version
                and now - cached.generated_at < self.settings.status_ttl_seconds
            ):
                return cached
            row = unit.get(StatusListRow, list_id)
            assert row is not None
        published = self._sign(row, now)
        with self._lock:
            self._cache[list_id] = published
        return published

    def _sign(self, row: StatusListRow, now: int) -> Published:
        active = self.keys.active()
        ttl = self.settings.status_ttl_seconds
        exp = now + self.settings.status_token_lifetime_seconds
        assert row.id is not None
        if row.kind == TSL:
            body = core_status.sign_status_list_token(
                core_status.StatusList(row.bits, row.content),
                uri=self.settings.status_list_url(row.id),
                key=active.key,
                now=now,
                ttl=ttl,
                exp=exp,
                iss=self.settings.issuer_identifier,
                header={"x5c": active.x5c},
            )
            media_type = core_status.STATUS_LIST_JWT_MEDIA_TYPE
        else:
            url = self.settings.bitstring_list_url(row.id)
            credential = core_status.bitstring_status_list_credential(
                core_status.BitstringStatusList(row.content, row.bits),
                id=url,
                issuer=self.settings.issuer_identifier,
                status_purpose=row.purpose,
                valid_from=datetime.datetime.fromtimestamp(now, datetime.UTC),
                valid_until=datetime.datetime.fromtimestamp(exp, datetime.UTC),
                ttl_ms=ttl * 1000,
            )
            body = vcdm.sign_credential(
                credential, active.key, header={"x5c": active.x5c}, iat=now, exp=exp
            )
            media_type = BITSTRING_MEDIA_TYPE
        return Published(body, media_type, ttl, row.version, now)
