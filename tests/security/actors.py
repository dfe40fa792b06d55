"""The honest parties an attack starts from, over HTTP against the live services:

- :class:`Issuing`: the AF back office making offers for Anna, and a third-party wallet
  (:mod:`tests.issuer.wallet_sim`, HTTP + core helpers only) redeeming them with its own
  holder keys, so a test holds a real credential and the key it is bound to;
- :class:`Asking`: the employer creating a verifier transaction and a holder answering it
  (:mod:`tests.verifier.helpers` for the request object and the ``direct_post.jwt`` form);
- :class:`WalletPerson`: a person's browser on the wallet's pages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from intyg import jose, oid4vci, sdjwt, strict_json
from intyg.demo import Agency, forms_of
from tests.issuer.wallet_sim import Issued, Wallet, WalletError
from tests.verifier.helpers import Request, read_request_object, response_form

from .live import TIMEOUT, Live, csrf

ANNA = {
    "personal_identity_number": "198112189884",
    "given_name": "Anna",
    "family_name": "Andersson",
}
ERIK = {
    "personal_identity_number": "198503152376",
    "given_name": "Erik",
    "family_name": "Johansson",
}
REGISTRATION_CLAIMS = (["registered"], ["registered_since"], ["registration_category"])


@dataclass
class Issuing:
    """Offers for Anna's AF registration and a wallet simulator to redeem them."""

    live: Live
    agency: str
    person: str
    record_id: int
    sd_jwt_id: str
    vcdm_id: str

    @classmethod
    def start(
        cls, live: Live, agency: str = "issuer-af", person: Mapping[str, str] = ANNA
    ) -> Issuing:
        back_office = live.agency(agency)
        if agency == "issuer-af":
            record = back_office.record(
                "/registrations",
                {
                    **person,
                    "registered": True,
                    "registered_since": "2025-09-01",
                    "registration_category": {"code": "11", "label": "Öppet arbetslös"},
                },
                method="PUT",
            )
        else:
            record = back_office.record(
                "/awards",
                {
                    **person,
                    "qualification_id": "3f0c8b2e-6d1a-4c57-9e2b-8a4d7c1e5f90",
                    "awarded_on": "2025-06-13",
                },
            )
        metadata = httpx.get(oid4vci.well_known_url(live.url(agency)), timeout=TIMEOUT).json()
        ids = metadata["credential_configurations_supported"]
        sd_jwt = next(k for k, v in ids.items() if v["format"] == "dc+sd-jwt")
        vcdm = next(k for k, v in ids.items() if v["format"] == "jwt_vc_json")
        return cls(live, agency, record["person"], record["record_id"], sd_jwt, vcdm)

    @property
    def back_office(self) -> Agency:
        return self.live.agency(self.agency)

    @property
    def url(self) -> str:
        return self.live.url(self.agency)

    def offer(self, *, tx_code: bool = False, configuration_ids: Sequence[str] | None = None):
        body: dict[str, Any] = {
            "person": self.person,
            "record_id": self.record_id,
            "tx_code": tx_code,
        }
        if configuration_ids is not None:
            body["configuration_ids"] = list(configuration_ids)
        return self.back_office.record("/offers", body)

    def wallet(self, **kwargs: Any) -> Wallet:
        return Wallet(httpx.Client(timeout=TIMEOUT), self.url, **kwargs)

    def token(
        self, wallet: Wallet | None = None, configuration_ids: Sequence[str] | None = None
    ) -> tuple[Wallet, oid4vci.TokenResponse]:
        """A fresh DPoP-bound access token (anonymous pre-authorized flow)."""
        wallet = wallet or self.wallet()
        created = self.offer(configuration_ids=configuration_ids or [self.sd_jwt_id])
        return wallet, wallet.pre_authorized_token(wallet.resolve_offer(created["link"]))

    def credential(self, configuration_id: str | None = None, count: int = 1) -> Issued:
        """Real credentials from the live issuer, bound to fresh holder keys (a new flow
        after a retriable 503, which SQLite contention may answer under parallel load)."""
        configuration_id = configuration_id or self.sd_jwt_id
        for attempt in range(3):
            try:
                wallet, token = self.token(configuration_ids=[configuration_id])
                return wallet.request_credentials(
                    token, configuration_id=configuration_id, count=count
                )
            except WalletError as exc:
                if " 503 " not in str(exc) or attempt == 2:
                    raise
                time.sleep(1)
        raise AssertionError("unreachable")


def proof_body(configuration_id: str, proofs: Sequence[str]) -> dict[str, Any]:
    return {"credential_configuration_id": configuration_id, "proofs": {"jwt": list(proofs)}}


# -- the verifier side -----------------------------------------------------------------------


@dataclass
class Asking:
    """One verifier transaction as the employer made it and a wallet fetched it."""

    live: Live
    created: dict[str, Any]
    request: Request

    @classmethod
    def start(cls, live: Live, template: str = "registration_certificate", **body: Any) -> Asking:
        employer = live.employer()
        response = employer.client.post(
            live.url("verifier") + "/api/v1/transactions", json={"template": template, **body}
        )
        assert response.status_code == 201, response.text
        created = response.json()
        fetched = httpx.get(created["request_uri"], timeout=TIMEOUT)
        assert fetched.status_code == 200, fetched.text
        return cls(live, created, read_request_object(fetched.text))

    @classmethod
    def custom(cls, live: Live, dcql_query: Mapping[str, Any]) -> Asking:
        return cls.start(live, template=None, dcql_query=dict(dcql_query), purpose="test")  # type: ignore[arg-type]

    @property
    def id(self) -> str:
        return str(self.created["transaction_id"])

    def present(
        self,
        credential: str,
        holder: jose.Key,
        claims: Sequence[Sequence[Any]] = REGISTRATION_CLAIMS,
        **kb: Any,
    ) -> str:
        """An honest SD-JWT presentation for this transaction (KB-JWT ``aud``/``nonce``)."""
        return sdjwt.present(
            credential,
            [tuple(c) for c in claims],
            holder_key=holder,
            aud=kb.pop("aud", self.request.client_id),
            nonce=kb.pop("nonce", self.request.nonce),
            **kb,
        )

    def post(self, vp_token: Any, query_id: str = "registration", **kwargs: Any) -> httpx.Response:
        token = vp_token if isinstance(vp_token, dict) else {query_id: [vp_token]}
        return self.post_form(response_form(self.request, token, **kwargs))

    def post_form(self, form: Mapping[str, str]) -> httpx.Response:
        return httpx.post(self.live.url("verifier") + "/response", data=dict(form), timeout=TIMEOUT)

    def view(self) -> dict[str, Any]:
        response = self.live.employer().client.get(
            f"{self.live.url('verifier')}/api/v1/transactions/{self.id}"
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def stored(self) -> dict[str, Any]:
        """What the verifier's database holds for this transaction."""
        live, tid = self.live, self.id

        def count(table: str) -> int:
            return int(
                live.scalar(
                    "verifier", f"SELECT count(*) FROM {table} WHERE transaction_id = :t", t=tid
                )
            )

        status = live.scalar("verifier", "SELECT status FROM transactions WHERE id = :t", t=tid)
        return {
            "results": count("results"),
            "claims": count("disclosed_claims"),
            "rejections": count("rejections"),
            "status": status,
        }


def failed_checks(response: httpx.Response) -> list[str]:
    """The check names of the verifier's 400 (``...; failed checks: a, b``)."""
    description = response.json()["error_description"]
    return description.split("failed checks: ", 1)[1].split(", ")


# -- a person on the wallet's pages ------------------------------------------------------------


class WalletPerson:
    """A logged-in browser on the wallet (cookies, no automatic redirects)."""

    def __init__(self, live: Live, person: str) -> None:
        self.live = live
        self.credential_id = ""
        self.base = live.url("wallet")
        self.browser = live.log_in(person)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.browser.get(self.base + path, **kwargs)

    def post(self, path: str, data: Mapping[str, str], **kwargs: Any) -> httpx.Response:
        return self.browser.post(self.base + path, data=dict(data), **kwargs)

    def csrf(self) -> str:
        return csrf(self.get("/add").text)

    def receive(self, link: str, tx_code: str | None = None) -> str:
        """Accept an offer link; -> the new credential's public id."""
        offer = self.post("/add", {"csrf_token": self.csrf(), "link": link})
        assert offer.status_code == 303, offer.text
        page = self.get(offer.headers["location"])
        form = next(f for f in forms_of(page.text) if f.action.endswith("/accept"))
        if tx_code is not None:
            form.fields["tx_code"] = tx_code
        stored = self.post(form.action, form.fields)
        assert stored.status_code == 303, stored.text
        found = re.search(r"/credentials/([^/?\"]+)", stored.headers["location"])
        return found[1] if found else ""

    def open_request(self, query: str) -> httpx.Response:
        return self.get("/authorize?" + query)

    def approve(self, session_location: str) -> httpx.Response:
        screen = self.get(session_location)
        assert screen.status_code == 200, screen.text
        form = next(f for f in forms_of(screen.text) if f.action.endswith("/approve"))
        return self.post(form.action, form.fields)


def query_of(link: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


def json_text(value: Any) -> str:
    return strict_json.dumps(value)
