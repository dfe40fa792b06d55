"""Replicas of the wallet starting together on one PostgreSQL database: each loads the
verifier registry (replace ``known_verifiers``) in turn under a start-up lock, so none fails
on another's rows (wallet/verifiers.py ``load_registry``)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from intyg.web import db
from tests.issuer.conftest import POSTGRES_URL, Clock
from wallet import verifiers
from wallet.app import build_context, startup
from wallet.models import KnownVerifier

from .conftest import make_wallet_settings

pytestmark = [
    pytest.mark.skipif(not POSTGRES_URL, reason="INTYG_TEST_POSTGRES_URL not set"),
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

REPLICAS = 3


def _registry(path: Path) -> Path:
    entries = [
        {
            "match": [f"x509_san_dns:employer{n}.example"],
            "name": {"sv": f"Arbetsgivare {n}", "en": f"Employer {n}"},
            "needs": [],
        }
        for n in range(5)
    ]
    path.write_text(json.dumps({"verifiers": entries}))
    return path


def test_replicas_starting_together_load_the_registry_in_turn(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    registry = _registry(tmp_path / "registry.json")
    settings = make_wallet_settings(database_url, tmp_path / "w", verifier_registry_file=registry)
    startup(build_context(settings, clock=clock))  # rows to replace, as on a restart
    contexts = [build_context(settings, clock=clock) for _ in range(REPLICAS)]
    arrived = threading.Barrier(REPLICAS)
    real = verifiers._entries

    def together(document: Any) -> Any:
        arrived.wait(timeout=60)  # every replica replaces the rows at the same moment
        return real(document)

    monkeypatch.setattr(verifiers, "_entries", together)
    try:
        with ThreadPoolExecutor(REPLICAS) as pool:
            list(pool.map(startup, contexts))  # raises what a replica raised
        assert all(ctx.ready for ctx in contexts)
        with db.session(contexts[0].engine, write=False) as unit:
            rows = list(unit.scalars(sa.select(KnownVerifier.client_id)))
        assert sorted(rows) == [f"x509_san_dns:employer{n}.example" for n in range(5)]
    finally:
        for ctx in contexts:
            ctx.engine.dispose()
