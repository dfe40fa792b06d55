"""Test persons of the development eID (issue 4 item 1; protocols.md §7.1-7.2).

Numbers are valid in form (date, födelsenummer, Luhn) but invented; Tolvan Tolvansson's
19121212-1212 is the number Swedish test environments traditionally use. One person is
over 100 (``121212+1212`` in the 10-digit form), one has a samordningsnummer (day + 60),
one simulates an eID below LoA3 so relying parties can test their refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from intyg.personnummer import PersonalIdentityNumber

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
