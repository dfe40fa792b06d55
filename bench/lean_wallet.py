"""A lean wallet for ``bench/issuer.py``: the pre-authorized flow (token -> nonce ->
credential) over raw HTTP/1.1 keep-alive connections (an asyncio protocol parsing with
httptools), so the load generator costs a fraction of the httpx wallet and the figure is the
issuer's.

It speaks what ``tests/issuer/wallet_sim.py`` speaks (DPoP on ``/token`` and
``/credential``, one ``jwt`` proof per credential with a fresh holder key) and builds every
message with intyg's core (:mod:`intyg.dpop`, :mod:`intyg.oid4vci`). What it leaves out is
generality: one request at a time per connection, ``Content-Length`` bodies, no TLS, no
redirects. What can be made before the timed part is made there (:class:`Ticket`: the
holder key and the token request with its DPoP proof); the ``/credential`` DPoP proof
(``ath``) and the key proof (``c_nonce``) depend on answers and are signed in the loop.

Honesty: every credential is checked as it arrives (:func:`check_structure`: SD-JWT shape,
``typ``, ``iss``, ``vct``, ``cnf.jwk`` = the holder key just proven, a status entry), and
:func:`verify_sample` verifies a sample fully with intyg's core after the timed part
(``x5c`` to the issuer's CA, signature, disclosures, then a key-binding presentation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import httptools

from intyg import dpop, jose, oid4vci, sdjwt, sdjwt_vc, strict_json, x509

__all__ = [
    "HttpConnection",
    "LeanWallet",
    "Ticket",
    "WalletError",
    "check_structure",
    "make_tickets",
    "verify_sample",
]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class WalletError(AssertionError):
    """The issuer answered something a wallet would refuse."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._body: list[bytes] = []

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        _, connection = await asyncio.get_running_loop().create_connection(cls, host, port)
        return connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        response = Response(self._parser.get_status_code(), b"".join(self._body))
        self._body = []
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(response)

    async def request(self, message: bytes) -> Response:
        """Send a complete request (head and body) and wait for the whole response."""
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("connection is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(message)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def post(host: str, path: str, headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    """An HTTP/1.1 POST request, head and body."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("ascii") + body


def _json(response: Response, what: str) -> Any:
    if response.status != 200:
        raise WalletError(f"{what}: {response.status} {response.body[:300]!r}")
    return strict_json.loads(response.body)


@dataclass(frozen=True)
class Ticket:
    """One issuance prepared before timing: the holder key, the DPoP key and the token
    request (pre-authorized code and DPoP proof, RFC 9449 §4.2) as bytes."""

    holder: jose.Key
    dpop_key: jose.Key
    token_request: bytes


def make_tickets(issuer: str, codes: Sequence[str], *, use_dpop: bool = True) -> list[Ticket]:
    """A ticket per pre-authorized code (each issuance has its own DPoP and holder key,
    as separate phones would). Without ``use_dpop`` the token is a Bearer token."""
    host = urlsplit(issuer).netloc
    tickets = []
    for code in codes:
        key = jose.generate_key("ES256")
        form = urlencode(
            {"grant_type": oid4vci.PRE_AUTHORIZED_CODE_GRANT, "pre-authorized_code": code}
        )
        headers = [("Content-Type", FORM)]
        if use_dpop:
            headers.append(("DPoP", dpop.make_dpop_proof(key, htm="POST", htu=issuer + "/token")))
        request = post(host, "/token", headers, form.encode())
        tickets.append(Ticket(jose.generate_key("ES256"), key, request))
    return tickets


class LeanWallet:
    """Runs tickets over one connection: token -> nonce -> credential."""

    def __init__(self, http: HttpConnection, issuer: str, configuration_id: str, vct: str):
        self.http = http
        self.issuer = issuer
        self.configuration_id = configuration_id
        self.vct = vct
        self._host = urlsplit(issuer).netloc
        self._credential_url = issuer + "/credential"
        self._nonce_request = post(self._host, "/nonce", [], b"")

    async def issue(self, ticket: Ticket) -> str:
        """One credential for ``ticket``, checked structurally (:func:`check_structure`)."""
        token = oid4vci.parse_token_response(
            _json(await self.http.request(ticket.token_request), "/token")
        )
        c_nonce = oid4vci.parse_nonce_response(
            _json(await self.http.request(self._nonce_request), "/nonce")
        )
        proof = oid4vci.make_jwt_proof(ticket.holder, audience=self.issuer, nonce=c_nonce)
        body = strict_json.dumps(
            {"credential_configuration_id": self.configuration_id, "proofs": {"jwt": [proof]}}
        ).encode()
        scheme = "DPoP" if token.token_type == "DPoP" else "Bearer"
        headers = [("Content-Type", JSON), ("Authorization", f"{scheme} {token.access_token}")]
        if scheme == "DPoP":
            headers.append(
                (
                    "DPoP",
                    dpop.make_dpop_proof(
                        ticket.dpop_key,
                        htm="POST",
                        htu=self._credential_url,
                        access_token=token.access_token,
                    ),
                )
            )
        response = await self.http.request(post(self._host, "/credential", headers, body))
        parsed = oid4vci.parse_credential_response(_json(response, "/credential"))
        if len(parsed.credentials) != 1 or not isinstance(parsed.credentials[0], str):
            raise WalletError("/credential: expected one credential for one proof")
        credential = parsed.credentials[0]
        check_structure(credential, ticket.holder, self.issuer, self.vct)
        return credential


def check_structure(credential: str, holder: jose.Key, issuer: str, vct: str) -> None:
    """The checks a wallet makes before storing an SD-JWT VC, short of the signature:
    ``<JWT>~<disclosures>~`` with ``typ`` ``dc+sd-jwt``, ``iss``, ``vct``, ``cnf.jwk`` equal
    to the key the proof was made with, and a Token Status List entry."""
    issuer_jwt, separator, rest = credential.partition(sdjwt.SEPARATOR)
    if not separator or not rest.endswith(sdjwt.SEPARATOR):
        raise WalletError("credential is not an SD-JWT without key binding")
    jws = jose.parse_jws(issuer_jwt)
    if jose.normalise_typ(jws.header.get("typ")) != sdjwt_vc.SD_JWT_VC_TYP:
        raise WalletError("credential typ is not dc+sd-jwt")
    claims = jws.claims()
    cnf = claims.get("cnf")
    if claims.get("iss") != issuer or claims.get("vct") != vct:
        raise WalletError("credential iss or vct is not the expected one")
    if not isinstance(cnf, dict) or jose.jwk_thumbprint(cnf.get("jwk", {})) != holder.thumbprint():
        raise WalletError("credential is not bound to the holder key")
    if "status_list" not in (claims.get("status") or {}):
        raise WalletError("credential has no status entry")


def verify_sample(issued: Sequence[tuple[str, jose.Key]], anchor_pem: str, issuer: str) -> int:
    """Full verification with intyg's core of ``issued`` (credential, holder key): ``x5c``
    to the issuer's CA, signature, disclosures and claims, then a presentation with key
    binding by the holder key. Returns how many passed; raises on the first failure."""
    anchors = x509.certs_from_pem(anchor_pem.encode())
    now = int(time.time())
    resolver = sdjwt_vc.X5CKeyResolver(
        lambda chain, header: x509.validate_x5c(header["x5c"], anchors, now=now).key
    )
    for credential, holder in issued:
        plain = sdjwt_vc.verify_vc(credential, resolver, require_key_binding=False, now=now)
        if plain.issuer != issuer:
            raise WalletError("verified credential names another issuer")
        presentation = sdjwt_vc.present_vc(
            credential,
            sdjwt_vc.disclosable_claims(credential),
            holder_key=holder,
            aud="x509_san_dns:verifier.example",
            nonce="bench-nonce",
        )
        sdjwt_vc.verify_vc(
            presentation,
            resolver,
            audience="x509_san_dns:verifier.example",
            nonce="bench-nonce",
            now=now,
        )
    return len(issued)
