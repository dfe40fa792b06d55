"""The credential endpoint's database path (docs/issuer.md "Performance"): statements run at
the driver level (:class:`intyg.web.db.Prepared`) in a Core :func:`intyg.web.db.transaction`
behave like SQLAlchemy's own execution, and the per-process status list cache keeps I2, on
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from intyg.web import db
from intyg.web.errors import ProtocolError
from issuer import models, records
from issuer import status as issuer_status
from issuer.app import IssuerContext, build_context, startup

from .conftest import Clock, make_settings

NUMBER = "198112189876"


def _registration(ctx: IssuerContext) -> tuple[int, int]:
    with db.session(ctx.engine) as unit:
        person = ctx.person_vault().upsert(
            unit, NUMBER, given_name="Johan", family_name="Berg", birthdate="1981-12-18", now=1
        )
        registration = records.upsert_registration(
            unit,
            person,
            records.RegistrationInput(
                registered=True,
                category_code="11",
                category_label="Arbetslös",
                registered_since=datetime.date(2026, 1, 12),
            ),
            1,
        )
        assert person.id is not None and registration.id is not None
        return person.id, registration.id


def test_prepared_rows_equal_sqlalchemy_rows(ctx: IssuerContext) -> None:
    """Dates, booleans and JSON come back as SQLAlchemy would give them, on both backends."""
    person_id, record_id = _registration(ctx)
    values = {"person_id": person_id, "record_id": record_id}
    statement = records._REGISTRATION_SUBJECT
    with db.transaction(ctx.engine, write=False) as unit:
        fast = statement.first(unit, values)
        plain = unit.execute(statement.statement, values).first()
    assert fast is not None and plain is not None
    assert tuple(fast) == tuple(plain)
    assert fast.registered is True and fast.registered_since == datetime.date(2026, 1, 12)
    with db.transaction(ctx.engine, write=False) as unit:
        subject = records.build_subject(
            unit, ctx.person_vault(), "af", person_id, record_id, today=datetime.date(2026, 2, 1)
        )
    assert subject["registered_since"] == "2026-01-12" and subject["registered"] is True


def test_prepared_on_a_session_is_plain_execute(ctx: IssuerContext) -> None:
    person_id, record_id = _registration(ctx)
    with db.session(ctx.engine, write=False) as unit:
        row = records._REGISTRATION_SUBJECT.first(
            unit, {"person_id": person_id, "record_id": record_id}
        )
    assert row is not None and row.id == record_id


def test_prepared_errors_are_sqlalchemy_errors_and_nothing_stays(ctx: IssuerContext) -> None:
    """A duplicate proof hash raises IntegrityError (the credential endpoint's invalid_proof)
    and the transaction, status entry included, rolls back."""
    person_id, record_id = _registration(ctx)
    now = ctx.clock()
    fields = {
        "person_id": person_id,
        "record_id": record_id,
        "configuration_id": "RegistrationCertificate_dc+sd-jwt",
        "credential_format": "dc+sd-jwt",
        "kid": "kid",
        "proof_hash": models.digest("one proof"),
        "issued_at": now,
        "expires_at": now + 60,
    }
    with db.transaction(ctx.engine) as unit:
        allocation = issuer_status.allocate(unit, ctx.settings, issuer_status.TSL, now)
        records.record_issuance(unit, allocation=allocation, **fields)
    with pytest.raises(sa.exc.IntegrityError), db.transaction(ctx.engine) as unit:
        allocation = issuer_status.allocate(unit, ctx.settings, issuer_status.TSL, now)
        records.record_issuance(unit, allocation=allocation, **fields)
    with db.session(ctx.engine, write=False) as unit:
        assert unit.scalar(sa.select(sa.func.count()).select_from(models.Issuance)) == 1
        assert unit.scalar(sa.select(sa.func.count()).select_from(models.StatusEntry)) == 1


def test_prepared_refuses_nul_text(ctx: IssuerContext) -> None:
    with pytest.raises(ProtocolError, match="NUL"), db.transaction(ctx.engine) as unit:
        records._REGISTRATION_SUBJECT.first(unit, {"person_id": 1, "record_id": 1})
        issuer_status._OPEN_LIST_HEAD.first(unit, {"kind": "tsl\x00", "purpose": "status"})


def test_prepared_insert_needs_the_columns_with_defaults(ctx: IssuerContext) -> None:
    """SQLAlchemy applies Python-side column defaults during its own execution only."""
    with pytest.raises(TypeError, match="status"), db.transaction(ctx.engine) as unit:
        records._INSERT_ISSUANCE.rows(unit, {"id": "x", "person_id": 1})


def test_cached_open_lists_roll_over_and_never_reuse(
    database_url: str, tmp_path: Path, engine: sa.Engine, clock: Clock
) -> None:
    """I2 with the per-process list cache: full lists are left, indices stay unique."""
    settings = make_settings(database_url, tmp_path, status_list_size=16)
    context = build_context(settings, clock=clock, engine=engine)
    startup(context)
    cache = issuer_status.OpenLists()
    allocations = []
    for _ in range(40):
        with db.transaction(engine) as unit:
            allocations.append(
                issuer_status.allocate(unit, settings, issuer_status.TSL, clock(), open_lists=cache)
            )
    assert len({(a.list_id, a.idx) for a in allocations}) == 40
    assert len({a.list_id for a in allocations}) >= 3


def test_a_list_created_in_a_rolled_back_transaction_is_not_cached(
    database_url: str, tmp_path: Path, engine: sa.Engine, clock: Clock
) -> None:
    settings = make_settings(database_url, tmp_path, status_list_size=16)
    context = build_context(settings, clock=clock, engine=engine)
    startup(context)
    with db.session(engine) as unit:  # no open Token Status List left
        unit.execute(sa.update(models.StatusListRow).values(full=True))
    cache = issuer_status.OpenLists()
    with pytest.raises(RuntimeError), db.transaction(engine) as unit:
        first = issuer_status.allocate(unit, settings, issuer_status.TSL, clock(), open_lists=cache)
        issuer_status.allocate(unit, settings, issuer_status.TSL, clock(), open_lists=cache)
        raise RuntimeError("the issuance failed after its status entries")
    assert cache.get(issuer_status.TSL) is None
    with db.transaction(engine) as unit:
        again = issuer_status.allocate(unit, settings, issuer_status.TSL, clock(), open_lists=cache)
    with db.session(engine, write=False) as unit:  # a list that exists, not the rolled-back one
        assert unit.get(models.StatusListRow, again.list_id) is not None
        if first.list_id != again.list_id:
            assert unit.get(models.StatusListRow, first.list_id) is None
