"""intyg.strict_json: the parsing rules for untrusted JSON (T016, T112, T113, T116)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intyg import strict_json
from intyg.strict_json import StrictJSONError

# NUL and lone surrogates are refused on purpose (T116), so generated text leaves them out.
text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_round_trip(value) -> None:
    assert strict_json.loads(strict_json.dumps(value)) == value


def test_accepts_ordinary_json_with_whitespace() -> None:
    assert strict_json.loads(' \n{"a": [1, 2.5, "x", null, true]}\n') == {
        "a": [1, 2.5, "x", None, True]
    }


def test_bytes_must_be_utf8() -> None:
    with pytest.raises(StrictJSONError, match="UTF-8"):
        strict_json.loads(b'{"a": "\xff"}')


def test_duplicate_member_rejected() -> None:
    with pytest.raises(
        StrictJSONError, match="duplicate member name 'credential_configuration_id'"
    ):
        strict_json.loads(
            '{"credential_configuration_id": "a", "credential_configuration_id": "b"}'
        )


def test_nested_duplicate_rejected() -> None:
    with pytest.raises(StrictJSONError, match="duplicate"):
        strict_json.loads('{"a": {"b": 1, "b": 1}}')


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_rejected(constant: str) -> None:
    with pytest.raises(StrictJSONError, match="not valid JSON"):
        strict_json.loads(f'{{"a": {constant}}}')


def test_float_overflow_rejected() -> None:
    with pytest.raises(StrictJSONError, match="out of range"):
        strict_json.loads('{"exp": 1e309}')


def test_huge_integer_rejected_quickly() -> None:
    """T113: a 1,000,000-digit number is refused without converting it."""
    text = '{"iat": ' + "9" * 1_000_000 + "}"
    started = time.perf_counter()
    with pytest.raises(StrictJSONError, match="more than 40 digits"):
        strict_json.loads(text, max_bytes=2_000_000)
    assert time.perf_counter() - started < 5  # generous bound: only guards against hanging


def test_deep_nesting_rejected_without_recursion_error() -> None:
    """T112: 100,000 levels give a StrictJSONError, never RecursionError."""
    text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(StrictJSONError, match="nested deeper"):
        strict_json.loads(text)


def test_moderate_nesting_over_limit_rejected() -> None:
    depth = strict_json.MAX_DEPTH + 1
    with pytest.raises(StrictJSONError, match="nested deeper"):
        strict_json.loads("[" * depth + "]" * depth)
    strict_json.loads("[" * strict_json.MAX_DEPTH + "]" * strict_json.MAX_DEPTH)


def test_size_limit() -> None:
    with pytest.raises(StrictJSONError, match="larger than 10 bytes"):
        strict_json.loads('{"a": "0123456789"}', max_bytes=10)


@pytest.mark.parametrize("text", ['{"a": "\\ud800"}', '{"\\udfff": 1}', '["x\\u0000y"]'])
def test_lone_surrogates_and_nul_rejected(text: str) -> None:
    """T116: these cannot be stored in PostgreSQL text and are not valid Unicode data."""
    with pytest.raises(StrictJSONError):
        strict_json.loads(text)


def test_valid_escapes_accepted() -> None:
    assert strict_json.loads('{"a": "\\u00e5\\ud83d\\ude00"}') == {"a": "å😀"}


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "{'a': 1}", '{"a": 1,}', '"\x01"'])
def test_malformed_rejected(text: str) -> None:
    with pytest.raises(StrictJSONError):
        strict_json.loads(text)


def test_dumps_is_compact_and_keeps_unicode() -> None:
    assert strict_json.dumps({"namn": "Möbius", "n": [1, 2]}) == '{"namn":"Möbius","n":[1,2]}'
    assert json.loads(strict_json.dumps({"a": 1})) == {"a": 1}


@given(json_values)
def test_dumps_matches_the_standard_encoder(value) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert strict_json.dumps(value) == expected


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_dumps_refuses_non_json_numbers(number: float) -> None:
    with pytest.raises(ValueError):
        strict_json.dumps({"a": number})
