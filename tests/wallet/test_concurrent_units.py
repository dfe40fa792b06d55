"""Units of the wallet meeting on one PostgreSQL database: replicas starting together load
the verifier registry (replace ``known_verifiers``) in turn under a start-up lock
(wallet/verifiers.py ``load_registry``), and two first logins of one person at once make
one account (wallet/accounts.py ``account_for``); none fails on another's rows."""

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
from tests.locks import wait_for_lock_wait
from wallet import verifiers
from wallet.accounts import account_for
from wallet.app import build_context, startup
from wallet.models import Account, KnownVerifier

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


def test_two_first_logins_at_once_make_one_account(database_url: str, tmp_path: Path) -> None:
    clock = Clock()
    ctx = build_context(make_wallet_settings(database_url, tmp_path / "w"), clock=clock)
    startup(ctx)
    key = "b" * 64
    found: list[Any] = []

    def second_login() -> None:
        try:
            found.append(account_for(ctx, key))
        except Exception as exc:  # reported below
            found.append(exc)

    try:
        with db.session(ctx.engine) as first:  # the first login, not yet committed
            account = Account(account_key=key, created_at=clock(), last_login_at=clock())
            first.add(account)
            first.flush()
            login = threading.Thread(target=second_login)
            login.start()
            wait_for_lock_wait(ctx.engine, "INSERT INTO accounts ")
        login.join(timeout=30)
        assert found == [account.id]
        with db.session(ctx.engine, write=False) as unit:
            assert unit.scalar(sa.select(sa.func.count()).select_from(Account)) == 1
    finally:
        ctx.engine.dispose()
