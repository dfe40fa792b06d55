"""The response endpoint shares database round trips between concurrent responses
(verifier/transactions.py, intyg.web.batching): responses handled together are each
verified and recorded as if alone, two for one transaction leave exactly one outcome, and a
response refused by the database does not take the others of its batch with it. Runs on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import psycopg
import sqlalchemy as sa

from intyg import jose
from intyg.web.errors import ProtocolError
from verifier import transactions

from .flows import start, stored
from .helpers import (
    REGISTRATION_DISCLOSE,
    issue,
    reference_present,
    registration_payload,
    response_form,
)

INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)


def _journey(client, pki, status_lists) -> tuple[dict[str, Any], dict[str, str]]:
    holder = jose.generate_key("ES256")
    created, request = start(client)
    payload = registration_payload({"idx": 1, "uri": status_lists["af_uri"]})
    presentation = reference_present(
        issue(payload, pki.af, holder),
        REGISTRATION_DISCLOSE,
        nonce=request.nonce,
        aud=request.client_id,
        holder=holder,
    )
    return created, response_form(request, {"registration": [presentation]})


def _together(ctx, forms: list[dict[str, str]]) -> list[Any]:
    """Handle ``forms`` concurrently on one event loop: their lookups and writes are
    submitted in the same loop turns, so they share batches."""

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(transactions.handle_response(ctx, form) for form in forms), return_exceptions=True
        )

    return asyncio.run(main())


def test_concurrent_responses_are_each_verified_and_recorded(
    client, ctx, engine, pki, status_lists
) -> None:
    journeys = [_journey(client, pki, status_lists) for _ in range(5)]
    results = _together(ctx, [form for _, form in journeys])
    assert results == [{}] * 5
    for created, _ in journeys:
        after = stored(engine, created["transaction_id"])
        assert (after["status"], after["results"], after["claims"]) == ("verified", 1, 1)


def test_two_responses_for_one_transaction_in_one_batch_leave_one_outcome(
    client, ctx, engine, pki, status_lists
) -> None:
    (created, form), other = (
        _journey(client, pki, status_lists),
        _journey(client, pki, status_lists),
    )
    results = _together(ctx, [form, other[1], dict(form)])
    assert results[1] == {}
    outcomes = [results[0], results[2]]
    assert outcomes.count({}) == 1
    (refused,) = [r for r in outcomes if r != {}]
    assert isinstance(refused, ProtocolError) and "nonce_once" in refused.error_description
    after = stored(engine, created["transaction_id"])
    assert after["status"] == "verified"
    assert after["results"] == 1 and after["rejection_kinds"] == ["replay"]


def test_an_outcome_the_database_refuses_fails_alone(
    client, ctx, engine, pki, status_lists
) -> None:
    """One outcome of a batch breaks a constraint (a result row already exists for its
    transaction): the batch's database transaction fails, the outcomes are then written one
    by one, and only that one fails; its transaction stays unused."""
    journeys = [_journey(client, pki, status_lists) for _ in range(4)]
    spoiled = journeys[1][0]["transaction_id"]
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO results (transaction_id, outcome, checks, credentials,"
                " dropped_claims, holder_key_refs, created_at)"
                " VALUES (:id, 'verified', '[]', '[]', '[]', '[]', 0)"
            ),
            {"id": spoiled},
        )
    results = _together(ctx, [form for _, form in journeys])
    assert results[0] == results[2] == results[3] == {}
    assert isinstance(results[1], INTEGRITY_ERRORS)
    for index, (created, _) in enumerate(journeys):
        after = stored(engine, created["transaction_id"])
        assert after["status"] == ("pending" if index == 1 else "verified")
        assert after["claims"] == (0 if index == 1 else 1)


def test_a_rejection_in_a_batch_is_recorded_with_its_failed_checks(
    client, ctx, engine, pki, status_lists
) -> None:
    good, spoiled = _journey(client, pki, status_lists), _journey(client, pki, status_lists)
    created, request = start(client)
    holder = jose.generate_key("ES256")
    presentation = reference_present(
        issue(registration_payload({"idx": 1, "uri": status_lists["af_uri"]}), pki.af, holder),
        REGISTRATION_DISCLOSE,
        nonce="not-the-transaction-nonce",
        aud=request.client_id,
        holder=holder,
    )
    wrong_nonce = response_form(request, {"registration": [presentation]})
    results = _together(ctx, [good[1], wrong_nonce, spoiled[1]])
    assert results[0] == results[2] == {}
    assert isinstance(results[1], ProtocolError) and "key_binding" in results[1].error_description
    after = stored(engine, created["transaction_id"])
    assert (after["status"], after["results"], after["rejection_kinds"]) == (
        "rejected",
        0,
        ["presentation"],
    )
