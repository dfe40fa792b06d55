"""``intyg check`` (issue 7 item 2): clean after ``intyg demo``, and each invariant I1-I5
caught when a database is made to break it.

One system runs journeys A and B (``intyg demo`` over HTTP); then the services stop and each
test breaks a copy of the data folder with one SQL statement, as a lost write, a double
redemption or a crash would, and runs the real command on it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from intyg.web.invariants import Sources, check
from tests.system import INTYG, PORT_VARIABLES
from tests.system.postgres import postgres_prefix_url

from .system import System


def _demo(system: System) -> str:
    env = {
        "INTYG_DATA_DIR": str(system.layout.data_dir),
        **{PORT_VARIABLES[name]: str(port) for name, port in system.layout.ports.items()},
    }
    result = subprocess.run(
        [*INTYG, "demo"],
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("INTYG_")}


@pytest.fixture(scope="module")
def after_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "data"
    with System(data) as system:
        _demo(system)
    return data


@pytest.fixture
def data(after_demo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(after_demo, copy)
    return copy


def _run_check(data: Path, *extra: str) -> tuple[int, dict]:
    result = subprocess.run(
        [*INTYG, "check", "--data-dir", str(data), "--json", *extra],
        env=_base_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def _failing(report: dict) -> set[str]:
    return {name for name, o in report["invariants"].items() if o["violations"]}


def _sql(data: Path, service: str, statement: str, *params: object) -> int:
    name = "issuer" if service.startswith("issuer") else service
    with sqlite3.connect(data / service / f"{name}.sqlite3") as connection:
        return connection.execute(statement, params).rowcount


def _one(data: Path, service: str, query: str) -> tuple:
    name = "issuer" if service.startswith("issuer") else service
    with sqlite3.connect(data / service / f"{name}.sqlite3") as connection:
        row = connection.execute(query).fetchone()
    assert row is not None, query
    return tuple(row)


def test_clean_after_the_demo_journeys(after_demo: Path) -> None:
    code, report = _run_check(after_demo)
    assert code == 0, report
    assert report["sources"] == ["issuer-af", "issuer-myh", "wallet", "verifier"]
    counts = {name: o["checked"] for name, o in report["invariants"].items()}
    # AF: 2 formats x 5 keys, MYH the same; the wallet holds all 20; 2 presentations.
    assert counts["I1"] >= 40 and counts["I2"] >= 40, counts
    assert all(counts[name] > 0 for name in ("I3", "I4", "I5")), counts


def test_text_report_and_exit_code(data: Path) -> None:
    _sql(data, "issuer-af", "DELETE FROM audit_log WHERE action = 'credential.issued'")
    result = subprocess.run(
        [*INTYG, "check", "--data-dir", str(data)],
        env=_base_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "[FAIL] I1 issued => recorded" in result.stdout
    assert "[ok  ] I5 stored => usable" in result.stdout
    assert "violation(s)" in result.stdout


# -- I1 issued => recorded ---------------------------------------------------------------------


def test_i1_issuance_without_audit_entry(data: Path) -> None:
    (issuance,) = _one(data, "issuer-af", "SELECT id FROM issuances LIMIT 1")
    _sql(data, "issuer-af", "DELETE FROM audit_log WHERE subject = ?", f"issuance:{issuance}")
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I1"}
    assert issuance in report["invariants"]["I1"]["violations"][0]


def test_i1_issuance_without_status_entry(data: Path) -> None:
    list_id, idx = _one(data, "issuer-myh", "SELECT status_list_id, status_idx FROM issuances")
    _sql(
        data,
        "issuer-myh",
        "DELETE FROM status_entries WHERE status_list_id = ? AND idx = ?",
        list_id,
        idx,
    )
    code, report = _run_check(data)
    assert code == 1 and "I1" in _failing(report)
    assert "no status entry" in " ".join(report["invariants"]["I1"]["violations"])


def test_i1_revoked_in_the_record_but_not_in_the_list(data: Path) -> None:
    _sql(data, "issuer-af", "UPDATE issuances SET status = 'revoked' WHERE rowid = 1")
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I1"}
    assert (
        "disagree" in report["invariants"]["I1"]["violations"][0]
        or "says" in (report["invariants"]["I1"]["violations"][0])
    )


def test_i1_wallet_credential_the_issuer_never_recorded(data: Path) -> None:
    # A lost write: the credential reached the wallet, its issuance row is gone.
    (issuance,) = _one(data, "issuer-af", "SELECT id FROM issuances LIMIT 1")
    _sql(data, "issuer-af", "DELETE FROM issuances WHERE id = ?", issuance)
    _sql(data, "issuer-af", "DELETE FROM audit_log WHERE subject = ?", f"issuance:{issuance}")
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I1"}
    assert "no issuance record at issuer-af" in report["invariants"]["I1"]["violations"][0]


# -- I2 one index, one credential ---------------------------------------------------------------


def test_i2_two_wallet_credentials_share_an_index(data: Path) -> None:
    first, second = (
        json.loads(
            _one(
                data,
                "wallet",
                f"SELECT status_reference FROM credential_instances "
                f"WHERE status_reference LIKE '%statuslists%' "
                f"LIMIT 1 OFFSET {n}",
            )[0]
        )
        for n in (0, 1)
    )
    _sql(
        data,
        "wallet",
        "UPDATE credential_instances SET status_reference = ? WHERE status_reference = ?",
        json.dumps(first),
        json.dumps(second),
    )
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I2"}
    assert "share index" in report["invariants"]["I2"]["violations"][0]


def test_i2_issuance_in_a_suspension_list(data: Path) -> None:
    (suspension,) = _one(
        data, "issuer-af", "SELECT id FROM status_lists WHERE purpose = 'suspension'"
    )
    (issuance, idx) = _one(
        data,
        "issuer-af",
        "SELECT i.id, i.status_idx FROM issuances i JOIN status_lists l "
        "ON l.id = i.status_list_id WHERE l.purpose = 'revocation' LIMIT 1",
    )
    _sql(data, "issuer-af", "INSERT INTO status_entries VALUES (?, ?, 0)", suspension, idx)
    _sql(
        data,
        "issuer-af",
        "UPDATE issuances SET status_list_id = ? WHERE id = ?",
        suspension,
        issuance,
    )
    code, report = _run_check(data)
    assert code == 1 and "I2" in _failing(report)
    assert "suspension list" in " ".join(report["invariants"]["I2"]["violations"])


def test_i2_same_index_twice_in_one_issuer() -> None:
    # The UNIQUE constraint makes this impossible to store; the check does not rely on it.
    from intyg.web.invariants import IssuerView, Report, check_issuer

    row = type("Row", (), {"id": "a", "status_list_id": 1, "status_idx": 7, "status": "valid"})
    twin = type("Row", (), {"id": "b", "status_list_id": 1, "status_idx": 7, "status": "valid"})
    view = IssuerView(
        "issuer-x",
        set(),
        [row, twin],
        {(1, 7)},
        {},
        {"issuance:a", "issuance:b"},
        [],
        {},
        {},
        [],
        [],
    )
    report = Report()
    check_issuer(report, view, 5)
    assert any("has 2 credentials" in v for v in report.outcomes["I2"].violations)


# -- I3 exactly once ---------------------------------------------------------------------------


def test_i3_tx_code_attempts_beyond_the_cap(data: Path) -> None:
    _sql(data, "issuer-af", "UPDATE credential_offers SET tx_code_attempts = 9")
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I3"}
    assert "9 tx_code attempts" in report["invariants"]["I3"]["violations"][0]
    code, _ = _run_check(data, "--tx-code-max-attempts", "10")
    assert code == 0


def test_i3_more_access_tokens_than_redeemed_codes(data: Path) -> None:
    # A pre-authorized code honoured twice leaves a second token for one redemption.
    _sql(
        data,
        "issuer-myh",
        "INSERT INTO access_tokens (token_hash, person_id, record_id, "
        "configuration_ids, credential_identifiers, dpop_jkt, client_id, created_at, "
        "expires_at) SELECT 'x' || token_hash, person_id, record_id, configuration_ids, "
        "credential_identifiers, dpop_jkt, client_id, created_at, expires_at "
        "FROM access_tokens LIMIT 1",
    )
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I3"}
    assert "2 access tokens for 1 redeemed" in report["invariants"]["I3"]["violations"][0]


def test_i3_verifier_honoured_a_second_response(data: Path) -> None:
    (transaction,) = _one(data, "verifier", "SELECT id FROM transactions WHERE status = 'verified'")
    _sql(
        data,
        "verifier",
        "INSERT INTO rejections (transaction_id, kind, failed_checks, checks, "
        "at) VALUES (?, 'presentation', '[]', '[]', 0)",
        transaction,
    )
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I3"}
    assert "more than one response" in report["invariants"]["I3"]["violations"][0]


def test_i3_result_for_a_transaction_never_consumed(data: Path) -> None:
    _sql(data, "verifier", "UPDATE transactions SET used_at = NULL WHERE rowid = 1")
    code, report = _run_check(data)
    assert code == 1 and "I3" in _failing(report)
    assert "without being consumed" in " ".join(report["invariants"]["I3"]["violations"])


# -- I4 sent => consented ----------------------------------------------------------------------


def test_i4_presentation_received_without_a_consent(data: Path) -> None:
    # The consent row was never written (or lost) although the verifier got the presentation.
    _sql(data, "wallet", "DELETE FROM consent_keys")
    _sql(data, "wallet", "DELETE FROM consent_records")
    _sql(data, "wallet", "UPDATE presentation_sessions SET consent_id = NULL")
    code, report = _run_check(data)
    assert code == 1 and "I4" in _failing(report)
    violations = " ".join(report["invariants"]["I4"]["violations"])
    assert "got a presentation, no consent" in violations
    code, report = _run_check(data, "--allow-foreign-presentations")
    assert "got a presentation" not in " ".join(report["invariants"]["I4"]["violations"])


def test_i4_consent_record_edited(data: Path) -> None:
    _sql(
        data,
        "wallet",
        "UPDATE consent_records SET record = replace(record, "
        '\'"legal_basis": "consent"\', \'"legal_basis": "contract"\') WHERE seq = 1',
    )
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I4"}
    assert "the record was changed" in report["invariants"]["I4"]["violations"][0]


def test_i4_presentation_signed_by_keys_the_consent_does_not_name(data: Path) -> None:
    _sql(data, "wallet", "UPDATE consent_keys SET thumbprint = 'not-' || thumbprint")
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I4"}
    assert "does not name" in report["invariants"]["I4"]["violations"][0]


def test_i4_consent_written_after_the_presentation_arrived(data: Path) -> None:
    _sql(data, "verifier", "UPDATE transactions SET used_at = 1000 WHERE used_at IS NOT NULL")
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I4"}
    assert "written after it was sent" in report["invariants"]["I4"]["violations"][0]


# -- I5 stored => usable -----------------------------------------------------------------------


def test_i5_credential_whose_key_is_gone(data: Path) -> None:
    (key_id,) = _one(data, "wallet", "SELECT holder_key_id FROM credential_instances LIMIT 1")
    _sql(data, "wallet", "DELETE FROM holder_keys WHERE id = ?", key_id)
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I5"}
    assert "has no holder key" in report["invariants"]["I5"]["violations"][0]


def test_i5_sealed_key_that_does_not_open(data: Path) -> None:
    first, second = (
        _one(
            data,
            "wallet",
            f"SELECT id, sealed_private_jwk FROM holder_keys WHERE state = "
            f"'bound' ORDER BY id LIMIT 1 OFFSET {n}",
        )
        for n in (0, 1)
    )
    _sql(
        data,
        "wallet",
        "UPDATE holder_keys SET sealed_private_jwk = ? WHERE id = ?",
        second[1],
        first[0],
    )  # another key's blob: bound to another record
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I5"}
    assert "does not open" in report["invariants"]["I5"]["violations"][0]
    # Without the master key only presence is checked: the swap is not visible.
    (data / "wallet" / "master.key").unlink()
    code, report = _run_check(data)
    assert code == 0 and any("no master key" in note for note in report["notes"])


def test_i5_key_sent_in_a_proof_and_left_hanging(data: Path) -> None:
    # A crash between the proof and the credential, never cleaned up after the issuance ended.
    _sql(
        data,
        "wallet",
        "DELETE FROM credential_instances WHERE id = (SELECT min(id) FROM credential_instances)",
    )
    _sql(
        data,
        "wallet",
        "UPDATE credentials SET instance_count = instance_count - 1 WHERE id = "
        "(SELECT min(id) FROM credentials)",
    )
    _sql(
        data,
        "wallet",
        "UPDATE holder_keys SET state = 'proof_sent' WHERE id NOT IN "
        "(SELECT holder_key_id FROM credential_instances)",
    )
    code, report = _run_check(data)
    assert code == 1 and "I5" in _failing(report)
    assert "sent in a proof" in " ".join(report["invariants"]["I5"]["violations"])


def test_i5_card_without_its_instances(data: Path) -> None:
    _sql(data, "wallet", "UPDATE credentials SET instance_count = 6 WHERE rowid = 1")
    code, report = _run_check(data)
    assert code == 1 and _failing(report) == {"I5"}
    assert "lists 6 instances, has 5" in report["invariants"]["I5"]["violations"][0]


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_prefix_url() as url:
        yield url


def test_clean_and_caught_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    with System(tmp_path / "data", postgres_url=postgres_url) as system:
        _demo(system)
        sources = system.sources()
    report = check(sources)
    assert report.ok, report.lines()
    assert report.outcomes["I1"].checked >= 40
    engine = sa.create_engine(
        sources.issuers["issuer-af"].replace("postgresql:", "postgresql+psycopg:", 1)
    )
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE credential_offers SET tx_code_attempts = 7"))
    engine.dispose()
    report = check(Sources(issuers={"issuer-af": sources.issuers["issuer-af"]}))
    assert [o.invariant for o in report.outcomes.values() if o.violations] == ["I3"]
