"""Shared service rules: audit entries never hold personal numbers; client secrets hashed."""

from __future__ import annotations

import pytest

from intyg import personnummer
from intyg.web.audit import AuditError, check_no_personal_numbers
from intyg.web.client_secrets import hash_client_secret, verify_client_secret


@pytest.mark.parametrize(
    "value",
    [
        "person 198112189876 revoked",
        "811218-9876",
        {"details": {"nested": ["x", "19811218-9876"]}},
        {"198112189876": 1},
        198112189876,
        ("a", "701063-2391"),  # samordningsnummer
    ],
)
def test_personal_numbers_refused_anywhere(value: object) -> None:
    with pytest.raises(AuditError, match="personal identity numbers"):
        check_no_personal_numbers(value)


@pytest.mark.parametrize(
    "value",
    ["issuance:5b0c", "amount 1234567890", "2026-11-27", {"count": 12}, ["198112189875"], True],
)
def test_other_digits_pass(value: object) -> None:
    check_no_personal_numbers(value)  # 198112189875 fails the Luhn check: not a number


def test_nesting_limit() -> None:
    value: object = "x"
    for _ in range(12):
        value = [value]
    with pytest.raises(AuditError, match="nested too deeply"):
        check_no_personal_numbers(value)


def test_contains_personal_number() -> None:
    assert personnummer.contains_personal_number("id=19811218-9876;")
    assert not personnummer.contains_personal_number("id=19811218-9875;")


def test_client_secret_hash_round_trip() -> None:
    stored = hash_client_secret("s3cret")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert verify_client_secret("s3cret", stored)
    assert not verify_client_secret("s3cret!", stored)
    assert hash_client_secret("s3cret") != stored  # salted


@pytest.mark.parametrize("stored", ["", "plain", "bcrypt$1$2$3$AA$AA", "scrypt$x$8$1$AA$AA"])
def test_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert not verify_client_secret("anything", stored)
