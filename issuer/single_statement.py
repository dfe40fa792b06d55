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
from typing import Any, NamedTuple

from intyg import strict_json
from intyg.web import db

__all__ = [
    "TOKEN_READ_COLUMNS",
    "Item",
    "issue",
    "issued",
    "read_tokens",
    "redeem_offer",
    "redeemed",
    "write",
]


# -- /token ----------------------------------------------------------------------------------

#: The batch's rows, unpacked from one JSON parameter (``:batch``); ``n`` is the position.
_INPUT = "input AS (SELECT * FROM json_to_recordset(CAST(:batch AS JSON)) AS x({columns}))"
# ``= ANY(:keys)`` guards: the batch's keys, whatever the planner thinks of ``input`` (without
# them a generic plan may scan the whole table instead of the unique index).
_JTI_FREE = """NOT EXISTS (SELECT 1 FROM jti_replay_cache j
                    WHERE j.jti_hash = ANY(CAST(:jti_hashes AS TEXT[]))
                      AND j.kind = i.jti_kind AND j.jti_hash = i.jti_hash)"""

# Only module constants are joined into the SQL; every value is a bound parameter.
_TOKEN_INPUT = _INPUT.format(
    columns="n INTEGER, code_hash TEXT, now BIGINT, token_hash TEXT, token_expires_at BIGINT, "
    "dpop_jkt TEXT, client_id TEXT, jti_kind TEXT, jti_hash TEXT, jti_expires_at BIGINT"
)
_REDEEM_OFFERS = f"""
WITH {_TOKEN_INPUT}, offer AS (
    UPDATE credential_offers o SET used_at = i.now
    FROM input i
    WHERE o.pre_authorized_code_hash = ANY(CAST(:code_hashes AS TEXT[]))
      AND o.pre_authorized_code_hash = i.code_hash
      AND o.used_at IS NULL AND o.expires_at > i.now AND o.tx_code_hash IS NULL
      AND {_JTI_FREE}
    RETURNING i.n, o.person_id, o.record_id, o.configuration_ids
), jti AS (
    INSERT INTO jti_replay_cache (kind, jti_hash, expires_at)
    SELECT i.jti_kind, i.jti_hash, i.jti_expires_at
    FROM offer JOIN input i ON i.n = offer.n WHERE i.jti_hash IS NOT NULL
), token AS (
    INSERT INTO access_tokens (token_hash, person_id, record_id, configuration_ids,
                               credential_identifiers, dpop_jkt, client_id, created_at,
                               expires_at)
    SELECT i.token_hash, offer.person_id, offer.record_id, offer.configuration_ids,
           CAST('[]' AS JSON), i.dpop_jkt, i.client_id, i.now, i.token_expires_at
    FROM offer JOIN input i ON i.n = offer.n
)
SELECT n, person_id, record_id, configuration_ids FROM offer
"""  # noqa: S608

Redeemed = namedtuple("Redeemed", ["person_id", "record_id", "configuration_ids"])
_TOKEN, _CREDENTIAL = "token", "credential"


def redeem_offer(
    *,
    code_hash: str,
    now: int,
    token_hash: str,
    token_expires_at: int,
    dpop_jkt: str | None,
    client_id: str | None,
    jti: tuple[str, str, int] | None,
) -> Item:
    """Redeem a pre-authorized code without ``tx_code``, record the DPoP ``jti`` (``(kind,
    digest, expires_at)``, if any) and store the access token, atomically (:func:`write`;
    :func:`redeemed` reads its result)."""
    jti_kind, jti_hash, jti_expires_at = jti or (None, None, None)
    return Item(
        _TOKEN,
        {
            "code_hash": code_hash,
            "now": now,
            "token_hash": token_hash,
            "token_expires_at": token_expires_at,
            "dpop_jkt": dpop_jkt,
            "client_id": client_id,
            "jti_kind": jti_kind,
            "jti_hash": jti_hash,
            "jti_expires_at": jti_expires_at,
        },
    )


def redeemed(result: tuple[Any, ...] | None) -> Redeemed | None:
    """A :func:`redeem_offer` item's result: the offer's person, record and configurations,
    or None when nothing was written (code unknown, used, expired or needing a ``tx_code``;
    ``jti`` seen before)."""
    return Redeemed(*result) if result is not None else None


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


_CREDENTIAL_INPUT = _INPUT.format(
    columns="n INTEGER, now BIGINT, jti_kind TEXT, jti_hash TEXT, jti_expires_at BIGINT, "
    "nonce_hash TEXT, nonce_expires_at BIGINT, id TEXT, person_id INTEGER, record_id INTEGER, "
    "configuration_id TEXT, format TEXT, status_list_id INTEGER, status_idx INTEGER, kid TEXT, "
    "proof_hash TEXT, notification_id TEXT, issued_at BIGINT, expires_at BIGINT, status TEXT, "
    "actor TEXT, action TEXT, subject TEXT, details TEXT"
)
_ISSUE = f"""
WITH {_CREDENTIAL_INPUT}, go AS MATERIALIZED (
    SELECT i.* FROM input i
    WHERE {_JTI_FREE}
      AND NOT EXISTS (SELECT 1 FROM c_nonces c
                      WHERE c.nonce_hash = ANY(CAST(:nonce_hashes AS TEXT[]))
                        AND c.nonce_hash = i.nonce_hash)
      AND NOT EXISTS (SELECT 1 FROM status_entries s
                      WHERE s.status_list_id = ANY(CAST(:status_list_ids AS INTEGER[]))
                        AND s.idx = ANY(CAST(:status_idxs AS INTEGER[]))
                        AND s.status_list_id = i.status_list_id AND s.idx = i.status_idx)
), jti AS (
    INSERT INTO jti_replay_cache (kind, jti_hash, expires_at)
    SELECT jti_kind, jti_hash, jti_expires_at FROM go WHERE jti_hash IS NOT NULL
), nonce AS (
    INSERT INTO c_nonces (nonce_hash, created_at, expires_at, used_at)
    SELECT nonce_hash, now, nonce_expires_at, now FROM go
), entry AS (
    INSERT INTO status_entries (status_list_id, idx, allocated_at)
    SELECT status_list_id, status_idx, now FROM go
), issuance AS (
    INSERT INTO issuances (id, person_id, record_id, configuration_id, format, status_list_id,
                           status_idx, kid, proof_hash, notification_id, issued_at, expires_at,
                           status)
    SELECT id, person_id, record_id, configuration_id, format, status_list_id, status_idx,
           kid, proof_hash, notification_id, issued_at, expires_at, status
    FROM go
), audit AS (
    INSERT INTO audit_log (at, actor, action, subject, details)
    SELECT now, actor, action, subject, CAST(details AS JSON) FROM go
    RETURNING id, subject
)
SELECT go.n, audit.id FROM go JOIN audit ON audit.subject = go.subject
"""  # noqa: S608


def issue(
    *,
    now: int,
    jti: tuple[str, str, int] | None,
    nonce: tuple[str, int],
    issuance: dict[str, Any],
    audit: dict[str, Any],
) -> Item:
    """Record one credential: the DPoP ``jti`` (``(kind, digest, expires_at)``, if any), the
    ``c_nonce`` marker (``(digest, expires_at)``), the status entry and the issuance row
    (``issuance``: the columns of :func:`issuer.records.record_issuance` with ``id``) and
    the audit entry (``audit``: checked values of :func:`issuer.audit.append`, its
    ``subject`` unique to the issuance), all or nothing (:func:`write`; :func:`issued`
    reads its result)."""
    jti_kind, jti_hash, jti_expires_at = jti or (None, None, None)
    return Item(
        _CREDENTIAL,
        {
            "now": now,
            "jti_kind": jti_kind,
            "jti_hash": jti_hash,
            "jti_expires_at": jti_expires_at,
            "nonce_hash": nonce[0],
            "nonce_expires_at": nonce[1],
            **issuance,
            "actor": audit["actor"],
            "action": audit["action"],
            "subject": audit["subject"],
            "details": strict_json.dumps(audit["details"]),
        },
    )


def issued(result: tuple[Any, ...] | None) -> int | None:
    """An :func:`issue` item's result: the audit entry's id, or None when nothing was
    written (``jti`` or ``c_nonce`` seen before, the status index taken)."""
    return result[0] if result is not None else None


# -- writing a batch -------------------------------------------------------------------------


class Item(NamedTuple):
    """One request's write: its kind (``/token`` or ``/credential``) and its values."""

    kind: str
    values: dict[str, Any]


def _statement(kind: str, rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    def keys(name: str) -> list[Any]:
        return [row[name] for row in rows if row[name] is not None]

    guards = {"jti_hashes": keys("jti_hash")}
    if kind == _TOKEN:
        guards["code_hashes"] = keys("code_hash")
    else:
        guards["nonce_hashes"] = keys("nonce_hash")
        guards["status_list_ids"] = sorted(set(keys("status_list_id")))
        guards["status_idxs"] = keys("status_idx")
    sql = _REDEEM_OFFERS if kind == _TOKEN else _ISSUE
    return sql, {"batch": strict_json.dumps(rows), **guards}


def write(connection: db.DriverConnection, items: Sequence[Item]) -> list[tuple[Any, ...] | None]:
    """Write ``items`` in one transaction and one round trip: one statement per kind over
    all its items. Per item, what it wrote (for :func:`redeemed` / :func:`issued`), or None
    when nothing was written for it. A statement that fails (the driver's IntegrityError:
    a UNIQUE key taken concurrently, or twice in the batch) writes nothing at all."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for n, item in enumerate(items):
        groups.setdefault(item.kind, []).append({"n": n, **item.values})
    statements = [_statement(kind, rows) for kind, rows in groups.items()]
    results: list[tuple[Any, ...] | None] = [None] * len(items)
    for rows in connection.execute_together(statements):
        for n, *result in rows:
            results[n] = tuple(result)
    return results
