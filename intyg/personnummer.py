"""Swedish personal identity numbers and coordination numbers (protocols.md §7.1).

A personnummer is födelsetid ``YYMMDD`` + födelsenummer ``NNN`` + kontrollsiffra ``C``
(folkbokföringslagen 1991:481 §18). A samordningsnummer has the same
layout with 60 added to the day. intyg stores and exchanges both as 12 digits
``YYYYMMDDNNNC`` (the form the Swedish OIDC claims use); :func:`parse` also accepts the
10-digit forms ``YYMMDD-NNNC`` / ``YYMMDD+NNNC`` / ``YYMMDDNNNC`` and ``YYYYMMDD-NNNC``.

Personal numbers are personal data: no message, ``repr`` or ``str`` produced here contains
the full number, so they are safe to log. The full value is only available explicitly, as
:attr:`PersonalIdentityNumber.twelve_digits`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

#: Samordningsnummer add this to the day of the month (protocols.md §7.1).
COORDINATION_DAY_OFFSET = 60
#: Centuries a 12-digit number may carry: nobody alive was born before 1800 (protocols §7.1).
CENTURIES = frozenset({"18", "19", "20"})

# Luhn: the digit sum of 2*d for d = 0..9, so the check needs no arithmetic per digit.
_DOUBLED_DIGIT_SUM = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_ASCII_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_ALLOWED_CHARACTERS = re.compile(r"[0-9+-]*", re.ASCII)
_MAX_LENGTH = len("YYYYMMDD-NNNC")
_LENGTH_MESSAGE = "personal identity number must have 10 or 12 digits, optionally with a separator"


class PersonnummerError(ValueError):
    """The text is not a valid personnummer or samordningsnummer.

    The message names the rule that failed and never contains the number itself, because
    these messages end up in logs and error responses.
    """


def luhn_check_digit(nine_digits: str) -> int:
    """Kontrollsiffra over ``YYMMDDNNN`` (protocols §7.1: weights 2,1,2,…, digit sums, mod 10).

    The century is never part of the computation, so 10- and 12-digit forms share it.
    """
    total = 0
    for position, char in enumerate(nine_digits):
        digit = ord(char) - 48
        total += _DOUBLED_DIGIT_SUM[digit] if position % 2 == 0 else digit
    return (10 - total % 10) % 10


@dataclass(frozen=True, slots=True)
class PersonalIdentityNumber:
    """A validated personnummer or samordningsnummer, normalised to 12 digits.

    Construct it with :func:`parse`; constructing it directly validates the 12-digit form
    too. ``repr``/``str`` show only the masked form (``19811218-****``).
    """

    twelve_digits: str = field(repr=False)

    def __post_init__(self) -> None:
        _check_twelve_digits(self.twelve_digits)

    @property
    def is_coordination_number(self) -> bool:
        """True for a samordningsnummer (day of month + 60)."""
        return self.twelve_digits[6] in "6789"

    @property
    def birth_date(self) -> date:
        """The date the number encodes (for a samordningsnummer: the day minus 60).

        This is the date *of the number*. It may differ from the person's real birth date,
        because Skatteverket assigns a nearby date when a date runs out of free födelsenummer
        and coordination numbers may carry an uncertain date. Use the eID's ``birthdate``
        claim for the birth date; never derive it from the number.
        """
        return _number_date(self.twelve_digits)

    def masked(self) -> str:
        """Display form without the födelsenummer and check digit, e.g. ``19811218-****``."""
        return f"{self.twelve_digits[:8]}-****"

    def ten_digits(self, *, today: date | None = None) -> str:
        """The 10-digit presentation ``YYMMDD-NNNC``; ``+`` from the year the person turns 100.

        Reveals the full number: for forms and registers, never for logs.
        """
        reference = today or date.today()
        year = int(self.twelve_digits[:4])
        separator = "+" if reference.year - year >= 100 else "-"
        return f"{self.twelve_digits[2:8]}{separator}{self.twelve_digits[8:]}"

    def __repr__(self) -> str:
        return f"PersonalIdentityNumber({self.masked()!r})"

    def __str__(self) -> str:
        return self.masked()


def parse(text: str, *, today: date | None = None) -> PersonalIdentityNumber:
    """Parse a personnummer or samordningsnummer in any accepted form (protocols §7.1).

    ``today`` is the reference date for the century of 10-digit forms (default: today).
    Without a separator or with ``-`` the person is under 100 in ``today``'s year: the
    century is the latest one that puts the year at or before ``today.year``. With ``+``
    the person turns 100 or more this year, so the century is the latest one that puts the
    year at or before ``today.year - 100``.

    Raises :class:`PersonnummerError` naming the failed rule.
    """
    if not isinstance(text, str):
        raise PersonnummerError("personal identity number must be a string")
    stripped = text.strip()
    if len(stripped) > _MAX_LENGTH:
        raise PersonnummerError(_LENGTH_MESSAGE)
    if not _ALLOWED_CHARACTERS.fullmatch(stripped):
        raise PersonnummerError(
            "personal identity number contains characters other than digits and '-' or '+'"
        )
    digits = stripped.replace("-", "").replace("+", "")
    if len(digits) not in (10, 12):
        raise PersonnummerError(_LENGTH_MESSAGE)
    separator = stripped[-5] if len(stripped) == len(digits) + 1 else ""
    if len(stripped) > len(digits) + 1 or separator not in ("", "-", "+"):
        raise PersonnummerError("a separator may only stand before the last four digits")
    has_century = len(digits) == 12
    if separator == "+" and has_century:
        raise PersonnummerError("separator '+' is only allowed in the 10-digit form")
    if not has_century:
        digits = _century(digits[:2], separator == "+", today or date.today()) + digits
    return PersonalIdentityNumber(digits)


def is_valid(text: str, *, today: date | None = None) -> bool:
    """True if :func:`parse` accepts ``text``."""
    try:
        parse(text, today=today)
    except PersonnummerError:
        return False
    return True


def _century(two_digit_year: str, hundred_or_older: bool, today: date) -> str:
    """Century of a 10-digit number; the separator rule works on calendar years (protocols §7.1)."""
    base_year = today.year - 100 if hundred_or_older else today.year
    year = base_year - (base_year - int(two_digit_year)) % 100
    return f"{year // 100:02d}"


def _check_twelve_digits(digits: object) -> None:
    """Every rule of protocols §7.1 on the normalised ``YYYYMMDDNNNC`` form."""
    if not isinstance(digits, str) or len(digits) != 12 or not _ASCII_DIGITS.fullmatch(digits):
        raise PersonnummerError("normalised personal identity number must be 12 ASCII digits")
    if digits[:2] not in CENTURIES:
        raise PersonnummerError("century must be 18, 19 or 20")
    _number_date(digits)
    if digits[8:11] == "000":
        raise PersonnummerError("födelsenummer 000 is not assigned")
    if luhn_check_digit(digits[2:11]) != ord(digits[11]) - 48:
        raise PersonnummerError("check digit (Luhn) does not match")


def _number_date(digits: str) -> date:
    """The date encoded in a 12-digit number, with the samordningsnummer day offset removed."""
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:8])
    if not 1 <= month <= 12:
        raise PersonnummerError("month must be 01-12")
    if day > COORDINATION_DAY_OFFSET:
        day -= COORDINATION_DAY_OFFSET
    try:
        return date(year, month, day)
    except ValueError:
        raise PersonnummerError(
            "day is not valid for the month (nor, with 60 added, as a samordningsnummer)"
        ) from None


#: Digit runs that could be a 10- or 12-digit number with an optional separator.
_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9]{8}|[0-9]{6})[-+]?[0-9]{4}(?![0-9])")


def contains_personal_number(text: str, *, today: date | None = None) -> bool:
    """True if ``text`` contains a valid personnummer or samordningsnummer anywhere.

    For guards that keep personal numbers out of logs and audit records; a digit run is
    only reported when it passes every rule of :func:`parse` (so dates, amounts and ids
    rarely trip it).
    """
    return any(is_valid(match, today=today) for match in _CANDIDATE.findall(text))
