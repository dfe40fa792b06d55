"""Strict JSON for untrusted input (RFC 8259 §4, RFC 7519 §4, security.md T016/T112/T113).

Every JSON text that reaches intyg from outside (JOSE headers and payloads, disclosures,
request bodies, DCQL queries, metadata) is parsed here, so the rules live in one place:

- duplicate member names are rejected, never "last one wins";
- `NaN`, `Infinity` and `-Infinity` are rejected (not JSON);
- integers longer than :data:`MAX_INT_DIGITS` digits are rejected before conversion
  (CVE-2020-10735 class: no quadratic int parsing);
- nesting deeper than :data:`MAX_DEPTH` is rejected; pathological nesting that would
  exhaust the parser's recursion is reported as the same error, never a ``RecursionError``;
- input larger than the caller's ``max_bytes`` is rejected before parsing.
"""

from __future__ import annotations

import json
from json import encoder as json_encoder
from typing import Any

MAX_DEPTH = 64
MAX_INT_DIGITS = 40
DEFAULT_MAX_BYTES = 1_000_000
_WHITESPACE = " \t\r\n"  # RFC 8259 §2 insignificant whitespace


class StrictJSONError(ValueError):
    """The text is not acceptable JSON; the message says why, without echoing the input."""


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise StrictJSONError(f"duplicate member name {name[:40]!r}")
            seen.add(name)
    return result


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS and len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise StrictJSONError(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_INT_DIGITS + 20:
        raise StrictJSONError("number literal too long")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise StrictJSONError("number out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_pairs,
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_reject_constant,
)
# The C scanner itself: json.JSONDecoder.raw_decode only adds a Python frame around it.
_SCAN_ONCE = _DECODER.scan_once


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (scalars are 0), computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level) for child in children)
    return deepest


def loads(data: str | bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse untrusted JSON text under the module's rules."""
    if len(data) > max_bytes:
        raise StrictJSONError(f"JSON text larger than {max_bytes} bytes")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError("JSON text is not valid UTF-8") from exc
    try:
        try:
            value, end = _SCAN_ONCE(data, 0)
        except StopIteration:  # nothing parses at 0: perhaps leading whitespace (RFC 8259 §2)
            start = len(data) - len(data.lstrip(_WHITESPACE))
            if not start:
                raise
            value, end = _SCAN_ONCE(data, start)
    except RecursionError as exc:
        raise StrictJSONError(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except StrictJSONError:
        raise
    except (StopIteration, ValueError, TypeError) as exc:
        raise StrictJSONError("malformed JSON") from exc
    if end != len(data) and data[end:].strip(_WHITESPACE):
        raise StrictJSONError("trailing data after JSON value")
    # Every nesting level opens and closes a bracket, so a short text or few brackets prove
    # shallow nesting cheaply.
    if (
        len(data) > 2 * MAX_DEPTH
        and data.count("[") + data.count("{") > MAX_DEPTH
        and depth(value) > MAX_DEPTH
    ):
        raise StrictJSONError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if "\\u" in data:
        _reject_escaped_controls(value)
    return value


def _reject_escaped_controls(value: Any) -> None:
    """Escapes can smuggle what raw text cannot: lone surrogates and NUL (T116)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise StrictJSONError("NUL character in a string")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise StrictJSONError("lone surrogate in a string") from exc


# allow_nan=False: NaN and Infinity are not JSON, and loads() refuses them (T018/T113).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# The C encoder that _ENCODER.encode builds on every call, built once. Without a markers dict
# (which could not be shared between threads) a circular value ends in RecursionError, which
# dumps reports as the ValueError json would have raised.
_C_ENCODE = (
    None
    if json_encoder.c_make_encoder is None
    else json_encoder.c_make_encoder(
        None,  # markers
        _ENCODER.default,
        json_encoder.encode_basestring,  # ensure_ascii=False
        None,  # indent
        ":",
        ",",
        False,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan, as _ENCODER
    )
)


def dumps(value: Any) -> str:
    """Compact JSON for signing: no whitespace, UTF-8 characters kept as they are."""
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    try:
        return "".join(_C_ENCODE(value, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or nesting too deep)") from None
