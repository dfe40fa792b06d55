"""PostgreSQL: the common token and credential requests in one statement each
(issuer/single_statement.py, docs/issuer.md "Performance"). The one-statement way is taken
when it can be, writes the same rows as the transaction, writes nothing when it cannot
answer, and leaves the answer to the transaction then (replays, a taken status index)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from intyg import jose, sdjwt, strict_json
from intyg.web import db
from issuer import oid4vci as issuer_oid4vci
from issuer import single_statement
from issuer.models import AuditEntry, CNonce, Issuance, ReplayEntry, StatusEntry, digest

from .conftest import ISSUER_URL, POSTGRES_URL, Clock
from .test_oid4vci_flow import (
    Harness,
    check_sd_jwt_vc,
    check_vcdm,
    make_harness,
    verify_sd_jwt_vc,
)

pytestmark = [
    pytest.mark.skipif(not POSTGRES_URL, reason="INTYG_TEST_POSTGRES_URL not set"),
    # PostgreSQL only: on SQLite the endpoints always take the transaction.
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]


@pytest.fixture
def h(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[Harness]:
    with make_harness(database_url, tmp_path, clock) as made:
        yield made


class Spy:
    """Records what the one-statement results said (``redeemed``/``issued``; None: nothing
    written)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.results: list[Any] = []
        real: Callable[..., Any] = getattr(single_statement, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            self.results.append(result)
            return result

        monkeypatch.setattr(single_statement, name, spy)


def _issue(h: Harness, configuration_id: str | None = None) -> tuple[Any, str, jose.Key]:
    wallet = h.wallet()
    offer = wallet.resolve_offer(h.offer().link)
    token = wallet.pre_authorized_token(offer)
    issued = wallet.request_credentials(token, configuration_id=configuration_id or h.sd_jwt_id)
    return token, issued.credentials[0], issued.keys[0]


def _rows(h: Harness, model: Any) -> list[Any]:
    with db.session(h.ctx.engine, write=False) as unit:
        return list(unit.scalars(sa.select(model)))


def test_common_requests_take_one_statement_and_write_the_same_rows(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    redeemed, written = Spy(monkeypatch, "redeemed"), Spy(monkeypatch, "issued")
    _issue(h)  # the first credential request reads the status list head (the transaction)
    before = h.counts()
    token, credential, holder = _issue(h)
    assert [r is not None for r in redeemed.results] == [True, True]
    assert written.results[-1] is not None
    after = h.counts()
    assert {k: after[k] - before[k] for k in after} == {
        "issuances": 1,
        "status_entries": 1,
        "access_tokens": 1,
        "used_nonces": 1,
        "used_offers": 1,
        "audit": 1,
    }
    verified = verify_sd_jwt_vc(h, credential, holder)
    assert verified.claims["given_name"]
    issued = [e for e in _rows(h, AuditEntry) if e.action == "credential.issued"]
    assert len(issued) == 2 and issued[-1].id == written.results[-1]
    # The same entry as the transaction's, references only.
    assert issued[0].details.keys() == issued[1].details.keys()
    assert issued[1].actor == issued[0].actor and issued[1].subject.startswith("issuance:")
    # Both DPoP proofs' jti are recorded (token and credential request).
    assert len([r for r in _rows(h, ReplayEntry) if r.kind == "dpop"]) == 4
    status = sdjwt.parse(credential).jws.claims()["status"]["status_list"]
    entries = {(e.status_list_id, e.idx) for e in _rows(h, StatusEntry)}
    assert any(idx == status["idx"] for _, idx in entries)
    assert token.token_type == "DPoP"


@pytest.mark.parametrize("agency", ["af", "myh"])
@pytest.mark.parametrize("kind", ["sd-jwt", "vcdm"])
def test_one_statement_credentials_equal_the_transactions(
    agency: str,
    kind: str,
    database_url: str,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """For each agency and format: the first credential of a process comes from the
    transaction, the second from the one statement; the two say the same about the person
    and their record, and each has its own status entry and issuance row."""
    written = Spy(monkeypatch, "issued")
    with make_harness(database_url, tmp_path, clock, agency=agency) as h:
        sd_jwt = kind == "sd-jwt"
        configuration_id = h.sd_jwt_id if sd_jwt else h.vcdm_id
        check = check_sd_jwt_vc if sd_jwt else check_vcdm
        subjects, statuses = [], []
        for _ in range(2):
            _, credential, holder = _issue(h, configuration_id)
            verified = check(h, credential, holder)
            if sd_jwt:
                claims = dict(verified.claims)  # type: ignore[union-attr]
                statuses.append(claims.pop("status"))
                for name in ("cnf", "iat", "exp"):
                    claims.pop(name)
            else:
                claims = dict(verified.credential["credentialSubject"])  # type: ignore[union-attr]
                statuses.append(verified.credential["credentialStatus"])  # type: ignore[union-attr]
            subjects.append(claims)
        # The first credential's request read the list head, the second's was the statement.
        assert len(written.results) == 1 and written.results[0] is not None
        assert subjects[0] == subjects[1] and statuses[0] != statuses[1]
        with db.session(h.ctx.engine, write=False) as unit:
            rows = list(unit.scalars(sa.select(Issuance).order_by(Issuance.issued_at)))
            entries = {(e.status_list_id, e.idx) for e in unit.scalars(sa.select(StatusEntry))}
        assert len(rows) == 2 and {(r.status_list_id, r.status_idx) for r in rows} <= entries
        keep = ("person_id", "record_id", "configuration_id", "format", "kid", "status")
        first, second = ({k: getattr(r, k) for k in keep} for r in rows)
        assert first == second


def test_a_replayed_credential_request_gets_the_transactions_refusal(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = Spy(monkeypatch, "issued")
    _issue(h)
    wallet, token, _, body = _credential_parts(h)
    url = wallet.url("/credential")
    headers = {**wallet.auth_headers(token, url), "Content-Type": "application/json"}
    content = strict_json.dumps(body).encode()
    assert h.client.post(url, content=content, headers=headers).status_code == 200
    assert written.results[-1] is not None
    counts = h.counts()
    # The same DPoP proof again: nothing written by the statement, the transaction's 401.
    again = h.client.post(url, content=content, headers=headers)
    assert again.status_code == 401 and again.json()["error"] == "invalid_dpop_proof"
    assert "already used" in again.json()["error_description"]
    # A fresh DPoP proof, the same key proof (its c_nonce is used): invalid_nonce.
    fresh = {**wallet.auth_headers(token, url), "Content-Type": "application/json"}
    retried = h.client.post(url, content=content, headers=fresh)
    assert retried.status_code == 400 and retried.json()["error"] == "invalid_nonce"
    assert written.results[-2:] == [None, None]
    assert h.counts() == counts


def test_a_replayed_token_request_gets_the_transactions_refusal(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    redeemed = Spy(monkeypatch, "redeemed")
    wallet = h.wallet()
    url = wallet.url("/token")
    proof_headers = wallet.dpop_headers("POST", url)
    first = wallet.pre_authorized_form(wallet.resolve_offer(h.offer().link))
    assert h.client.post(url, data=first, headers=proof_headers).status_code == 200
    counts = h.counts()
    replay_rows = len(_rows(h, ReplayEntry))
    # The same DPoP proof with another offer: the offer stays unused, the proof is refused.
    second = wallet.pre_authorized_form(wallet.resolve_offer(h.offer().link))
    replayed = h.client.post(url, data=second, headers=proof_headers)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_dpop_proof"
    # The used code with a fresh proof: invalid_grant, and that proof's jti is not kept.
    fresh = wallet.dpop_headers("POST", url)
    used = h.client.post(url, data=first, headers=fresh)
    assert used.status_code == 400 and used.json()["error"] == "invalid_grant"
    assert [r is not None for r in redeemed.results] == [True, False, False]
    assert len(_rows(h, ReplayEntry)) == replay_rows
    assert {k: v for k, v in h.counts().items() if k != "audit"} == {
        k: v for k, v in counts.items() if k != "audit"
    }
    # The second offer is still redeemable.
    assert h.client.post(url, data=second, headers=wallet.dpop_headers("POST", url)).is_success


def test_a_taken_status_index_is_issued_by_the_transaction(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement writes nothing when its drawn index is taken; the transaction then
    draws again and issues (I2: no index twice)."""
    written = Spy(monkeypatch, "issued")
    _issue(h)
    head = issuer_oid4vci._open_lists(h.ctx).get("tsl")
    assert head is not None
    with db.session(h.ctx.engine) as unit:
        unit.add(StatusEntry(status_list_id=head.id, idx=0, allocated_at=h.clock()))
    monkeypatch.setattr(issuer_oid4vci, "_draw_index", lambda size: 0)
    counts = h.counts()
    _, credential, _ = _issue(h)
    assert written.results[-1] is None
    assert sdjwt.parse(credential).jws.claims()["status"]["status_list"]["idx"] != 0
    after = h.counts()
    assert after["issuances"] == counts["issuances"] + 1
    assert after["status_entries"] == counts["status_entries"] + 1


def test_the_issuance_statement_writes_all_or_nothing(h: Harness) -> None:
    """I1 inside the one statement: a UNIQUE failure (a proof hash used before) leaves no
    jti, c_nonce marker, status entry or audit entry behind, nor anything of the other
    statements written with it."""
    _issue(h)
    with db.session(h.ctx.engine, write=False) as unit:
        taken = unit.scalars(sa.select(Issuance)).first()
    assert taken is not None
    replay_rows = len(_rows(h, ReplayEntry))
    now = h.clock()
    issuance = {
        "id": "00000000-0000-4000-8000-000000000000",
        "person_id": taken.person_id,
        "record_id": taken.record_id,
        "configuration_id": taken.configuration_id,
        "format": taken.format,
        "status_list_id": taken.status_list_id,
        "status_idx": (taken.status_idx + 1) % 16,
        "kid": taken.kid,
        "proof_hash": taken.proof_hash,
        "notification_id": None,
        "issued_at": now,
        "expires_at": now + 60,
        "status": "valid",
    }
    audit = {
        "actor": "wallet:anonymous",
        "action": "credential.issued",
        "subject": "x",
        "details": {},
    }
    integrity = h.ctx.engine.dialect.loaded_dbapi.IntegrityError
    with db.driver_connection(h.ctx.engine) as connection:
        if (taken.status_list_id, issuance["status_idx"]) in {
            (e.status_list_id, e.idx) for e in _rows(h, StatusEntry)
        }:
            issuance["status_idx"] += 100
        item = single_statement.issue(
            now=now,
            jti=("dpop", digest("a fresh jti"), now + 60),
            nonce=(digest("a fresh nonce"), now + 60),
            issuance=issuance,
            audit=audit,
        )
        # A token request's write in the same batch: one transaction, so it is not written
        # either (the offer stays unused).
        wallet = h.wallet()
        code = wallet.resolve_offer(h.offer().link).pre_authorized_code
        assert code is not None
        counts = h.counts()
        token = single_statement.redeem_offer(
            code_hash=digest(code.pre_authorized_code),
            now=now,
            token_hash=digest("a fresh token"),
            token_expires_at=now + 60,
            dpop_jkt=None,
            client_id=None,
            jti=("dpop", digest("another fresh jti"), now + 60),
        )
        with pytest.raises(integrity):
            single_statement.write(connection, [token, item])
    assert h.counts() == counts
    assert len(_rows(h, ReplayEntry)) == replay_rows
    assert not [n for n in _rows(h, CNonce) if n.nonce_hash == digest("a fresh nonce")]
    with db.driver_connection(h.ctx.engine) as connection:
        (result,) = single_statement.write(connection, [token])
    assert single_statement.redeemed(result) is not None
    assert h.counts()["used_offers"] == counts["used_offers"] + 1


# -- group commit: concurrent requests share a batch --------------------------------------


class Batches:
    """Records the size of every write batch (``issuer.oid4vci._write_together``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real = issuer_oid4vci._write_together

        def spy(ctx: Any, statements: Any) -> Any:
            self.sizes.append(len(statements))
            return real(ctx, statements)

        monkeypatch.setattr(issuer_oid4vci, "_write_together", spy)


def _concurrently(h: Harness, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """POST ``requests`` (path, httpx keyword arguments) to the app at once, on one event
    loop: their statements are submitted in the same loop turns and share batches."""

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=h.client.app)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER_URL) as client:
            return await asyncio.gather(*(client.post(path, **kw) for path, kw in requests))

    return asyncio.run(main())


def _token_requests(h: Harness, count: int) -> list[tuple[str, dict[str, Any]]]:
    wallet = h.wallet()
    url = wallet.url("/token")
    return [
        (
            "/token",
            {
                "data": wallet.pre_authorized_form(wallet.resolve_offer(h.offer().link)),
                "headers": wallet.dpop_headers("POST", url),
            },
        )
        for _ in range(count)
    ]


def _credential_parts(h: Harness) -> tuple[Any, Any, jose.Key, dict[str, Any]]:
    """A wallet with a token for a new offer, a holder key and a credential request body."""
    wallet = h.wallet()
    token = wallet.pre_authorized_token(wallet.resolve_offer(h.offer().link))
    key = jose.generate_key("ES256")
    body = {
        "credential_configuration_id": h.sd_jwt_id,
        "proofs": {"jwt": [wallet.proof(key, wallet.nonce())]},
    }
    return wallet, token, key, body


def _credential_request(h: Harness) -> tuple[tuple[str, dict[str, Any]], jose.Key]:
    wallet, token, key, body = _credential_parts(h)
    headers = {
        **wallet.auth_headers(token, wallet.url("/credential")),
        "Content-Type": "application/json",
    }
    sent = {"content": strict_json.dumps(body).encode(), "headers": headers}
    return ("/credential", sent), key


def test_concurrent_requests_share_batches_and_each_get_their_own_answer(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _issue(h)  # the status list head is known: later requests take the one statement
    batches, written = Batches(monkeypatch), Spy(monkeypatch, "issued")
    counts = h.counts()
    tokens = _concurrently(h, _token_requests(h, 6))
    assert [r.status_code for r in tokens] == [200] * 6
    assert len({r.json()["access_token"] for r in tokens}) == 6
    assert max(batches.sizes) > 1, batches.sizes
    requests, keys = zip(*(_credential_request(h) for _ in range(6)), strict=True)
    batches.sizes.clear()
    answers = _concurrently(h, list(requests))
    assert [r.status_code for r in answers] == [200] * 6
    assert max(batches.sizes) > 1, batches.sizes
    assert len(written.results) == 6 and None not in written.results
    for answer, key in zip(answers, keys, strict=True):
        credential = answer.json()["credentials"][0]["credential"]
        assert verify_sd_jwt_vc(h, credential, key).claims["given_name"]
    after = h.counts()
    assert after["issuances"] - counts["issuances"] == 6
    assert after["access_tokens"] - counts["access_tokens"] == 12  # 6 at once, 6 alone
    assert after["used_offers"] - counts["used_offers"] == 12


def test_a_replay_in_the_same_batch_is_written_once(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same credential request twice at once: the statements of one batch see each
    other's rows, so the second writes nothing and gets the transaction's refusal."""
    _issue(h)
    request, _ = _credential_request(h)
    batches = Batches(monkeypatch)
    counts = h.counts()
    answers = _concurrently(h, [request, request])
    assert sorted(r.status_code for r in answers) == [200, 401]
    refused = next(r for r in answers if r.status_code == 401)
    assert refused.json()["error"] == "invalid_dpop_proof"
    assert 2 in batches.sizes
    assert h.counts()["issuances"] == counts["issuances"] + 1
    # The same token request twice at once: one token, one invalid_dpop_proof.
    (token_request,) = _token_requests(h, 1)
    tokens = _concurrently(h, [token_request, token_request])
    assert sorted(r.status_code for r in tokens) == [200, 400]
    assert h.counts()["access_tokens"] == counts["access_tokens"] + 1


def test_a_statement_that_fails_fails_alone(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A UNIQUE failure of one request's statement fails its batch; the others are then
    written one by one by the statement, the failed one by its transaction."""
    _issue(h)
    with db.session(h.ctx.engine, write=False) as unit:
        taken = unit.scalars(sa.select(Issuance)).first()
    assert taken is not None
    real = single_statement.issue
    calls: list[int] = []

    def issue_one_taken(**values: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:  # this statement reuses a proof hash: UNIQUE violation
            values["issuance"] = {**values["issuance"], "proof_hash": taken.proof_hash}
        return real(**values)

    requests = [_credential_request(h)[0] for _ in range(5)]
    monkeypatch.setattr(single_statement, "issue", issue_one_taken)
    batches, written = Batches(monkeypatch), Spy(monkeypatch, "issued")
    counts = h.counts()
    answers = _concurrently(h, requests)
    assert [r.status_code for r in answers] == [200] * 5
    assert batches.sizes[0] > 1 and batches.sizes[-3:] == [1, 1, 1], batches.sizes
    assert len([r for r in written.results if r is not None]) == 4  # the fifth: transaction
    assert h.counts()["issuances"] == counts["issuances"] + 5
