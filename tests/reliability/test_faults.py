"""The short fault scenarios of docs/reliability.md as tests (issue 7 item 4): each runs the
whole system, hurts it, and requires the scenario's criteria and a clean invariant check.
The long ones (200-wallet load, PostgreSQL restarted mid-load) run outside CI:
``bench/load.py`` and ``bench/faults/run.py postgres-restart``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from . import faults


def _passes(row: faults.Row) -> None:
    assert row.report.ok, "\n".join(row.report.lines())
    assert row.expected, row.markdown()


@pytest.mark.parametrize("point", ["signed", "committed"])
def test_issuer_killed_while_issuing(tmp_path: Path, point: str) -> None:
    _passes(faults.issuer_crash(point, tmp_path / "data"))


def test_wallet_killed_after_its_proofs_recovers_its_keys(tmp_path: Path) -> None:
    _passes(faults.wallet_crash_after_proof(tmp_path / "data"))


def test_wallet_killed_between_consent_and_direct_post(tmp_path: Path) -> None:
    _passes(faults.wallet_crash_after_consent(tmp_path / "data"))


@pytest.mark.parametrize("mode", ["down", "hang"])
def test_status_list_host_unreachable_fails_closed(tmp_path: Path, mode: str) -> None:
    _passes(faults.status_list_unreachable(mode, tmp_path / "data"))


def test_hanging_dependency_leaves_other_flows_alone(tmp_path: Path) -> None:
    _passes(faults.hanging_dependency(tmp_path / "data"))


@pytest.mark.skipif(
    not faults.FAKETIME_LIBRARY.exists() and not os.environ.get("CI"),
    reason="libfaketime not installed (apt-get install faketime; CI installs it)",
)
def test_clock_skew_within_and_beyond_leeway(tmp_path: Path) -> None:
    _passes(faults.clock_skew(tmp_path / "data"))


def test_issuer_key_rotation_with_credentials_outstanding(tmp_path: Path) -> None:
    _passes(faults.key_rotation(tmp_path / "data"))


def test_junk_direct_post_flood_stores_nothing(tmp_path: Path) -> None:
    _passes(faults.junk_flood(tmp_path / "data", posts=600, concurrency=30))


def test_bombs_ten_at_a_time_keep_memory_bounded(tmp_path: Path) -> None:
    _passes(faults.bombs(tmp_path / "data"))
