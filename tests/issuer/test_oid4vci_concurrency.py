"""Races on single-use items over real HTTP (issue 3 item 6, "Must show"; security.md T021,
T037, I3): the issuer runs in uvicorn on a loopback port (sync endpoints on its worker
threads), and many clients hit it at once from a thread pool. On SQLite and on PostgreSQL
(the PostgreSQL run is skipped only when ``INTYG_TEST_POSTGRES_URL`` is unset)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from intyg import jose, oid4vci
from intyg.web import db
from issuer import offers, records
from issuer.app import IssuerContext, create_app, startup
from issuer.models import AccessToken, CredentialOffer, Issuance, Person, StatusEntry
from tests.eid.servers import bound_socket, serve
from tests.issuer.conftest import Clock, make_settings
from tests.issuer.wallet_sim import Wallet, WalletProvider

PARALLEL_REDEMPTIONS = 50
PARALLEL_CREDENTIAL_REQUESTS = 20


@dataclass
class Live:
    base: str
    ctx: IssuerContext
    provider: WalletProvider

    def wallet(self, client: httpx.Client) -> Wallet:
        return Wallet(client, self.base, provider=self.provider)

    def offer(self, *, tx_code: bool = False) -> offers.CreatedOffer:
        with db.session(self.ctx.engine) as unit:
            person = unit.scalars(sa.select(Person).order_by(Person.id)).first()  # type: ignore[arg-type]
            assert person is not None and person.id is not None
            registration = records.find_registration(unit, person.id)
            assert registration is not None and registration.id is not None
            return offers.create_offer(unit, self.ctx, person, registration.id, tx_code=tx_code)

    def count(self, model: Any) -> int:
        with db.session(self.ctx.engine, write=False) as unit:
            return unit.scalar(sa.select(sa.func.count()).select_from(model))  # type: ignore[no-any-return]


@pytest.fixture
def live(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[Live]:
    sock, base = bound_socket()
    provider = WalletProvider()
    settings = make_settings(
        database_url,
        tmp_path,
        public_base_url=base,
        dev_sample_data=True,
        trusted_wallet_providers=(provider.write_anchor(tmp_path),),
    )
    app = create_app(settings, clock=clock)
    startup(app.state.issuer)
    with serve(app, sock):
        yield Live(base, app.state.issuer, provider)
    app.state.issuer.engine.dispose()


def race(count: int, attempt: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """``count`` requests released together from as many threads."""
    barrier = threading.Barrier(count)
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    with httpx.Client(timeout=60, limits=limits) as client:

        def run(_: int) -> httpx.Response:
            barrier.wait()
            return attempt(client)

        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(run, range(count)))


def outcome(responses: list[httpx.Response]) -> tuple[int, set[str]]:
    winners = sum(1 for r in responses if r.status_code == 200)
    errors = {r.json().get("error", "") for r in responses if r.status_code != 200}
    return winners, errors


@pytest.mark.parametrize("tx_code", [False, True])
def test_parallel_redemptions_of_one_pre_authorized_code(live: Live, tx_code: bool) -> None:
    created = live.offer(tx_code=tx_code)
    with httpx.Client() as plain:
        offer = live.wallet(plain).resolve_offer(created.link)

    def redeem(client: httpx.Client) -> httpx.Response:
        wallet = live.wallet(client)  # its own DPoP key
        return wallet.token_request(wallet.pre_authorized_form(offer, created.tx_code))

    responses = race(PARALLEL_REDEMPTIONS, redeem)
    winners, errors = outcome(responses)
    assert winners == 1, [r.text for r in responses if r.status_code != 400][:3]
    # Losers are told the code is spent; a busy database may also say "try again".
    assert errors <= {"invalid_grant", "temporarily_unavailable"}, errors
    assert live.count(AccessToken) == 1
    with db.session(live.ctx.engine, write=False) as unit:
        row = unit.scalars(sa.select(CredentialOffer)).one()
        assert row.used_at is not None
        assert row.tx_code_attempts <= live.ctx.settings.tx_code_max_attempts


def test_parallel_wrong_tx_codes_never_exceed_the_limit(live: Live) -> None:
    """T021 under concurrency: the attempt counter is reserved atomically."""
    created = live.offer(tx_code=True)
    assert created.tx_code is not None
    with httpx.Client() as plain:
        offer = live.wallet(plain).resolve_offer(created.link)
    wrong = "x" * len(created.tx_code)

    def guess(client: httpx.Client) -> httpx.Response:
        wallet = live.wallet(client)
        return wallet.token_request(wallet.pre_authorized_form(offer, wrong))

    winners, errors = outcome(race(PARALLEL_REDEMPTIONS, guess))
    assert winners == 0 and errors <= {"invalid_grant", "temporarily_unavailable"}
    with db.session(live.ctx.engine, write=False) as unit:
        row = unit.scalars(sa.select(CredentialOffer)).one()
        assert row.tx_code_attempts == live.ctx.settings.tx_code_max_attempts
    with httpx.Client() as client:
        wallet = live.wallet(client)
        late = wallet.token_request(wallet.pre_authorized_form(offer, created.tx_code))
        assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


def test_parallel_credential_requests_with_one_proof(live: Live) -> None:
    """T037: 20 requests carrying the same proof (each with its own DPoP proof): one
    credential, one status entry; the others are refused."""
    created = live.offer()
    with httpx.Client() as client:
        wallet = live.wallet(client)
        token = wallet.pre_authorized_token(wallet.resolve_offer(created.link))
        c_nonce = wallet.nonce()
        proof = wallet.proof(jose.generate_key("ES256"), c_nonce)
    body = {
        "credential_configuration_id": "RegistrationCertificate_dc+sd-jwt",
        "proofs": {"jwt": [proof]},
    }
    entries_before = live.count(StatusEntry)

    def request(client: httpx.Client) -> httpx.Response:
        sender = live.wallet(client)
        sender.dpop_key = wallet.dpop_key  # the token's key, a fresh proof per request
        return sender.credential_request(token, body)

    responses = race(PARALLEL_CREDENTIAL_REQUESTS, request)
    winners, errors = outcome(responses)
    assert winners == 1
    assert errors <= {"invalid_nonce", "invalid_proof", "temporarily_unavailable"}, errors
    assert live.count(Issuance) == 1
    assert live.count(StatusEntry) == entries_before + 1
    issued = next(r for r in responses if r.status_code == 200).json()
    assert oid4vci.parse_credential_response(issued).credentials
