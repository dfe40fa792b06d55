"""``intyg demo``: journeys A and B over the real HTTP APIs against a fresh ``intyg up``
(issue 6 item 2), and a restart that keeps credentials, consents and transactions."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from . import INTYG, SERVICE_NAMES, Up, free_ports, up_environment

#: (SQLite file under the data folder, table) whose rows a restart must keep.
KEPT = (
    ("wallet/wallet.sqlite3", "credentials"),
    ("wallet/wallet.sqlite3", "consent_records"),
    ("verifier/verifier.sqlite3", "transactions"),
    ("verifier/verifier.sqlite3", "results"),
    ("issuer-af/issuer.sqlite3", "issuances"),
    ("issuer-myh/issuer.sqlite3", "issuances"),
)


def _counts(data: Path) -> dict[tuple[str, str], int]:
    counts = {}
    for file, table in KEPT:
        with sqlite3.connect(f"file:{data / file}?mode=ro", uri=True) as connection:
            counts[file, table] = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return counts


def _demo(data: Path, ports: dict[str, int]) -> str:
    demo = subprocess.run(
        [*INTYG, "demo"],
        env=up_environment(data, ports),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    return output


def test_demo_runs_both_journeys_and_a_restart_keeps_everything(tmp_path: Path) -> None:
    ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
    data = tmp_path / "data"
    up = Up(data, ports)
    try:
        up.wait_ready()
        output = _demo(data, ports)
    finally:
        assert up.stop() == 0, up.output
    assert "[A] verifier result: status=verified" in output
    assert "[B] verifier result: status=verified" in output
    assert '"eqf_level": 5' in output  # the disclosed claim reached the employer
    assert "Utvecklingsarbetsgivaren AB" in output  # the consent record names the recipient
    assert "Both journeys verified." in output

    before = _counts(data)
    assert all(before.values()), before
    again = Up(data, ports)
    try:
        again.wait_ready()
        assert _counts(data) == before
        # Stored => usable (I5 opens every holder key with the kept master key), consents
        # chained, single-use items used once: nothing the first run accepted was lost.
        check = subprocess.run(
            [*INTYG, "check", "--data-dir", str(data)],
            env=up_environment(data, ports),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "Both journeys verified." in _demo(data, ports)  # the restarted system works
    finally:
        assert again.stop() == 0, again.output
    after = _counts(data)
    assert all(after[key] > before[key] for key in before), (before, after)
