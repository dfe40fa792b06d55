"""Replicas of one issuer starting together on one PostgreSQL database (docker-compose
``--scale``, uvicorn ``--workers``): the start-up seeding runs once, one replica at a time,
and every replica starts (issuer/app.py ``startup``, the start-up locks of issuer/records.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from intyg.web import db
from issuer import records
from issuer.app import build_context, startup
from issuer.models import Person, ServiceSecret

from .conftest import POSTGRES_URL, Clock, make_settings

pytestmark = [
    pytest.mark.skipif(not POSTGRES_URL, reason="INTYG_TEST_POSTGRES_URL not set"),
    # SQLite: a write session holds the database's write lock, replicas queue by themselves.
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

REPLICAS = 3


@pytest.mark.parametrize("agency", ["af", "myh"])
def test_replicas_starting_together_seed_the_sample_data_once(
    agency: str, database_url: str, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url, tmp_path, agency=agency, dev_sample_data=True)
    contexts = [build_context(settings, clock=clock) for _ in range(REPLICAS)]
    arrived = threading.Barrier(REPLICAS)
    real = records.load_sample_data

    def together(*args: Any, **kwargs: Any) -> None:
        arrived.wait(timeout=60)  # every replica reaches the sample data at the same moment
        real(*args, **kwargs)

    monkeypatch.setattr(records, "load_sample_data", together)
    try:
        with ThreadPoolExecutor(REPLICAS) as pool:
            list(pool.map(startup, contexts))  # raises what a replica raised
        assert all(ctx.ready for ctx in contexts)
        with db.session(contexts[0].engine, write=False) as unit:
            people = list(unit.scalars(sa.select(Person)))
            secrets = list(unit.scalars(sa.select(ServiceSecret)))
        assert len({person.lookup_key for person in people}) == len(people) > 0
        assert len([s for s in secrets if s.name == records.LOOKUP_SECRET_NAME]) == 1
        # One lookup secret for all: each replica finds the others' people.
        vault = contexts[0].person_vault()
        numbers = [vault.identity(person).personal_identity_number for person in people]
        for ctx in contexts[1:]:
            with db.session(ctx.engine, write=False) as unit:
                for number in numbers:
                    assert ctx.person_vault().find(unit, number) is not None
    finally:
        for ctx in contexts:
            ctx.engine.dispose()
