"""Test helpers for the verifier: a PKI for two issuers and a rogue one, credentials issued
with intyg's issuer-side core, presentations made by the IETF SD-JWT reference
implementation (``sd-jwt``, an independent holder), a wallet that answers request objects,
and a status list server on a real loopback socket."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jwcrypto.jwk import JWK
from sd_jwt.holder import SDJWTHolder

from intyg import jose, jwe, oid4vp, sdjwt, sdjwt_vc, status, strict_json, x509
from intyg.schemas import QUALIFICATION_ATTESTATION_VCT, REGISTRATION_CERTIFICATE_VCT
from intyg.sdjwt import SD

AF_ISS = "https://af.issuer.test"
MYH_ISS = "https://myh.issuer.test"
ROGUE_ISS = "https://rogue.issuer.test"


@dataclass
class Signer:
    """An issuer key with its leaf certificate chain (x5c) and CA."""

    iss: str
    ca_pem: str
    key: jose.Key
    x5c: list[str]

    def header(self) -> dict[str, Any]:
        return {"x5c": list(self.x5c), "kid": self.key.kid}


def make_signer(iss: str, name: str) -> Signer:
    ca_key, ca_cert = x509.make_ca(f"{name} test CA", organization=name, country="SE")
    key = jose.generate_key("ES256")
    host = iss.split("//", 1)[1]
    leaf = x509.make_leaf(
        ca_key, ca_cert, key, common_name=name, san_uri=[iss], san_dns=[host], valid_days=30
    )
    return Signer(iss, x509.cert_to_pem(ca_cert), key, x509.x5c_from_certs([leaf]))


@dataclass
class Pki:
    af: Signer = field(default_factory=lambda: make_signer(AF_ISS, "Arbetsförmedlingen"))
    myh: Signer = field(default_factory=lambda: make_signer(MYH_ISS, "MYH"))
    rogue: Signer = field(default_factory=lambda: make_signer(ROGUE_ISS, "Rogue"))

    def trust_list(self) -> dict[str, Any]:
        return {
            "issuers": [
                {
                    "id": "af",
                    "name": {"sv": "Arbetsförmedlingen", "en": "Swedish PES"},
                    "org_number": "202100-2114",
                    "vct": [REGISTRATION_CERTIFICATE_VCT],
                    "trust_anchors_pem": [self.af.ca_pem],
                },
                {
                    "id": "myh",
                    "name": "MYH",
                    "org_number": "202100-6230",
                    "vct": [QUALIFICATION_ATTESTATION_VCT],
                    "trust_anchors_pem": [self.myh.ca_pem],
                },
            ]
        }


PERSON = {
    "personal_identity_number": "200306062381",
    "given_name": "Elin",
    "family_name": "Lindqvist",
    "birthdate": "2003-06-06",
}


def registration_payload(status_ref: Mapping[str, Any] | None, **overrides: Any) -> dict:
    now = int(time.time())
    payload: dict[Any, Any] = {
        "iss": AF_ISS,
        "vct": REGISTRATION_CERTIFICATE_VCT,
        "iat": now - 60,
        "exp": now + 30 * 86400,
        **{SD(k): v for k, v in PERSON.items()},
        SD("registered"): True,
        SD("registered_since"): "2026-01-12",
        SD("registration_category"): {"code": "11", "label": "Öppet arbetslös"},
        SD("issued_at"): "2026-11-01",
    }
    if status_ref is not None:
        payload["status"] = {"status_list": dict(status_ref)}
    payload.update(overrides)
    return payload


def qualification_payload(
    status_ref: Mapping[str, Any] | None, eqf_level: int = 5, **overrides: Any
) -> dict:
    now = int(time.time())
    payload: dict[Any, Any] = {
        "iss": MYH_ISS,
        "vct": QUALIFICATION_ATTESTATION_VCT,
        "iat": now - 60,
        "exp": now + 365 * 86400,
        **{SD(k): v for k, v in PERSON.items()},
        SD("title"): {"sv": "Yrkeshögskoleexamen Mjukvaruutvecklare"},
        SD("seqf_level"): eqf_level,
        SD("eqf_level"): eqf_level,
        SD("awarding_body"): {
            "name": "Exempelstadens Yrkeshögskola AB",
            "org_number": "556677-8899",
        },
        SD("awarded_on"): "2025-06-05",
    }
    if status_ref is not None:
        payload["status"] = {"status_list": dict(status_ref)}
    payload.update(overrides)
    return payload


def issue(payload: Mapping[Any, Any], signer: Signer, holder: jose.Key) -> str:
    return sdjwt_vc.issue_vc(
        payload, signer.key, holder_jwk=holder.public_jwk(), header=signer.header()
    )


def reference_present(
    issued: str, disclose: Mapping[str, Any], *, nonce: str, aud: str, holder: jose.Key
) -> str:
    """A presentation with KB-JWT made by the reference implementation's SDJWTHolder."""
    holder_impl = SDJWTHolder(issued)
    holder_impl.create_presentation(
        dict(disclose), nonce=nonce, aud=aud, holder_key=JWK(**holder.private_jwk())
    )
    return holder_impl.sd_jwt_presentation


REGISTRATION_DISCLOSE = {
    "registered": True,
    "registered_since": True,
    "registration_category": True,
}
QUALIFICATION_DISCLOSE = {"title": True, "eqf_level": True, "awarding_body": True}


def rebind(
    presentation: str, holder: jose.Key, *, aud: str, nonce: str, iat: int | None = None
) -> str:
    """Replace the KB-JWT (e.g. after editing disclosures), signed by ``holder``."""
    prefix = presentation[: presentation.rindex("~") + 1]
    return prefix + sdjwt.key_binding_jwt(prefix, holder, aud=aud, nonce=nonce, iat=iat)


# -- the wallet side --------------------------------------------------------------------------


@dataclass
class Request:
    claims: dict[str, Any]
    header: dict[str, Any]

    @property
    def nonce(self) -> str:
        return self.claims["nonce"]

    @property
    def state(self) -> str:
        return self.claims["state"]

    @property
    def client_id(self) -> str:
        return self.claims["client_id"]


def read_request_object(jwt: str) -> Request:
    """Checks a wallet makes on our request object: typ, x5c signature, x509_hash client id."""
    jws = jose.parse_jws(jwt)
    assert jws.header["typ"] == oid4vp.REQUEST_OBJECT_TYP
    leaf = x509.certs_from_x5c(jws.header["x5c"])[0]
    jose.verify_signature(jws, jose.key_from_public_key(leaf.public_key()))
    claims = jws.claims()
    if claims["client_id"].startswith("x509_hash:"):
        assert claims["client_id"] == oid4vp.client_id_x509_hash(leaf)
    return Request(claims, jws.header)


def response_form(
    request: Request, vp_token: Any, *, state: str | None = None, enc: str = "A256GCM"
) -> dict[str, str]:
    """The ``direct_post.jwt`` form (or plain ``direct_post`` for such a request)."""
    params: dict[str, Any] = {"vp_token": vp_token, "state": state or request.state}
    if request.claims["response_mode"] == oid4vp.DIRECT_POST:
        return {k: v if isinstance(v, str) else strict_json.dumps(v) for k, v in params.items()}
    jwk = request.claims["client_metadata"]["jwks"]["keys"][0]
    return {"response": jwe.encrypt(params, jwk, enc=enc)}


# -- a status list server on loopback ---------------------------------------------------------


class StatusServer:
    """Serves status list tokens at ``http://127.0.0.1:<port>/statuslists/<n>``."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.hits = 0
        documents = self.documents
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                body = documents.get(self.path)
                if body is None:
                    self.send_response(503 if self.path.endswith("/down") else 404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", status.STATUS_LIST_JWT_MEDIA_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base}/statuslists/{name}"

    def publish(self, name: str, lst: status.StatusList, signer: Signer, *, ttl: int = 60) -> str:
        uri = self.url(name)
        token = status.sign_status_list_token(
            lst, uri=uri, key=signer.key, now=int(time.time()), ttl=ttl, header=signer.header()
        )
        self.documents[f"/statuslists/{name}"] = token.encode("ascii")
        return uri

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
