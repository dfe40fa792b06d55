"""PostgreSQL: the common token and credential requests in one statement each, in autocommit.

The OpenID4VCI endpoints (``issuer/oid4vci.py``) run every request through a transaction of
several statements, on SQLite and PostgreSQL alike. On PostgreSQL the common request (pre-
authorized code without ``tx_code`` at ``/token``; one key proof for an offer's record at
``/credential``) first takes this shorter way: what it writes goes in *one* statement of
data-modifying CTEs, sent on a pooled connection in autocommit mode
(:func:`intyg.web.db.driver_connection`), so the request costs one commit and one or two round
trips instead of a BEGIN, 3-7 statements and a COMMIT.

One statement is one transaction, so everything it writes commits together or not at all
(I1: issuance row, status entry, audit entry and the consumed ``c_nonce`` at once). Every
check that depends on the database is part of the statement:

- ``/token``: the offer is redeemed by the same ``UPDATE ... WHERE used_at IS NULL`` as the
  transaction (row lock, re-check under READ COMMITTED: one winner), and only if the DPoP
  proof's ``jti`` is not in the replay cache; the ``jti`` and the access token are inserted
  from the redeemed row, so nothing is written unless the offer was redeemed.
- ``/credential``: the ``jti``, the ``c_nonce`` marker and the status entry must all be new
  (``NOT EXISTS``), else nothing is written; they are inserted with plain INSERTs, so one
  written concurrently after the statement's snapshot makes the statement fail on its
  UNIQUE key (``IntegrityError``) and nothing is written either. The issuance row keeps
  its UNIQUE ``proof_hash``.

When the statement writes nothing (or fails on a UNIQUE key), the endpoint runs its usual
transaction from the start, which refuses the request with the precise error or, after a
status index collision, issues it with another index. So the answers are the transaction's
own; this module only decides when one statement is enough.

The endpoints run on the event loop and hand these statements to a group commit
(:class:`intyg.web.batching.Batcher`): the statements of concurrent requests go to the
database together, reads as one ``= ANY`` lookup (:func:`read_tokens`), writes in one
transaction of one round trip (:meth:`intyg.web.db.DriverConnection.execute_together`). Each
statement keeps its own checks, so within a batch a later statement sees what an earlier one
wrote (a replay in the same batch writes nothing); a statement that fails fails the batch,
whose items are then written one by one (:func:`intyg.web.batching.isolating`).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from intyg import strict_json
from intyg.web import db

__all__ = [
    "TOKEN_READ_COLUMNS",
    "Statement",
    "issue",
    "issued",
    "read_tokens",
    "redeem_offer",
    "redeemed",
]

#: SQL with its ``:name`` values, for :meth:`intyg.web.db.DriverConnection.execute_together`.
Statement = tuple[str, dict[str, Any]]


# -- /token ----------------------------------------------------------------------------------

_REDEEM_OFFER = """
WITH offer AS (
    UPDATE credential_offers SET used_at = :now
    WHERE pre_authorized_code_hash = :code_hash
      AND used_at IS NULL AND expires_at > :now AND tx_code_hash IS NULL{jti_free}
    RETURNING person_id, record_id, configuration_ids
){jti_insert}, token AS (
    INSERT INTO access_tokens (token_hash, person_id, record_id, configuration_ids,
                               credential_identifiers, dpop_jkt, client_id, created_at,
                               expires_at)
    SELECT :token_hash, person_id, record_id, configuration_ids, CAST('[]' AS JSON),
           :dpop_jkt, :client_id, :now, :token_expires_at
    FROM offer
)
SELECT person_id, record_id, configuration_ids FROM offer
"""
_JTI_FREE = """
      AND NOT EXISTS (SELECT 1 FROM jti_replay_cache
                      WHERE kind = :jti_kind AND jti_hash = :jti_hash)"""
_JTI_FROM_OFFER = """, jti AS (
    INSERT INTO jti_replay_cache (kind, jti_hash, expires_at)
    SELECT :jti_kind, :jti_hash, :jti_expires_at FROM offer
)"""
_REDEEM_WITH_JTI = _REDEEM_OFFER.format(jti_free=_JTI_FREE, jti_insert=_JTI_FROM_OFFER)
_REDEEM_WITHOUT_JTI = _REDEEM_OFFER.format(jti_free="", jti_insert="")

Redeemed = namedtuple("Redeemed", ["person_id", "record_id", "configuration_ids"])


def redeem_offer(
    *,
    code_hash: str,
    now: int,
    token_hash: str,
    token_expires_at: int,
    dpop_jkt: str | None,
    client_id: str | None,
    jti: tuple[str, str, int] | None,
) -> Statement:
    """The statement that redeems a pre-authorized code without ``tx_code``, records the DPoP
    ``jti`` (``(kind, digest, expires_at)``, if any) and stores the access token, atomically
    (:func:`redeemed` reads its rows)."""
    values: dict[str, Any] = {
        "code_hash": code_hash,
        "now": now,
        "token_hash": token_hash,
        "token_expires_at": token_expires_at,
        "dpop_jkt": dpop_jkt,
        "client_id": client_id,
    }
    if jti is not None:
        values["jti_kind"], values["jti_hash"], values["jti_expires_at"] = jti
    return (_REDEEM_WITH_JTI if jti else _REDEEM_WITHOUT_JTI, values)


def redeemed(rows: list[tuple[Any, ...]]) -> Redeemed | None:
    """What :func:`redeem_offer`'s statement returned: the offer's person, record and
    configurations, or None when nothing was written (code unknown, used, expired or needing
    a ``tx_code``; ``jti`` seen before)."""
    return Redeemed(*rows[0]) if rows else None


# -- /credential -----------------------------------------------------------------------------

#: The access token's columns :func:`read_token` returns first (``AuthenticatedToken.row``).
TOKEN_READ_COLUMNS = (
    "person_id",
    "record_id",
    "configuration_ids",
    "credential_identifiers",
    "dpop_jkt",
    "client_id",
    "expires_at",
)
_READ_TEMPLATE = """
SELECT t.token_hash, t.person_id, t.record_id, t.configuration_ids, t.credential_identifiers,
       t.dpop_jkt, t.client_id, t.expires_at,
       p.lookup_key, p.sealed_personal_number, p.sealed_identity,
       {record_columns}
FROM access_tokens t
LEFT JOIN persons p ON p.id = t.person_id
{record_joins}
WHERE t.token_hash = ANY(:token_hashes)
"""
# The record as issuer.records reads it (_REGISTRATION_SUBJECT / _AWARD_SUBJECT): ``id``
# NULL when the token's record is not the person's.
_RECORDS = {
    "af": (
        (
            *("id", "registered", "registered_since", "category_code", "category_label"),
            *("programme_code", "programme_label", "programme_since"),
        ),
        "LEFT JOIN af_registrations r ON r.person_id = t.person_id AND r.id = t.record_id",
    ),
    "myh": (
        ("id", "awarded_on", "data"),
        "LEFT JOIN myh_awards r ON r.person_id = t.person_id AND r.id = t.record_id\n"
        "LEFT JOIN myh_qualifications q ON q.qualification_id = r.qualification_id",
    ),
}
_READS = {
    agency: (
        _READ_TEMPLATE.format(
            record_columns=", ".join(("q." if c == "data" else "r.") + c for c in columns),
            record_joins=joins,
        ),
        namedtuple(  # type: ignore[misc]
            "TokenAndSubject",
            [
                *TOKEN_READ_COLUMNS,
                "lookup_key",
                "sealed_personal_number",
                "sealed_identity",
                *columns,
            ],
        ),
    )
    for agency, (columns, joins) in _RECORDS.items()
}


def read_tokens(
    connection: db.DriverConnection, agency_key: str, token_hashes: Sequence[str]
) -> list[Any | None]:
    """Per token digest, the access token with, for the subject, its person (sealed columns)
    and its record (:func:`issuer.records.subject_from_row`), all in one read; None for a
    token that is unknown."""
    sql, row_type = _READS[agency_key]
    found = {
        token_hash: row_type(*values)
        for token_hash, *values in connection.execute(sql, {"token_hashes": list(token_hashes)})
    }
    return [found.get(token_hash) for token_hash in token_hashes]


_ISSUE = """
WITH go AS (
    SELECT {jti_free}NOT EXISTS (SELECT 1 FROM c_nonces WHERE nonce_hash = :nonce_hash)
       AND NOT EXISTS (SELECT 1 FROM status_entries
                       WHERE status_list_id = :status_list_id AND idx = :status_idx) AS ok
){jti_insert}, nonce AS (
    INSERT INTO c_nonces (nonce_hash, created_at, expires_at, used_at)
    SELECT :nonce_hash, :now, :nonce_expires_at, :now FROM go WHERE ok
), entry AS (
    INSERT INTO status_entries (status_list_id, idx, allocated_at)
    SELECT :status_list_id, :status_idx, :now FROM go WHERE ok
), issuance AS (
    INSERT INTO issuances (id, person_id, record_id, configuration_id, format, status_list_id,
                           status_idx, kid, proof_hash, notification_id, issued_at, expires_at,
                           status)
    SELECT :issuance_id, :person_id, :record_id, :configuration_id, :format, :status_list_id,
           :status_idx, :kid, :proof_hash, :notification_id, :issued_at, :expires_at,
           :status
    FROM go WHERE ok
), audit AS (
    INSERT INTO audit_log (at, actor, action, subject, details)
    SELECT :now, :actor, :action, :subject, CAST(:details AS JSON) FROM go WHERE ok
    RETURNING id
)
SELECT (SELECT id FROM audit)
"""
_ISSUE_WITH_JTI = _ISSUE.format(
    jti_free="NOT EXISTS (SELECT 1 FROM jti_replay_cache\n"
    "                       WHERE kind = :jti_kind AND jti_hash = :jti_hash)\n       AND ",
    jti_insert="""\
, jti AS (
    INSERT INTO jti_replay_cache (kind, jti_hash, expires_at)
    SELECT :jti_kind, :jti_hash, :jti_expires_at FROM go WHERE ok
)""",
)
_ISSUE_WITHOUT_JTI = _ISSUE.format(jti_free="", jti_insert="")


def issue(
    *,
    now: int,
    jti: tuple[str, str, int] | None,
    nonce: tuple[str, int],
    issuance: dict[str, Any],
    audit: dict[str, Any],
) -> Statement:
    """The statement that records one credential: the DPoP ``jti`` (``(kind, digest,
    expires_at)``, if any), the ``c_nonce`` marker (``(digest, expires_at)``), the status
    entry and the issuance row (``issuance``: the columns of
    :func:`issuer.records.record_issuance` with ``id``) and the audit entry (``audit``:
    checked values of :func:`issuer.audit.append`), all or nothing (:func:`issued` reads its
    rows). It fails with the driver's IntegrityError when a UNIQUE key was taken
    concurrently (nothing written then either)."""
    values: dict[str, Any] = {
        "now": now,
        "nonce_hash": nonce[0],
        "nonce_expires_at": nonce[1],
        **issuance,
        "issuance_id": issuance["id"],
        "actor": audit["actor"],
        "action": audit["action"],
        "subject": audit["subject"],
        "details": strict_json.dumps(audit["details"]),
    }
    del values["id"]
    if jti is not None:
        values["jti_kind"], values["jti_hash"], values["jti_expires_at"] = jti
    return (_ISSUE_WITH_JTI if jti else _ISSUE_WITHOUT_JTI, values)


def issued(rows: list[tuple[Any, ...]]) -> int | None:
    """What :func:`issue`'s statement returned: the audit entry's id, or None when nothing
    was written (``jti`` or ``c_nonce`` seen before, the status index taken)."""
    return rows[0][0] if rows and rows[0][0] is not None else None
