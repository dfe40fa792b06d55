"""The "nothing lost" check: invariants I1-I5 of security.md §2 over the services' databases.

``intyg check`` reads the issuers', the wallet's and the verifier's databases (the SQLite
files of an ``intyg up`` data folder, or database URLs) and counts, per invariant, what it
looked at and what breaks it:

- **I1 issued ⇒ recorded**: every issuance row has its status entry, inside a list that
  exists and is big enough (so it can be revoked), the list's bits say what the row says,
  and the ``credential.issued`` audit entry exists; every credential the wallet holds has
  its issuance row at the issuer whose status list it points into.
- **I2 one index, one credential**: no status index (issuer rows, or the status references
  of the credentials in the wallet) belongs to two credentials; a Bitstring suspension list
  is never a credential's own list.
- **I3 exactly once**: tx_code attempts within the cap, no ``jti`` twice, no key proof
  minted twice, no more access tokens than redeemed codes; at the verifier one outcome per
  transaction, results only for consumed transactions; in the wallet one answer per
  verifier ``state`` and one delivery per answer.
- **I4 sent ⇒ consented**: every presentation the verifier received has the wallet's
  consent record (same ``state``, written no later, naming the holder keys that signed);
  every delivery record follows its consent in an intact hash chain.
- **I5 stored ⇒ usable**: every credential instance has its holder key, ``bound``, whose
  sealed private key opens (when the master key is at hand) to the right thumbprint; no key
  sent in a proof is left ``proof_sent`` once its issuance is over.

Snapshots are read in the order verifier → wallet → issuers, so a check run while traffic
flows sees every "earlier" fact of a cross-database rule (a consent is committed before its
presentation leaves; an issuance before its credential).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from intyg import jose, x509
from intyg import status as core_status
from intyg.web import db
from intyg.web.crypto_store import CryptoStore, CryptoStoreError, record_aad

__all__ = ["INVARIANTS", "Outcome", "Report", "Sources", "check"]

INVARIANTS: Mapping[str, str] = {
    "I1": "issued => recorded",
    "I2": "one index, one credential",
    "I3": "exactly once",
    "I4": "sent => consented",
    "I5": "stored => usable",
}
#: Violations listed per invariant (the count is always complete).
SHOWN_VIOLATIONS = 20
#: Issuance sessions older than this past their expiry must not leave keys ``proof_sent``.
DEFAULT_GRACE_SECONDS = 60
#: Issuer setting ``TX_CODE_MAX_ATTEMPTS`` (docs/issuer.md).
DEFAULT_TX_CODE_MAX_ATTEMPTS = 5

# Wallet vocabulary (wallet/models.py KeyState, wallet/consents.py, wallet/presentation.py).
_BOUND, _PROOF_SENT = "bound", "proof_sent"
_CONSENT, _DECLINED, _DELIVERY = "consent", "declined", "delivery"
_SENT = {"delivered", "rejected", "sent"}
_ANSWERED_SESSION = {"consented", "done", "declined"}
_OPEN_ISSUANCE = {"offered", "accepted"}
_HOLDER_KEY_PURPOSE = "wallet/holder-key"  # wallet.issuance.HOLDER_KEY_PURPOSE
# Verifier audit actions that record the one honoured response of a transaction.
_OUTCOME_ACTIONS = ("presentation_verified", "presentation_rejected", "wallet_error")
# Issuer status values (issuer/models.py IssuanceStatus) as list entries.
_TSL_VALUES = {"valid": 0, "revoked": 1, "suspended": 2}
_LIST_PATH = re.compile(r"^(?P<base>.+)/(?:statuslists|status)/(?P<list>\d+)$")


# -- the report ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One invariant: how many items were checked, and every violation found."""

    invariant: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return INVARIANTS[self.invariant]


@dataclass
class Report:
    """Counts per invariant, plus notes (facts that are allowed but worth seeing)."""

    outcomes: dict[str, Outcome] = field(
        default_factory=lambda: {name: Outcome(name) for name in INVARIANTS}
    )
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def count(self, invariant: str, checked: int = 1) -> None:
        self.outcomes[invariant].checked += checked

    def violate(self, invariant: str, message: str) -> None:
        self.outcomes[invariant].violations.append(message)

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def ok(self) -> bool:
        return not any(outcome.violations for outcome in self.outcomes.values())

    @property
    def violation_count(self) -> int:
        return sum(len(outcome.violations) for outcome in self.outcomes.values())

    def lines(self) -> list[str]:
        out = [f"intyg check: {', '.join(self.sources) or 'no databases'}"]
        for outcome in self.outcomes.values():
            mark = "ok  " if not outcome.violations else "FAIL"
            out.append(
                f"[{mark}] {outcome.invariant} {outcome.title:<27} checked {outcome.checked:>7}"
                f"  violations {len(outcome.violations)}"
            )
            out += [f"         - {v}" for v in outcome.violations[:SHOWN_VIOLATIONS]]
            if len(outcome.violations) > SHOWN_VIOLATIONS:
                out.append(f"         ... {len(outcome.violations) - SHOWN_VIOLATIONS} more")
        out += [f"note: {note}" for note in self.notes]
        out.append("all invariants hold" if self.ok else f"{self.violation_count} violation(s)")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sources": self.sources,
            "invariants": {
                o.invariant: {"title": o.title, "checked": o.checked, "violations": o.violations}
                for o in self.outcomes.values()
            },
            "notes": self.notes,
        }


# -- where the databases are -------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Database URLs by service; ``wallet_master_key`` (base64url) lets I5 open keys."""

    issuers: Mapping[str, str] = field(default_factory=dict)
    wallet: str | None = None
    verifier: str | None = None
    wallet_master_key: str | None = None

    @classmethod
    def from_data_dir(cls, data_dir: Path, postgres_url: str | None = None) -> Sources:
        """The databases of an ``intyg up`` data folder (docs/running.md): its SQLite files,
        or with ``postgres_url`` (``INTYG_UP_POSTGRES_URL``) the ``NAME_<service>`` databases."""
        from intyg.web.embedded import DEFAULT_PORTS, Layout

        layout = Layout(data_dir, DEFAULT_PORTS, postgres_url)

        def url(name: str) -> str | None:
            found = layout.database_url(name)
            if postgres_url is None and not Path(db.normalise_url(found).database or "").is_file():
                return None
            return found

        master = data_dir / "wallet" / "master.key"
        return cls(
            issuers={n: u for n in ("issuer-af", "issuer-myh") if (u := url(n))},
            wallet=url("wallet"),
            verifier=url("verifier"),
            wallet_master_key=(
                master.read_text(encoding="utf-8").strip() if master.is_file() else None
            ),
        )


@contextmanager
def _snapshot(url: str) -> Iterator[db.Session]:
    """One read transaction: a consistent view (SQLite WAL read, PostgreSQL REPEATABLE READ)."""
    parsed = db.normalise_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise FileNotFoundError(f"no database file {parsed.database}")
    engine = db.create_engine(url, pool_size=1)
    try:
        bind: Any = engine
        if engine.dialect.name == "postgresql":
            bind = engine.execution_options(isolation_level="REPEATABLE READ")
        with db.session(bind, write=False) as unit:
            yield unit
    finally:
        engine.dispose()


def _all(unit: db.Session, *columns: Any, where: Iterable[Any] = ()) -> list[Any]:
    return list(unit.execute(sa.select(*columns).where(*where)).all())


def _duplicates(values: Iterable[Any]) -> list[tuple[Any, int]]:
    return [(value, n) for value, n in Counter(values).items() if n > 1]


def _digest(text: str) -> str:
    """SHA-256 base64url: how the issuer and the verifier store codes and states."""
    return jose.sha256_b64url(text)


def _repeated(unit: db.Session, *columns: Any) -> list[Any]:
    """Values of ``columns`` that occur more than once, with their count."""
    statement = sa.select(*columns, sa.func.count()).group_by(*columns)
    return list(unit.execute(statement.having(sa.func.count() > 1)).all())


# -- the issuers -------------------------------------------------------------------------------


@dataclass
class IssuerView:
    """What the checks need from one issuer's database."""

    name: str
    base_urls: set[str]
    issuances: list[Any]
    entries: set[tuple[int, int]]
    lists: dict[int, Any]
    audited: set[str]
    offers: list[Any]
    tokens_per_person: Counter[int]
    redeemed_per_person: Counter[int]
    repeated_jti: list[Any]
    repeated_proofs: list[Any]
    decoded: dict[int, Any] = field(default_factory=dict)

    def entry(self, list_id: int, idx: int) -> int:
        """The value at ``idx`` of a status list (decoded once per list)."""
        if list_id not in self.decoded:
            row = self.lists[list_id]
            self.decoded[list_id] = (
                core_status.StatusList(row.bits, row.content)
                if row.kind == "tsl"
                else core_status.BitstringStatusList(row.content, row.bits, min_entries=1)
            )
        return int(self.decoded[list_id].get(idx))

    def by_index(self) -> dict[tuple[int, int], list[Any]]:
        found: dict[tuple[int, int], list[Any]] = defaultdict(list)
        for row in self.issuances:
            found[(row.status_list_id, row.status_idx)].append(row)
        return found


def _issuer_identifiers(certificate_chains: Iterable[str]) -> set[str]:
    """Credential issuer identifiers: the SAN URIs of the issuer's signing certificates."""
    from cryptography import x509 as cx509

    urls: set[str] = set()
    for pem in certificate_chains:
        try:
            leaf = x509.certs_from_pem(pem)[0]
            san = leaf.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
        except (ValueError, IndexError, cx509.ExtensionNotFound):
            continue
        urls.update(u.rstrip("/") for u in san.get_values_for_type(cx509.UniformResourceIdentifier))
    return urls


def read_issuer(name: str, url: str) -> IssuerView:
    from issuer import models as m

    offer, code = m.CredentialOffer, m.AuthorizationCode
    with _snapshot(url) as unit:
        chains = _all(
            unit, m.SigningKey.certificate_chain_pem, where=[m.SigningKey.purpose == "issuer"]
        )
        lists = m.StatusListRow
        return IssuerView(
            name=name,
            base_urls=_issuer_identifiers(row[0] for row in chains),
            issuances=_all(
                unit,
                m.Issuance.id,
                m.Issuance.status_list_id,
                m.Issuance.status_idx,
                m.Issuance.status,
            ),
            entries={tuple(r) for r in _all(unit, m.StatusEntry.status_list_id, m.StatusEntry.idx)},
            lists={
                r.id: r
                for r in _all(
                    unit,
                    lists.id,
                    lists.kind,
                    lists.purpose,
                    lists.bits,
                    lists.content,
                    lists.suspension_list_id,
                )
            },
            audited={
                r[0]
                for r in _all(
                    unit, m.AuditEntry.subject, where=[m.AuditEntry.action == "credential.issued"]
                )
            },
            offers=_all(unit, offer.id, offer.tx_code_attempts),
            tokens_per_person=Counter(r[0] for r in _all(unit, m.AccessToken.person_id)),
            redeemed_per_person=Counter(
                r[0]
                for r in _all(unit, offer.person_id, where=[offer.used_at.is_not(None)])
                + _all(unit, code.person_id, where=[code.used_at.is_not(None)])
            ),
            repeated_jti=_repeated(unit, m.ReplayEntry.kind, m.ReplayEntry.jti_hash),
            repeated_proofs=_repeated(unit, m.Issuance.proof_hash),
        )


def _list_disagrees(view: IssuerView, row: Any) -> str | None:
    """Why the issuance cannot be revoked as recorded, or None (I1)."""
    expected = _TSL_VALUES.get(row.status)
    if expected is None:
        return f"unknown status {row.status!r}"
    primary = view.lists.get(row.status_list_id)
    if primary is None:
        return "its status list is missing"
    try:
        if primary.kind == "tsl":
            value = view.entry(primary.id, row.status_idx)
            return None if value == expected else f"the list says {value}, the row {row.status}"
        companion = view.lists.get(primary.suspension_list_id)
        if primary.purpose != "revocation" or companion is None:
            return "its Bitstring list is not a revocation list with a suspension companion"
        bits = (view.entry(primary.id, row.status_idx), view.entry(companion.id, row.status_idx))
    except core_status.StatusError:
        return "its index is outside the status list"
    wanted = (int(row.status == "revoked"), int(row.status == "suspended"))
    return None if bits == wanted else f"the list bits {bits} disagree with {row.status}"


def check_issuer(report: Report, view: IssuerView, tx_code_max_attempts: int) -> None:
    """I1, I2 and I3 inside one issuer's database."""
    name = view.name
    for row in view.issuances:
        report.count("I1")
        if (row.status_list_id, row.status_idx) not in view.entries:
            problem: str | None = "no status entry for its index"
        elif f"issuance:{row.id}" not in view.audited:
            problem = "no credential.issued audit entry"
        else:
            problem = _list_disagrees(view, row)
        if problem:
            report.violate("I1", f"{name}: issuance {row.id}: {problem}")
    taken = view.by_index()
    report.count("I2", len(taken))
    for (list_id, idx), rows in taken.items():
        if len(rows) > 1:
            report.violate(
                "I2", f"{name}: index {idx} of list {list_id} has {len(rows)} credentials"
            )
        kept = view.lists.get(list_id)
        if kept is not None and kept.purpose == "suspension":
            report.violate("I2", f"{name}: issuance in suspension list {list_id} as its own list")
    companions = [r.suspension_list_id for r in view.lists.values() if r.suspension_list_id]
    for list_id, n in _duplicates(companions):
        report.violate("I2", f"{name}: suspension list {list_id} serves {n} revocation lists")
    unused = len(view.entries - set(taken))
    if unused:
        report.note(f"{name}: {unused} status index(es) taken by aborted attempts, never reused")
    for offer in view.offers:
        report.count("I3")
        if offer.tx_code_attempts > tx_code_max_attempts:
            report.violate(
                "I3", f"{name}: offer {offer.id} took {offer.tx_code_attempts} tx_code attempts"
            )
    for person, tokens in view.tokens_per_person.items():
        report.count("I3")
        if tokens > view.redeemed_per_person[person]:
            report.violate(
                "I3",
                f"{name}: person {person} has {tokens} access tokens for "
                f"{view.redeemed_per_person[person]} redeemed codes",
            )
    for kind, _, n in view.repeated_jti:
        report.violate("I3", f"{name}: a {kind} jti was accepted {n} times")
    for _, n in view.repeated_proofs:
        report.violate("I3", f"{name}: one key proof minted {n} credentials")


# -- the wallet --------------------------------------------------------------------------------


@dataclass
class WalletView:
    """What the checks need from the wallet's database."""

    keys: dict[int, Any]
    cards: dict[int, Any]
    instances: list[Any]
    issuances: dict[int, Any]
    records: list[Any]
    consent_keys: dict[int, set[str]]
    presentations: list[Any]

    def answers(self) -> Iterator[Any]:
        return (r for r in self.records if r.kind in (_CONSENT, _DECLINED))


def read_wallet(url: str) -> WalletView:
    from wallet import models as m

    key, record = m.HolderKey, m.ConsentRecord
    with _snapshot(url) as unit:
        consent_keys: dict[int, set[str]] = defaultdict(set)
        for consent_id, thumbprint in _all(unit, m.ConsentKey.consent_id, m.ConsentKey.thumbprint):
            consent_keys[consent_id].add(thumbprint)
        return WalletView(
            keys={
                r.id: r
                for r in _all(
                    unit,
                    key.id,
                    key.account_id,
                    key.issuance_id,
                    key.thumbprint,
                    key.state,
                    key.sealed_private_jwk,
                )
            },
            cards={
                r.id: r
                for r in _all(
                    unit,
                    m.WalletCredential.id,
                    m.WalletCredential.instance_count,
                    m.WalletCredential.credential_issuer,
                )
            },
            instances=_all(
                unit,
                m.CredentialInstance.id,
                m.CredentialInstance.credential_id,
                m.CredentialInstance.account_id,
                m.CredentialInstance.holder_key_id,
                m.CredentialInstance.status_reference,
            ),
            issuances={
                r.id: r
                for r in _all(
                    unit,
                    m.IssuanceSession.id,
                    m.IssuanceSession.state,
                    m.IssuanceSession.expires_at,
                )
            },
            records=list(
                unit.execute(
                    sa.select(
                        record.id,
                        record.account_id,
                        record.seq,
                        record.prev_hash,
                        record.record_hash,
                        record.record,
                        record.public_id,
                        record.kind,
                        record.subject_id,
                        record.delivery_status,
                        record.created_at,
                    ).order_by(record.account_id, record.seq)
                ).all()
            ),
            consent_keys=consent_keys,
            presentations=_all(
                unit,
                m.PresentationSession.id,
                m.PresentationSession.account_id,
                m.PresentationSession.state,
                m.PresentationSession.consent_id,
            ),
        )


def _opens(store: CryptoStore | None, key: Any) -> bool:
    """The sealed private key is there (and, with the master key, opens to its thumbprint)."""
    if not key.sealed_private_jwk:
        return False
    if store is None:
        return True
    try:
        opened = store.open_key(
            key.sealed_private_jwk, record_aad(_HOLDER_KEY_PURPOSE, key.thumbprint)
        )
    except (CryptoStoreError, ValueError):
        return False
    return bool(opened.thumbprint() == key.thumbprint)


def check_wallet_keys(
    report: Report, view: WalletView, store: CryptoStore | None, now: int, grace: int
) -> None:
    """I5: every stored credential usable; no key left between proof and credential."""
    per_key = Counter(i.holder_key_id for i in view.instances)
    per_card = Counter(i.credential_id for i in view.instances)
    for instance in view.instances:
        report.count("I5")
        key = view.keys.get(instance.holder_key_id)
        if key is None or key.account_id != instance.account_id:
            problem: str | None = "has no holder key in its account"
        elif key.state != _BOUND:
            problem = f"has its key in state {key.state}"
        elif not _opens(store, key):
            problem = "has a holder key whose private key does not open"
        else:
            problem = None
        if problem:
            report.violate("I5", f"wallet: credential instance {instance.id} {problem}")
    in_flight = 0
    for key in view.keys.values():
        report.count("I5")
        if key.state == _BOUND and per_key[key.id] != 1:
            report.violate("I5", f"wallet: bound key {key.id} has {per_key[key.id]} credentials")
        if key.state != _PROOF_SENT:
            continue
        session = view.issuances.get(key.issuance_id)
        if (
            session is not None
            and session.state in _OPEN_ISSUANCE
            and now < session.expires_at + grace
        ):
            in_flight += 1
        else:
            report.violate(
                "I5", f"wallet: key {key.id} was sent in a proof, has no credential, not failed"
            )
    if in_flight:
        report.note(f"wallet: {in_flight} key(s) in issuances still under way")
    for card in view.cards.values():
        report.count("I5")
        if per_card[card.id] == 0 or per_card[card.id] != card.instance_count:
            report.violate(
                "I5",
                f"wallet: credential {card.id} lists {card.instance_count} instances, "
                f"has {per_card[card.id]}",
            )


def check_wallet_consents(report: Report, view: WalletView) -> None:
    """I4 (chains intact, every delivery after its consent) and I3 (one answer per verifier
    ``state``, one delivery per answer) inside the wallet."""
    from wallet.consents import check_rows

    chains: dict[int, list[Any]] = defaultdict(list)
    for row in view.records:
        chains[row.account_id].append(row)
    for account, rows in chains.items():
        report.count("I4", len(rows))
        chain = check_rows(
            [
                (
                    r.seq,
                    r.prev_hash,
                    r.record_hash,
                    r.record,
                    r.public_id,
                    r.kind,
                    r.subject_id,
                    r.delivery_status,
                )
                for r in rows
            ]
        )
        if not chain.ok:
            report.violate(
                "I4",
                f"wallet: account {account}: chain broken at seq {chain.broken_at}: {chain.reason}",
            )
        answers = {r.public_id: r for r in rows if r.kind in (_CONSENT, _DECLINED)}
        deliveries: Counter[str] = Counter()
        for row in rows:
            if row.kind != _DELIVERY:
                continue
            deliveries[row.subject_id] += 1
            answer = answers.get(row.subject_id)
            if answer is None or answer.seq > row.seq:
                report.violate("I4", f"wallet: delivery {row.public_id} has no earlier consent")
            elif (
                answer.kind == _CONSENT
                and row.record.get("status") in _SENT
                and not view.consent_keys.get(answer.id)
            ):
                report.violate("I4", f"wallet: consent {answer.public_id} kept no holder keys")
        report.count("I3", len(answers))
        for subject, n in deliveries.items():
            if n > 1:
                report.violate("I3", f"wallet: answer {subject} was delivered {n} times")
    states = [_verifier_state(r) for r in view.answers()]
    for _, n in _duplicates(s for s in states if s):
        report.violate("I3", f"wallet: one verifier state was answered {n} times")
    known = {(r.account_id, r.public_id) for r in view.answers()}
    for session in view.presentations:
        report.count("I4")
        if (
            session.state in _ANSWERED_SESSION
            and (session.account_id, session.consent_id) not in known
        ):
            report.violate(
                "I4", f"wallet: presentation session {session.id} ({session.state}) has no record"
            )


def _verifier_state(record_row: Any) -> str | None:
    reference = record_row.record.get("verifier_reference") or {}
    state = reference.get("state") if isinstance(reference, dict) else None
    return state if isinstance(state, str) else None


# -- the verifier ------------------------------------------------------------------------------


@dataclass
class VerifierView:
    """What the checks need from the verifier's database."""

    transactions: dict[str, Any]
    results: dict[str, Any]
    honoured_rejections: Counter[str]
    audited_outcomes: Counter[str]


def read_verifier(url: str) -> VerifierView:
    from verifier import models as m

    t = m.Transaction
    with _snapshot(url) as unit:
        return VerifierView(
            transactions={
                r.id: r
                for r in _all(
                    unit,
                    t.id,
                    t.state_hash,
                    t.status,
                    t.used_at,
                    t.response_code_hash,
                    t.response_code_used_at,
                )
            },
            results={
                r.transaction_id: r
                for r in _all(
                    unit, m.Result.transaction_id, m.Result.outcome, m.Result.holder_key_refs
                )
            },
            honoured_rejections=Counter(
                r[0]
                for r in _all(
                    unit,
                    m.Rejection.transaction_id,
                    where=[m.Rejection.kind.in_(("presentation", "wallet_error"))],
                )
            ),
            audited_outcomes=Counter(
                r[0]
                for r in _all(
                    unit, m.AuditEntry.subject, where=[m.AuditEntry.action.in_(_OUTCOME_ACTIONS)]
                )
            ),
        )


def check_verifier(report: Report, view: VerifierView) -> None:
    """I3: one honoured response per transaction, and only for a consumed one."""
    for transaction in view.transactions.values():
        report.count("I3")
        tid = transaction.id
        result = view.results.get(tid)
        honoured = (result is not None) + view.honoured_rejections[tid]
        problem = None
        if honoured and transaction.used_at is None:
            problem = "answered without being consumed"
        elif honoured > 1 or view.audited_outcomes[f"transaction:{tid}"] > 1:
            problem = "more than one response was honoured"
        elif (transaction.status == "verified") != (
            result is not None and result.outcome == "verified"
        ):
            problem = f"status {transaction.status} does not match its result"
        elif transaction.response_code_used_at is not None and not transaction.response_code_hash:
            problem = "a response code was redeemed that was never issued"
        if problem:
            report.violate("I3", f"verifier: transaction {tid}: {problem}")


# -- across databases --------------------------------------------------------------------------


def check_presentations(
    report: Report, verifier: VerifierView, wallet: WalletView, allow_foreign: bool
) -> None:
    """I4 across the verifier and the wallet: every presentation received has its consent."""
    answers = {_digest(s): r for r in wallet.answers() if (s := _verifier_state(r))}
    foreign = 0
    for transaction in verifier.transactions.values():
        result = verifier.results.get(transaction.id)
        presented = result is not None or (
            verifier.honoured_rejections[transaction.id] and transaction.status == "rejected"
        )
        if not presented:
            continue
        report.count("I4")
        answer = answers.get(transaction.state_hash)
        if answer is None or answer.kind != _CONSENT:
            if allow_foreign:
                foreign += 1
            else:
                report.violate(
                    "I4", f"verifier: transaction {transaction.id} got a presentation, no consent"
                )
            continue
        if answer.created_at > (transaction.used_at or 0):
            report.violate("I4", f"wallet: consent {answer.public_id} written after it was sent")
        if result is not None:
            refs = {
                _digest(f"{transaction.id}.{thumbprint}")
                for thumbprint in wallet.consent_keys.get(answer.id, ())
            }
            if not set(result.holder_key_refs) <= refs:
                report.violate(
                    "I4",
                    f"verifier: transaction {transaction.id} was signed by keys the "
                    f"consent {answer.public_id} does not name",
                )
    if foreign:
        report.note(f"verifier: {foreign} presentation(s) from other wallets (allowed)")


def _status_key(reference: Any) -> tuple[str, int, int] | None:
    """``(issuer identifier, list id, index)`` of a wallet instance's status reference."""
    if not isinstance(reference, dict):
        return None
    uri = reference.get("uri", reference.get("statusListCredential"))
    idx = reference.get("idx", reference.get("statusListIndex"))
    found = _LIST_PATH.match(uri) if isinstance(uri, str) else None
    if found is None or not str(idx).isdigit():
        return None
    return found["base"], int(found["list"]), int(str(idx))


def check_holdings(report: Report, wallet: WalletView, issuers: Iterable[IssuerView]) -> None:
    """I1 and I2 across the wallet and the issuers: what the wallet holds was recorded."""
    by_base = {base: view for view in issuers for base in view.base_urls}
    taken = {view.name: view.by_index() for view in by_base.values()}
    keys = []
    elsewhere = 0
    for instance in wallet.instances:
        key = _status_key(instance.status_reference)
        card = wallet.cards.get(instance.credential_id)
        issuer = by_base.get(key[0] if key else (card.credential_issuer if card else ""))
        if issuer is None:
            elsewhere += 1
            continue
        report.count("I1")
        if key is None:
            report.violate("I1", f"wallet: instance {instance.id} has no status index")
        elif (key[1], key[2]) not in taken[issuer.name]:
            report.violate(
                "I1", f"wallet: instance {instance.id} has no issuance record at {issuer.name}"
            )
        else:
            keys.append(key)
    report.count("I2", len(keys))
    for (base, list_id, idx), n in _duplicates(keys):
        report.violate("I2", f"wallet: {n} credentials share index {idx} of {base} list {list_id}")
    if elsewhere:
        report.note(f"wallet: {elsewhere} credential instance(s) from issuers not checked")


# -- the whole check ---------------------------------------------------------------------------


def check(
    sources: Sources,
    *,
    tx_code_max_attempts: int = DEFAULT_TX_CODE_MAX_ATTEMPTS,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    allow_foreign_presentations: bool = False,
    clock: Callable[[], float] = time.time,
) -> Report:
    """Read every database given (verifier, wallet, issuers: in that order) and check I1-I5."""
    report = Report()
    verifier = read_verifier(sources.verifier) if sources.verifier else None
    wallet = read_wallet(sources.wallet) if sources.wallet else None
    issuers = [read_issuer(name, url) for name, url in sources.issuers.items()]
    report.sources = [
        *(view.name for view in issuers),
        *(["wallet"] if wallet else []),
        *(["verifier"] if verifier else []),
    ]
    for view in issuers:
        check_issuer(report, view, tx_code_max_attempts)
    if wallet is not None:
        store = (
            CryptoStore.from_config(sources.wallet_master_key)
            if sources.wallet_master_key
            else None
        )
        if store is None:
            report.note("wallet: no master key given; sealed keys checked for presence only")
        check_wallet_keys(report, wallet, store, int(clock()), grace_seconds)
        check_wallet_consents(report, wallet)
        if issuers:
            check_holdings(report, wallet, issuers)
    if verifier is not None:
        check_verifier(report, verifier)
        if wallet is not None:
            check_presentations(report, verifier, wallet, allow_foreign_presentations)
    return report
