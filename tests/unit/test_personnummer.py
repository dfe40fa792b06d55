"""intyg.personnummer: protocols.md §7.1 vectors, one negative test per rule, properties."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intyg.personnummer import (
    PersonalIdentityNumber,
    PersonnummerError,
    is_valid,
    luhn_check_digit,
    parse,
)

TODAY = date(2026, 2, 16)

# Skatteverket's test personal identity numbers (open dataset "Testpersonnummer" on
# dataportal.se, as quoted by independent validators' test suites); never assigned to people.
SKATTEVERKET_TEST_NUMBERS = [
    "189002099811",
    "189103179801",
    "189506299818",
    "190006129803",
    "190108219817",
    "190704019801",
    "200306062381",
    "200607092384",
    "200802122390",
    "201701012393",
    "202503082386",
    "202503312387",
    "202504182391",
    "202508242381",
    "202509012387",
    "202510022383",
    "202512232386",
]


def make_number(born: date, serial: int, *, coordination: bool = False) -> str:
    """A valid 12-digit number: compute the Luhn digit over YYMMDDNNN."""
    day = born.day + (60 if coordination else 0)
    date_part = f"{born:%Y%m}{day:02d}"
    return f"{date_part}{serial:03d}{luhn_check_digit(f'{date_part[2:]}{serial:03d}')}"


# --- specification vectors ----------------------------------------------------------------


def test_luhn_worked_examples_from_protocols():
    assert luhn_check_digit("811218987") == 6
    assert luhn_check_digit("701063239") == 1


@pytest.mark.parametrize(
    "text", ["811218-9876", "8112189876", "198112189876", "19811218-9876", " 811218-9876 "]
)
def test_all_forms_normalise_to_twelve_digits(text):
    number = parse(text, today=TODAY)
    assert number.twelve_digits == "198112189876"
    assert number.birth_date == date(1981, 12, 18)
    assert not number.is_coordination_number


def test_samordningsnummer_vector():
    number = parse("701063-2391", today=TODAY)
    assert number.twelve_digits == "197010632391"
    assert number.is_coordination_number
    assert number.birth_date == date(1970, 10, 3)
    assert number.masked() == "19701063-****"


@pytest.mark.parametrize("twelve", SKATTEVERKET_TEST_NUMBERS)
def test_skatteverket_test_numbers(twelve):
    assert parse(twelve).twelve_digits == twelve
    assert parse(f"{twelve[:8]}-{twelve[8:]}").twelve_digits == twelve


# --- century of 10-digit forms -------------------------------------------------------------


def test_minus_picks_latest_century_not_after_reference_year():
    assert parse("811218-9876", today=TODAY).twelve_digits.startswith("1981")
    assert parse("030606-2381", today=TODAY).twelve_digits.startswith("2003")
    assert parse("250308-2386", today=date(2025, 1, 1)).twelve_digits.startswith("2025")
    assert parse("250308-2386", today=date(2024, 12, 31)).twelve_digits.startswith("1925")


def test_plus_means_hundred_or_older():
    assert parse("811218+9876", today=TODAY).twelve_digits.startswith("1881")
    assert parse("000612+9803", today=TODAY).twelve_digits == "190006129803"


def test_separator_changes_in_the_year_the_person_turns_hundred():
    twelve = make_number(date(1926, 6, 1), 1)
    ten = twelve[2:8]
    assert parse(f"{ten}+{twelve[8:]}", today=date(2026, 1, 1)).twelve_digits == twelve
    assert parse(f"{ten}-{twelve[8:]}", today=date(2025, 12, 31)).twelve_digits == twelve
    assert parse(f"{ten}-{twelve[8:]}", today=date(2026, 1, 1)).twelve_digits[:4] == "2026"


def test_default_reference_date_is_today():
    two_digit_year = f"{date.today():%y}"
    number = make_number(date(date.today().year, 1, 1), 123)
    assert parse(f"{two_digit_year}0101-{number[8:]}").twelve_digits == number


def test_ten_digit_presentation_uses_plus_from_year_of_hundredth_birthday():
    number = parse(make_number(date(1926, 2, 18), 1))
    assert number.ten_digits(today=date(2025, 12, 31)).startswith("260218-")
    assert number.ten_digits(today=date(2026, 1, 1)).startswith("260218+")


# --- privacy ------------------------------------------------------------------------------


def test_repr_and_str_are_masked():
    number = parse("811218-9876")
    assert repr(number) == "PersonalIdentityNumber('19811218-****')"
    assert str(number) == "19811218-****"
    assert f"{number}" == "19811218-****"
    assert "9876" not in repr([number])
    assert number.twelve_digits == "198112189876"


def test_frozen():
    number = parse("811218-9876")
    with pytest.raises(dataclasses.FrozenInstanceError):
        number.twelve_digits = "197010632391"  # type: ignore[misc]


def test_direct_construction_is_validated():
    with pytest.raises(PersonnummerError, match="check digit"):
        PersonalIdentityNumber("198112189877")


# --- one negative test per rule -----------------------------------------------------------

NEGATIVE_CASES = [
    # (text, expected message fragment)
    ("811218-987", "10 or 12 digits"),
    ("81121898765", "10 or 12 digits"),
    ("1981121898765", "10 or 12 digits"),
    ("81121898765", "10 or 12 digits"),
    ("19811218987654", "10 or 12 digits"),
    ("", "10 or 12 digits"),
    ("811218/9876", "other than digits"),
    ("811218 9876", "other than digits"),
    ("8112-189876", "separator may only stand before the last four digits"),
    ("811218--9876", "separator may only stand before the last four digits"),
    ("19811218-98-76", "10 or 12 digits"),
    ("19811218+9876", "only allowed in the 10-digit form"),
    ("81121a-9876", "other than digits"),
    ("٨١١٢١٨-٩٨٧٦", "other than digits"),  # Arabic-Indic digits are not ASCII digits
    ("178112189876", "century"),
    ("218112189876", "century"),
    ("19810018" + "9876", "month"),
    ("19811318" + "9876", "month"),
    ("19811200" + "9876", "day"),
    ("19811232" + "9876", "day"),
    ("19810431" + "9876", "day"),
    ("19230229" + "9876", "day"),  # 1923 is not a leap year
    ("19000229" + "9876", "day"),  # 1900 is not a leap year
    ("19811260" + "9876", "day"),  # samordningsnummer day 60 = day 0
    ("19811292" + "9876", "day"),  # samordningsnummer day 92 = day 32
    ("19810491" + "9876", "day"),  # samordningsnummer 31 April
    ("198112189877", "check digit"),
    ("811218-9875", "check digit"),
]


@pytest.mark.parametrize(("text", "fragment"), NEGATIVE_CASES)
def test_refused_with_named_rule_and_without_echo(text, fragment):
    with pytest.raises(PersonnummerError, match=fragment) as caught:
        parse(text, today=TODAY)
    digits = "".join(char for char in text if char.isdigit())
    if len(digits) >= 6:
        assert digits not in str(caught.value)
        assert digits[-4:] not in str(caught.value)


def test_refuses_fodelsenummer_000():
    nine = "811218000"
    text = f"19{nine}{luhn_check_digit(nine)}"
    with pytest.raises(PersonnummerError, match="000"):
        parse(text)


def test_leap_day_accepted():
    nine = "000229123"
    assert parse(f"20{nine}{luhn_check_digit(nine)}").birth_date == date(2000, 2, 29)
    nine = "960289123"  # samordningsnummer on 29 February 1996
    assert parse(f"19{nine}{luhn_check_digit(nine)}").birth_date == date(1996, 2, 29)


def test_refuses_non_string():
    with pytest.raises(PersonnummerError, match="string"):
        parse(198112189876)  # type: ignore[arg-type]


def test_is_valid():
    assert is_valid("811218-9876")
    assert not is_valid("811218-9875")


# --- properties ---------------------------------------------------------------------------

births = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
serials = st.integers(min_value=1, max_value=999)


@given(births, serials, st.booleans())
def test_generated_numbers_round_trip(born, serial, coordination):
    twelve = make_number(born, serial, coordination=coordination)
    number = parse(twelve, today=TODAY)
    assert number.twelve_digits == twelve
    assert number.birth_date == born
    assert number.is_coordination_number is coordination
    assert parse(f"{twelve[:8]}-{twelve[8:]}", today=TODAY) == number


@given(births, serials, st.booleans())
def test_ten_and_twelve_digit_forms_agree(born, serial, coordination):
    number = parse(make_number(born, serial, coordination=coordination), today=TODAY)
    ten = number.ten_digits(today=TODAY)
    assert parse(ten, today=TODAY) == number
    if "-" in ten:  # without a separator a 10-digit number means "under 100"
        assert parse(ten.replace("-", ""), today=TODAY) == number


@given(births, serials, st.booleans(), st.integers(min_value=2, max_value=11), st.data())
def test_any_single_digit_change_is_refused(born, serial, coordination, position, data):
    twelve = make_number(born, serial, coordination=coordination)
    original = twelve[position]
    replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != original]))
    changed = twelve[:position] + replacement + twelve[position + 1 :]
    with pytest.raises(PersonnummerError):
        parse(changed, today=TODAY)


@given(st.text(max_size=16))
def test_arbitrary_text_never_crashes(text):
    try:
        parse(text, today=TODAY)
    except PersonnummerError:
        pass


def test_past_reference_date():
    assert parse("811218-9876", today=date(1990, 1, 1)).twelve_digits == "198112189876"
    assert parse("250308-2386", today=date(1990, 1, 1)).twelve_digits == "192503082386"
