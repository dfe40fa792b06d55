"""bench/load.py in small (issue 7 item 3): distinct eID load persons, concurrent issuance
and presentation flows through the wallet's pages, no error, invariants clean. The full run
(200 wallets x 60 s, SQLite and PostgreSQL) is ``.venv/bin/python bench/load.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.load import Endpoints, run_load
from eid.persons import MAX_LOAD_PERSONS, TEST_PERSONS, find_person, load_person, persons
from eid.settings import EidSettings
from intyg import personnummer

from .system import System


def test_load_persons_are_distinct_valid_and_only_when_asked() -> None:
    many = persons(2000)
    assert many[: len(TEST_PERSONS)] == TEST_PERSONS
    numbers = [p.number.twelve_digits for p in many]
    assert len(set(numbers)) == len(numbers)
    assert all(personnummer.is_valid(n) for n in numbers[len(TEST_PERSONS) :])
    assert find_person("load-00042") == load_person(42)
    assert persons() == TEST_PERSONS
    with pytest.raises(ValueError):
        load_person(MAX_LOAD_PERSONS + 1)
    with pytest.raises(ValueError):
        EidSettings(environment="development", dev_load_persons=MAX_LOAD_PERSONS + 1)


def test_small_load_has_no_errors_and_keeps_the_invariants(tmp_path: Path) -> None:
    wallets = 6
    extra = {"eid": {"INTYG_EID_DEV_LOAD_PERSONS": str(wallets)}}
    with System(tmp_path / "data", extra_env=extra) as system:
        endpoints = Endpoints(
            system.url("eid"), system.url("issuer-af"), system.url("wallet"),
            system.url("verifier"),
        )  # fmt: skip
        people = [load_person(n) for n in range(1, wallets + 1)]
        stats, _, ready = asyncio.run(run_load(endpoints, system.secrets, people, 8.0))
        report = system.check()
    assert ready == wallets
    assert stats.error_count == 0, stats.examples
    assert len(stats.flows["issuance"]) >= wallets
    assert len(stats.flows["presentation"]) >= wallets
    assert report.ok, report.lines()
    assert report.outcomes["I4"].checked >= 2 * wallets
