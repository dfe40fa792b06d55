"""The records credentials are made from, and the credential subjects built from them.

- People (:class:`PersonVault`): found by an HMAC of the 12-digit number; the number and
  the names are sealed. Nothing here logs or returns a number except
  :meth:`PersonVault.identity`, for building a subject.
- Arbetsförmedlingen: a person's registration as a job seeker (protocols.md §7.4).
- MYH: the qualifications catalogue (imported from a JSON file shaped like MYH's open
  qualifications data, protocols.md §7.3) and the qualifications awarded to people.
- Subjects (``RegistrationCertificate``, ``QualificationAttestation``) are validated with
  :func:`intyg.schemas.validate_subject` when built, and the record inputs are validated
  the same way before they are stored, so a stored record always yields a valid subject.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from intyg import jose, personnummer, schemas, strict_json
from intyg.web import db
from intyg.web.crypto_store import CryptoStore, record_aad

from .db import Unit, lock
from .models import (
    AFRegistration,
    Issuance,
    IssuanceStatus,
    MYHAward,
    MYHQualification,
    Person,
    ServiceSecret,
)
from .settings import IssuerSettings
from .status import Allocation

__all__ = [
    "SAMPLE_CATALOGUE",
    "CatalogueImportError",
    "ImportReport",
    "PersonGone",
    "PersonIdentity",
    "PersonVault",
    "RecordError",
    "RegistrationInput",
    "RowError",
    "award_qualification",
    "build_subject",
    "credential_expiry",
    "find_awards",
    "find_registration",
    "import_catalogue",
    "insert_issuance",
    "issuance_row",
    "load_catalogue_file",
    "load_lookup_secret",
    "load_sample_data",
    "qualification_subject",
    "record_issuance",
    "registration_subject",
    "subject_from_row",
    "upsert_registration",
]

SAMPLE_CATALOGUE = Path(__file__).resolve().parent / "catalogue" / "myh-qualifications.sample.json"
LOOKUP_SECRET_NAME = "person_lookup_hmac_key"  # noqa: S105 - a row name, not a secret
DAY = 86_400
#: MYH's "Status" values a qualification can be awarded under.
AWARDABLE_STATUSES = frozenset({"Aktiv"})
KNOWN_STATUSES = frozenset({"Aktiv", "Upphörd", "Under handläggning"})
MAX_CATALOGUE_ROWS = 10_000

# Schema checks of record inputs run on a subject with this stand-in identity, so the
# rules live in schemas/ only and no person's data is needed to check a record.
_STAND_IN_IDENTITY = {
    "personal_identity_number": "198112189876",
    "given_name": "Test",
    "family_name": "Test",
    "birthdate": "1981-12-18",
}


class RecordError(ValueError):
    """A record was refused; the message names the field and the rule, never a value."""


# -- people --------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class PersonIdentity:
    """The identity claims of a person (opened from the vault)."""

    personal_identity_number: str
    given_name: str
    family_name: str
    birthdate: datetime.date

    def claims(self) -> dict[str, str]:
        return {
            "personal_identity_number": self.personal_identity_number,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "birthdate": self.birthdate.isoformat(),
        }

    def __repr__(self) -> str:
        return f"PersonIdentity({self.personal_identity_number[:8]}-****)"


def load_lookup_secret(unit: db.Session, store: CryptoStore, now: int) -> bytes:
    """The HMAC key for person lookups; created (sealed) on first start. Replicas starting
    together wait for each other (start-up lock), so exactly one creates it and every
    other reads that one instead of failing on its primary key."""
    aad = record_aad("service_secret", LOOKUP_SECRET_NAME)
    lock(unit, "issuer-lookup-secret")
    row = unit.get(ServiceSecret, LOOKUP_SECRET_NAME)
    if row is None:
        secret = secrets.token_bytes(32)
        unit.add(
            ServiceSecret(name=LOOKUP_SECRET_NAME, sealed=store.seal(secret, aad), created_at=now)
        )
        unit.flush()
        return secret
    return store.open(row.sealed, aad)


def _date(value: datetime.date | str, name: str) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise RecordError(f"{name} must be a date YYYY-MM-DD") from None


class PersonVault:
    """Stores and finds people without keeping a personal number in plain text."""

    def __init__(self, store: CryptoStore, lookup_secret: bytes) -> None:
        self.store = store
        self._lookup_secret = lookup_secret

    @staticmethod
    def normalise(personal_number: str) -> str:
        """12 digits, Luhn-checked (protocols.md §7.1); RecordError otherwise."""
        try:
            return personnummer.parse(personal_number).twelve_digits
        except personnummer.PersonnummerError as exc:
            raise RecordError(str(exc)) from None

    def lookup_key(self, personal_number: str) -> str:
        """HMAC-SHA256 of the normalised number under the service's lookup key."""
        digits = self.normalise(personal_number).encode("ascii")
        return jose.b64url_encode(hmac.new(self._lookup_secret, digits, hashlib.sha256).digest())

    def find(self, unit: db.Session, personal_number: str) -> Person | None:
        key = self.lookup_key(personal_number)
        return unit.scalars(sa.select(Person).where(Person.lookup_key == key)).first()

    def upsert(
        self,
        unit: db.Session,
        personal_number: str,
        *,
        given_name: str,
        family_name: str,
        birthdate: datetime.date | str,
        now: int,
    ) -> Person:
        """Create the person or refresh their names (e.g. from the latest eID login)."""
        digits = self.normalise(personal_number)
        identity = PersonIdentity(digits, given_name, family_name, _date(birthdate, "birthdate"))
        _validate(
            "RegistrationCertificate",
            {
                **identity.claims(),
                "registered": False,
                "registration_category": {"code": "00", "label": "-"},
                "issued_at": "2000-01-01",
            },
        )
        key = self.lookup_key(digits)
        person = unit.scalars(sa.select(Person).where(Person.lookup_key == key)).first()
        sealed_identity = self.store.seal(
            strict_json.dumps(
                {k: v for k, v in identity.claims().items() if k != "personal_identity_number"}
            ).encode(),
            record_aad("person_identity", key),
        )
        if person is None:
            created = self._create(unit, key, digits, sealed_identity, now)
            if created is not None:
                return created
            # Created by a concurrent unit that committed after our read: refresh that one.
            person = unit.scalars(sa.select(Person).where(Person.lookup_key == key)).one()
        person.sealed_identity = sealed_identity
        person.updated_at = now
        unit.add(person)
        unit.flush()
        return person

    def _create(
        self, unit: db.Session, key: str, digits: str, sealed_identity: str, now: int
    ) -> Person | None:
        """Insert the person in a savepoint; None (nothing inserted, the unit still usable)
        when the lookup key was taken concurrently (UNIQUE), e.g. by two back-office calls
        for one new person at once."""
        person = Person(
            lookup_key=key,
            sealed_personal_number=self.store.seal(
                digits.encode("ascii"), record_aad("person_number", key)
            ),
            sealed_identity=sealed_identity,
            created_at=now,
            updated_at=now,
        )
        return person if db.add_unless_taken(unit, person) else None

    def identity(self, person: Person | sa.Row[Any]) -> PersonIdentity:
        number = self.store.open(
            person.sealed_personal_number, record_aad("person_number", person.lookup_key)
        ).decode("ascii")
        names = strict_json.loads(
            self.store.open(
                person.sealed_identity, record_aad("person_identity", person.lookup_key)
            )
        )
        return PersonIdentity(
            number,
            names["given_name"],
            names["family_name"],
            datetime.date.fromisoformat(names["birthdate"]),
        )


def _validate(type_name: str, subject: Mapping[str, Any]) -> None:
    try:
        schemas.validate_subject(type_name, subject)
    except schemas.SchemaError as exc:
        raise RecordError(str(exc)) from None


# -- Arbetsförmedlingen: registrations -----------------------------------------------------


@dataclass(frozen=True)
class RegistrationInput:
    """What the back office says about a person's registration."""

    registered: bool
    category_code: str
    category_label: str
    registered_since: datetime.date | None = None
    programme_code: str | None = None
    programme_label: str | None = None
    programme_since: datetime.date | None = None
    office: str | None = None


def _registration_claims(
    data: RegistrationInput | AFRegistration | sa.Row[Any],
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "registered": data.registered,
        "registration_category": {"code": data.category_code, "label": data.category_label},
    }
    if data.registered_since is not None:
        claims["registered_since"] = data.registered_since.isoformat()
    since = data.programme_since.isoformat() if data.programme_since else None
    programme = {"code": data.programme_code, "label": data.programme_label, "since": since}
    if any(part is not None for part in programme.values()):
        # Partial programmes are kept partial so the schema names the missing member.
        claims["programme"] = {k: v for k, v in programme.items() if v is not None}
    return claims


def upsert_registration(
    unit: db.Session, person: Person, data: RegistrationInput, now: int
) -> AFRegistration:
    """Create or replace the person's registration; refused unless it makes a valid subject."""
    claims = _registration_claims(data)
    _validate(
        "RegistrationCertificate", {**_STAND_IN_IDENTITY, **claims, "issued_at": "2000-01-01"}
    )
    assert person.id is not None
    row = find_registration(unit, person.id)
    if row is None:
        row = AFRegistration(person_id=person.id, created_at=now, updated_at=now, **_fields(data))
    else:
        for name, value in _fields(data).items():
            setattr(row, name, value)
        row.updated_at = now
    unit.add(row)
    unit.flush()
    return row


def _fields(data: RegistrationInput) -> dict[str, Any]:
    return {
        "registered": data.registered,
        "registered_since": data.registered_since,
        "category_code": data.category_code,
        "category_label": data.category_label,
        "programme_code": data.programme_code,
        "programme_label": data.programme_label,
        "programme_since": data.programme_since,
        "office": data.office,
    }


def find_registration(unit: db.Session, person_id: int) -> AFRegistration | None:
    return unit.scalars(
        sa.select(AFRegistration).where(AFRegistration.person_id == person_id)
    ).first()


def registration_subject(
    identity: PersonIdentity,
    registration: AFRegistration | sa.Row[Any],
    *,
    issued_at: datetime.date,
) -> dict[str, Any]:
    """RegistrationCertificate subject claims (docs/credentials.md), validated."""
    subject = {
        **identity.claims(),
        **_registration_claims(registration),
        "issued_at": issued_at.isoformat(),
    }
    _validate("RegistrationCertificate", subject)
    return subject


# -- MYH: catalogue ------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One refused catalogue or import row (0-based ``row``)."""

    row: int
    message: str
    qualification_id: str | None = None


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class CatalogueImportError(RecordError):
    """The import was refused; nothing was stored. ``report.errors`` lists every bad row."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"{len(report.errors)} catalogue row(s) refused; nothing imported")
        self.report = report


def load_catalogue_file(path: Path) -> Any:
    """Read a catalogue file with strict JSON parsing."""
    return strict_json.loads(path.read_bytes(), max_bytes=32 * 1024 * 1024)


def _get(row: Mapping[str, Any], *path: str) -> Any:
    value: Any = row
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _codes(items: Any, key: str) -> list[str] | None:
    if items is None:
        return None
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise RecordError(f"{key} must be a list of objects")
    return [item.get(key) for item in items]


def _qualification_claims(row: Mapping[str, Any]) -> dict[str, Any]:
    """Map one catalogue row (MYH's field names) to the subject's qualification claims."""
    claims: dict[str, Any] = {
        "title": _get(row, "namn"),
        "seqf_level": _get(row, "seqfNiva"),
        "eqf_level": _get(row, "eqfNiva"),
        "learning_outcomes": {
            "knowledge": _get(row, "lararesultat", "kunskaper"),
            "skills": _get(row, "lararesultat", "fardigheter"),
            "responsibility_autonomy": _get(row, "lararesultat", "ansvarOchSjalvstandighet"),
        },
        "awarding_body": {
            "name": _get(row, "ansvarig", "namn"),
            "org_number": _get(row, "ansvarig", "organisationsnummer"),
        },
        "qualification_type": _get(row, "typAvKvalifikation"),
        "proof_type": _get(row, "typAvBevis"),
        "sun_code": _get(row, "sun", "kod"),
        "isced_f": _get(row, "isced", "kod"),
        "ssyk_codes": _codes(_get(row, "yrken"), "ssyk"),
        "qualification_id": _get(row, "kvalifikationsId"),
        "alt_id": _get(row, "alternativtId"),
        "decision_date": _get(row, "beslutsdatum"),
        "decision_valid_until": _get(row, "beslutUpphorAttGalla"),
    }
    return {name: value for name, value in claims.items() if value is not None}


def _catalogue_info(row: Mapping[str, Any]) -> dict[str, Any]:
    """Catalogue facts that are shown on pages but are not claims."""
    info = {
        "occupational_field": _get(row, "yrkesomrade"),
        "occupations": _get(row, "yrken"),
        "sun_label": _get(row, "sun", "benamning"),
        "isced_label": _get(row, "isced", "benamning"),
    }
    return {name: value for name, value in info.items() if value is not None}


def _check_row(row: Any) -> tuple[dict[str, Any], str]:
    if not isinstance(row, Mapping):
        raise RecordError("row must be a JSON object")
    status = row.get("status")
    if status not in KNOWN_STATUSES:
        raise RecordError(f"status must be one of {sorted(KNOWN_STATUSES)}")
    claims = _qualification_claims(row)
    subject = {**_STAND_IN_IDENTITY, **claims, "awarded_on": claims.get("decision_date")}
    _validate("QualificationAttestation", subject)
    until = claims.get("decision_valid_until")
    if until is not None and until < claims["decision_date"]:
        raise RecordError("beslutUpphorAttGalla is before beslutsdatum")
    claims["qualification_id"] = str(uuid.UUID(claims["qualification_id"]))
    return claims, status


def parse_catalogue(
    document: Any,
) -> tuple[list[tuple[dict[str, Any], str, dict[str, Any]]], list[RowError]]:
    """Check every row: (claims, status, info) per good row and a RowError per bad one."""
    rows = document.get("qualifications") if isinstance(document, Mapping) else None
    if not isinstance(rows, list):
        return [], [RowError(-1, "the file must be an object with a 'qualifications' list")]
    if len(rows) > MAX_CATALOGUE_ROWS:
        return [], [RowError(-1, f"at most {MAX_CATALOGUE_ROWS} qualifications per file")]
    good: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for number, row in enumerate(rows):
        raw_id = row.get("kvalifikationsId") if isinstance(row, Mapping) else None
        label = raw_id if isinstance(raw_id, str) and len(raw_id) <= 64 else None
        try:
            claims, status = _check_row(row)
        except RecordError as exc:
            errors.append(RowError(number, str(exc), label))
            continue
        if claims["qualification_id"] in seen:
            errors.append(RowError(number, "kvalifikationsId appears twice", label))
            continue
        seen.add(claims["qualification_id"])
        good.append((claims, status, _catalogue_info(row)))
    return good, errors


def import_catalogue(unit: db.Session, document: Any, now: int) -> ImportReport:
    """Import (insert or update) MYH qualifications; all rows or none.

    Every row is checked first; any bad row raises :class:`CatalogueImportError` with the
    per-row report before anything is written. Writes happen in the caller's transaction,
    so a database failure half-way rolls everything back too.
    """
    good, errors = parse_catalogue(document)
    report = ImportReport(errors=errors)
    if errors:
        raise CatalogueImportError(report)
    for claims, status, info in good:
        row = unit.get(MYHQualification, claims["qualification_id"])
        data = {"claims": claims, "info": info}
        if row is None:
            unit.add(
                MYHQualification(
                    qualification_id=claims["qualification_id"],
                    alt_id=claims.get("alt_id"),
                    status=status,
                    data=data,
                    imported_at=now,
                )
            )
            report.imported += 1
        else:
            row.alt_id, row.status, row.data, row.imported_at = (
                claims.get("alt_id"),
                status,
                data,
                now,
            )
            unit.add(row)
            report.updated += 1
    unit.flush()
    return report


# -- MYH: awarded qualifications -----------------------------------------------------------


def award_qualification(
    unit: db.Session,
    person: Person,
    qualification_id: str,
    awarded_on: datetime.date | str,
    now: int,
) -> MYHAward:
    """Record (or correct the date of) a qualification awarded to a person."""
    try:
        qualification_id = str(uuid.UUID(qualification_id))
    except (TypeError, ValueError, AttributeError):
        raise RecordError("qualification_id must be a UUID") from None
    qualification = unit.get(MYHQualification, qualification_id)
    if qualification is None:
        raise RecordError("qualification_id is not in the catalogue")
    if qualification.status not in AWARDABLE_STATUSES:
        raise RecordError("the qualification is not active in the catalogue")
    day = _date(awarded_on, "awarded_on")
    claims = qualification.data["claims"]
    if day.isoformat() < claims["decision_date"]:
        raise RecordError("awarded_on is before the qualification's decision date")
    if day > datetime.datetime.fromtimestamp(now, datetime.UTC).date():
        raise RecordError("awarded_on is in the future")
    assert person.id is not None
    row = unit.scalars(
        sa.select(MYHAward).where(
            MYHAward.person_id == person.id, MYHAward.qualification_id == qualification_id
        )
    ).first()
    if row is None:
        row = MYHAward(
            person_id=person.id,
            qualification_id=qualification_id,
            awarded_on=day,
            created_at=now,
            updated_at=now,
        )
    else:
        row.awarded_on, row.updated_at = day, now
    unit.add(row)
    unit.flush()
    return row


def find_awards(unit: db.Session, person_id: int) -> list[MYHAward]:
    return list(
        unit.scalars(
            sa.select(MYHAward).where(MYHAward.person_id == person_id).order_by(MYHAward.id)
        )
    )


def qualification_subject(
    identity: PersonIdentity,
    award: MYHAward | sa.Row[Any],
    qualification: MYHQualification | sa.Row[Any],
) -> dict[str, Any]:
    """QualificationAttestation subject claims (docs/credentials.md), validated."""
    subject = {
        **identity.claims(),
        **qualification.data["claims"],
        "awarded_on": award.awarded_on.isoformat(),
    }
    _validate("QualificationAttestation", subject)
    return subject


# -- per agency ----------------------------------------------------------------------------


_PERSONS = Person.__table__  # type: ignore[attr-defined]
_REGISTRATIONS = AFRegistration.__table__  # type: ignore[attr-defined]
_AWARDS = MYHAward.__table__  # type: ignore[attr-defined]
_QUALIFICATIONS = MYHQualification.__table__  # type: ignore[attr-defined]
_SEALED_PERSON = (
    _PERSONS.c.lookup_key,
    _PERSONS.c.sealed_personal_number,
    _PERSONS.c.sealed_identity,
)
# One statement per issuance: the person (sealed) and the record, NULL when the record is
# not this person's. Built once; the credential endpoint runs it for every request.
_REGISTRATION_SUBJECT = db.Prepared(
    sa.select(*_SEALED_PERSON, _REGISTRATIONS)
    .select_from(
        _PERSONS.outerjoin(
            _REGISTRATIONS,
            sa.and_(
                _REGISTRATIONS.c.person_id == _PERSONS.c.id,
                _REGISTRATIONS.c.id == sa.bindparam("record_id"),
            ),
        )
    )
    .where(_PERSONS.c.id == sa.bindparam("person_id"))
)
_AWARD_SUBJECT = db.Prepared(
    sa.select(*_SEALED_PERSON, _AWARDS.c.id, _AWARDS.c.awarded_on, _QUALIFICATIONS.c.data)
    .select_from(
        _PERSONS.outerjoin(
            _AWARDS,
            sa.and_(
                _AWARDS.c.person_id == _PERSONS.c.id, _AWARDS.c.id == sa.bindparam("record_id")
            ),
        ).outerjoin(
            _QUALIFICATIONS, _QUALIFICATIONS.c.qualification_id == _AWARDS.c.qualification_id
        )
    )
    .where(_PERSONS.c.id == sa.bindparam("person_id"))
)


class PersonGone(RecordError):
    """The person a token or offer was made for no longer exists."""


def build_subject(
    unit: Unit,
    vault: PersonVault,
    agency_key: str,
    person_id: int,
    record_id: int,
    *,
    today: datetime.date,
) -> dict[str, Any]:
    """The subject for one of the person's records (AF registration id or MYH award id),
    read with one statement. :class:`PersonGone` if the person is gone, RecordError if the
    record is not theirs."""
    statement = _REGISTRATION_SUBJECT if agency_key == "af" else _AWARD_SUBJECT
    row = statement.first(unit, {"person_id": person_id, "record_id": record_id})
    return subject_from_row(vault, agency_key, row, today=today)


def subject_from_row(
    vault: PersonVault, agency_key: str, row: Any, *, today: datetime.date
) -> dict[str, Any]:
    """:func:`build_subject` from a row already read: ``None`` (no person), or the person's
    sealed columns (``lookup_key``, ``sealed_personal_number``, ``sealed_identity``; None
    when the person is gone) with the record's columns as in ``_REGISTRATION_SUBJECT`` /
    ``_AWARD_SUBJECT`` (``id`` None when the record is not the person's)."""
    if row is None or row.lookup_key is None:
        raise PersonGone("the person no longer exists")
    if row.id is None:
        kind = "registration" if agency_key == "af" else "awarded qualification"
        raise RecordError(f"no such {kind} for this person")
    identity = vault.identity(row)
    if agency_key == "af":
        return registration_subject(identity, row, issued_at=today)
    return qualification_subject(identity, row, row)


def credential_expiry(settings: IssuerSettings, subject: Mapping[str, Any], now: int) -> int:
    """``exp`` for a credential with ``subject``: AF short (protocols.md §7.4); MYH long but
    never after the end of ``decision_valid_until`` (docs/credentials.md)."""
    if "registered" in subject:
        return now + settings.registration_validity_days * DAY
    expiry = now + settings.qualification_validity_days * DAY
    until = subject.get("decision_valid_until")
    if isinstance(until, str):
        day_after = datetime.date.fromisoformat(until) + datetime.timedelta(days=1)
        end = int(datetime.datetime.combine(day_after, datetime.time(), datetime.UTC).timestamp())
        expiry = min(expiry, end - 1)
    return expiry


_INSERT_ISSUANCE = db.Prepared(sa.insert(Issuance.__table__))  # type: ignore[attr-defined]


def record_issuance(unit: Unit, **fields: Any) -> str:
    """Write the issuance row (I1) made of ``fields`` (those of :func:`issuance_row`) and
    return its id. ``proof_hash`` is UNIQUE: a retried credential request with the same
    proof fails here (IntegrityError) instead of minting twice."""
    return insert_issuance(unit, issuance_row(**fields))


def insert_issuance(unit: Unit, values: Mapping[str, Any]) -> str:
    """Write an :func:`issuance_row`; its id. A plain INSERT: the row is never read back in
    the transaction that writes it."""
    _INSERT_ISSUANCE.rows(unit, values)
    return values["id"]  # type: ignore[no-any-return]


def issuance_row(
    *,
    person_id: int,
    record_id: int | None,
    configuration_id: str,
    credential_format: str,
    allocation: Allocation,
    kid: str,
    proof_hash: str,
    issued_at: int,
    expires_at: int,
    notification_id: str | None = None,
) -> dict[str, Any]:
    """The columns of a new issuance row, with a fresh ``id``."""
    return {
        "id": str(uuid.uuid4()),
        "person_id": person_id,
        "record_id": record_id,
        "configuration_id": configuration_id,
        "format": credential_format,
        "status_list_id": allocation.list_id,
        "status_idx": allocation.idx,
        "kid": kid,
        "proof_hash": proof_hash,
        "notification_id": notification_id,
        "issued_at": issued_at,
        "expires_at": expires_at,
        "status": IssuanceStatus.VALID,
    }


# -- development sample data ---------------------------------------------------------------


def load_sample_data(
    unit: db.Session,
    vault: PersonVault,
    agency_key: str,
    now: int,
    *,
    catalogue: Path = SAMPLE_CATALOGUE,
) -> None:
    """Development: the sample catalogue (MYH) and the schema examples as records; one
    replica at a time (start-up lock), so replicas starting together upsert in turn."""
    lock(unit, "issuer-sample-data")
    if agency_key == "myh":
        import_catalogue(unit, load_catalogue_file(catalogue), now)
    type_name = "RegistrationCertificate" if agency_key == "af" else "QualificationAttestation"
    for example in schemas.example_subjects(type_name).values():
        person = vault.upsert(
            unit,
            example["personal_identity_number"],
            given_name=example["given_name"],
            family_name=example["family_name"],
            birthdate=example["birthdate"],
            now=now,
        )
        if agency_key == "af":
            upsert_registration(unit, person, _registration_from_example(example), now)
        else:
            award_qualification(
                unit, person, example["qualification_id"], example["awarded_on"], now
            )


def _registration_from_example(example: Mapping[str, Any]) -> RegistrationInput:
    programme = example.get("programme") or {}
    since = example.get("registered_since")
    return RegistrationInput(
        registered=example["registered"],
        category_code=example["registration_category"]["code"],
        category_label=example["registration_category"]["label"],
        registered_since=datetime.date.fromisoformat(since) if since else None,
        programme_code=programme.get("code"),
        programme_label=programme.get("label"),
        programme_since=(
            datetime.date.fromisoformat(programme["since"]) if programme.get("since") else None
        ),
        office="Arbetsförmedlingen Exempelstad",
    )
