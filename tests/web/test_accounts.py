"""intyg.web.accounts: account key = HMAC-SHA256 of the 12-digit personal number."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intyg import jose, personnummer
from intyg.web.accounts import (
    ACCOUNT_KEY_PURPOSE,
    AccountKeyer,
    account_key,
    derive_account_hmac_key,
)
from intyg.web.sessions import derive_key

KEY = b"a" * 32
NUMBER = "198112189884"


def test_known_value() -> None:
    expected = hmac.new(KEY, NUMBER.encode(), hashlib.sha256).hexdigest()
    assert account_key(NUMBER, KEY) == expected
    assert account_key(NUMBER, KEY, encoding="base64url") == jose.b64url_encode(
        bytes.fromhex(expected)
    )


def test_all_spellings_give_the_same_account() -> None:
    parsed = personnummer.parse(NUMBER)
    keys = {
        account_key(spelling, KEY)
        for spelling in (NUMBER, "19811218-9884", "811218-9884", "8112189884", parsed)
    }
    assert len(keys) == 1


def test_key_does_not_contain_the_number() -> None:
    value = account_key(NUMBER, KEY)
    assert NUMBER not in value and "8112189884" not in value and len(value) == 64


def test_different_keys_different_accounts() -> None:
    assert account_key(NUMBER, KEY) != account_key(NUMBER, b"b" * 32)


def test_invalid_number_refused() -> None:
    with pytest.raises(personnummer.PersonnummerError):
        account_key("198112189885", KEY)


def test_short_key_refused() -> None:
    with pytest.raises(ValueError):
        account_key(NUMBER, b"short")
    with pytest.raises(ValueError):
        AccountKeyer(b"short")


def test_bad_encoding_refused() -> None:
    with pytest.raises(ValueError):
        account_key(NUMBER, KEY, encoding="base32")  # type: ignore[arg-type]


def test_derived_from_master_key() -> None:
    master = jose.b64url_encode(b"m" * 32)
    assert derive_account_hmac_key(master) == derive_key(master, ACCOUNT_KEY_PURPOSE)
    keyer = AccountKeyer.from_master_key(master)
    assert keyer(NUMBER) == account_key(NUMBER, derive_account_hmac_key(master))
    assert "key" not in repr(keyer).split("(", 1)[1] or "a" * 8 not in repr(keyer)


@given(st.integers(min_value=0, max_value=10**9 - 1))
def test_distinct_numbers_distinct_keys(n: int) -> None:
    nine = f"{n:09d}"
    other = f"{(n + 1) % 10**9:09d}"
    values = []
    for digits in (nine, other):
        text = "19" + digits + str(personnummer.luhn_check_digit(digits))
        if not personnummer.is_valid(text):
            return
        values.append(account_key(text, KEY))
    assert values[0] != values[1]
