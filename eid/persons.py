"""Test persons of the development eID (issue 4 item 1; protocols.md §7.1-7.2).

Numbers are valid in form (date, födelsenummer, Luhn) but invented; Tolvan Tolvansson's
19121212-1212 is the number Swedish test environments traditionally use. One person is
over 100 (``121212+1212`` in the 10-digit form), one has a samordningsnummer (day + 60),
one simulates an eID below LoA3 so relying parties can test their refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from intyg.personnummer import PersonalIdentityNumber, luhn_check_digit

LOA2 = "http://id.elegnamnden.se/loa/1.0/loa2"
LOA3 = "http://id.elegnamnden.se/loa/1.0/loa3"


@dataclass(frozen=True)
class TestPerson:
    """A simulated eID holder. ``acr`` is what the ID token says about the assurance level."""

    id: str
    number: PersonalIdentityNumber
    given_name: str
    family_name: str
    birthdate: date
    eid: str = "BankID"
    acr: str = LOA3

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def is_coordination_number(self) -> bool:
        return self.number.is_coordination_number


def _person(id: str, digits: str, given: str, family: str, born: str, **kw: str) -> TestPerson:
    return TestPerson(
        id, PersonalIdentityNumber(digits), given, family, date.fromisoformat(born), **kw
    )


TEST_PERSONS: tuple[TestPerson, ...] = (
    _person("tolvan", "191212121212", "Tolvan", "Tolvansson", "1912-12-12"),
    _person("anna", "198112189884", "Anna", "Andersson", "1981-12-18"),
    _person("erik", "198503152376", "Erik", "Johansson", "1985-03-15"),
    _person("fatima", "199207045684", "Fatima", "Ali", "1992-07-04", eid="Freja eID Plus"),
    _person("bjorn", "196606011358", "Björn", "Åberg", "1966-06-01"),
    _person(
        "lars-olof", "197010632391", "Lars-Olof", "Nilsson", "1970-10-03", eid="Freja eID Plus"
    ),
    _person("maja", "200402294482", "Maja", "Lindqvist", "2004-02-29", eid="Freja eID", acr=LOA2),
)

PERSONS_BY_ID: dict[str, TestPerson] = {person.id: person for person in TEST_PERSONS}


#: Load tests only (bench/load.py): ``INTYG_EID_DEV_LOAD_PERSONS`` adds this many synthetic
#: persons ``load-00001`` ... with valid-in-form invented numbers, born from 1950-01-01 on.
MAX_LOAD_PERSONS = 10_000
_LOAD_BORN_FROM = date(1950, 1, 1)


def load_person(n: int) -> TestPerson:
    """Synthetic person ``n`` (1-based) for load tests: a date, birth number 9xx, Luhn."""
    if not 1 <= n <= MAX_LOAD_PERSONS:
        raise ValueError(f"load persons are numbered 1 to {MAX_LOAD_PERSONS}")
    born = _LOAD_BORN_FROM + timedelta(days=(n - 1) // 10)
    nine = born.strftime("%y%m%d") + f"9{(n - 1) % 10}{n % 7}"
    digits = born.strftime("%Y%m%d") + nine[6:] + str(luhn_check_digit(nine))
    return TestPerson(f"load-{n:05d}", PersonalIdentityNumber(digits), "Load", f"Person {n}", born)


def persons(load_persons: int = 0) -> tuple[TestPerson, ...]:
    """The test persons, plus ``load_persons`` synthetic ones (development load tests)."""
    return TEST_PERSONS + tuple(load_person(n) for n in range(1, load_persons + 1))


def find_person(person_id: str) -> TestPerson:
    """A person chosen on the picker (test or load person); KeyError if there is none."""
    if person_id.startswith("load-") and person_id[5:].isdigit():
        return load_person(int(person_id[5:]))
    return PERSONS_BY_ID[person_id]
