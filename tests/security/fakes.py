"""Loopback stand-ins for the other side of a protocol, and raw token crafting.

- :class:`Loopback`: a small HTTP server on ``127.0.0.1:0`` answering routes the test sets
  and recording every request it receives (what a service sent, and that it sent nothing).
- :class:`FakeVerifier`: a relying party whose certificate chains to the verifier's
  development CA (so the wallet authenticates it): serves crafted request objects and
  records what arrives at its ``response_uri``.
- :class:`FakeIssuer`: a credential issuer whose certificate chains to the AF development CA,
  with the real AF metadata rewritten to its own URL: mints crafted credentials.
- :func:`raw_jws`: a compact JWS from raw header/payload text (duplicate members, ``alg``
  values our core refuses to produce, HMAC with a public key as the secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
from cryptography.hazmat.primitives import serialization

from intyg import jose, oid4vci, oid4vp, sdjwt_vc, strict_json, x509
from intyg.schemas import REGISTRATION_CERTIFICATE_VCT
from intyg.sdjwt import SD

from .live import Live


@dataclass
class Seen:
    """One request a :class:`Loopback` received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Seen], Reply]


class Loopback:
    """``server.routes[path] = callable(seen) -> Reply``; ``server.seen`` lists requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parts.query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                owner.seen.append(seen)
                route = owner.routes.get(parts.path)
                reply = route(seen) if route else Reply(404, b'{"error":"not_found"}')
                raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(raw)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def static(body: Any, status: int = 200, content_type: str = "application/json") -> Route:
    raw = body if isinstance(body, (bytes, str)) else strict_json.dumps(body)
    return lambda _: Reply(status, raw, content_type)


# -- raw tokens ----------------------------------------------------------------------------


def b64(value: Any) -> str:
    """base64url of raw text/bytes, or of a JSON value."""
    if isinstance(value, bytes):
        return jose.b64url_encode(value)
    text = value if isinstance(value, str) else strict_json.dumps(value)
    return jose.b64url_encode(text.encode("utf-8"))


def raw_jws(
    header: Any, payload: Any, key: jose.Key | None = None, *, hmac_secret: bytes | None = None
) -> str:
    """A compact JWS over raw segments: signed by ``key``, HMAC-SHA256 with ``hmac_secret``,
    or with an empty signature."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    if hmac_secret is not None:
        signature = hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest()
    elif key is not None:
        signature = key.sign(signing_input.encode())
    else:
        signature = b""
    return f"{signing_input}.{jose.b64url_encode(signature)}"


def public_key_secrets(key: jose.Key) -> dict[str, bytes]:
    """The forms of a public key an algorithm-confusion attack uses as the HMAC secret
    (PEM, DER, JWK, OpenSSH: CVE-2022-29217, CVE-2024-33663)."""
    public = key.public_key
    return {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": strict_json.dumps(key.public_jwk()).encode(),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }


def flip_signature_bit(token: str) -> str:
    head, payload, signature = token.split(".")
    raw = bytearray(jose.b64url_decode(signature))
    raw[5] ^= 0x01
    return f"{head}.{payload}.{jose.b64url_encode(bytes(raw))}"


# -- a relying party whose certificate the wallet trusts ------------------------------------


class FakeVerifier:
    """Request objects signed with a leaf under the verifier's development CA (which the
    wallet trusts: ``VERIFIER_TRUST_ANCHORS``), served at ``/request/<name>``; answers
    at ``/response`` are recorded and get ``response_reply``."""

    def __init__(self, live: Live, server: Loopback) -> None:
        self.server = server
        self.ca_key, ca_pem = live.sealed_key(
            "verifier", "signing_keys", "dev_ca", "verifier_signing_key"
        )
        self.ca = x509.cert_from_pem(ca_pem)
        self.key = jose.generate_key("ES256")
        self.leaf = x509.make_leaf(
            self.ca_key,
            self.ca,
            self.key,
            common_name="Falska Arbetsgivaren AB",
            organization="Falska Arbetsgivaren AB",
            country="SE",
            san_dns=["fake.test"],
        )
        self.client_id = oid4vp.client_id_x509_hash(self.leaf)
        self.response_reply: Reply = Reply(200, b"{}")
        server.routes["/response"] = lambda seen: self.response_reply

    @property
    def received(self) -> list[Seen]:
        return self.server.to("/response")

    def claims(self, query: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
        claims = oid4vp.authorization_request(
            client_id=self.client_id,
            response_uri=f"{self.server.base}/response",
            dcql_query=dict(query),
            response_mode="direct_post",
        )
        claims["iat"] = int(time.time())
        claims["exp"] = claims["iat"] + 600
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def header(self, **changes: Any) -> dict[str, Any]:
        header = {"typ": oid4vp.REQUEST_OBJECT_TYP, "x5c": x509.x5c_from_certs([self.leaf])}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    def publish(self, name: str, token: str, *, client_id: str | None = None, **link: str) -> str:
        """Serve ``token`` at ``/request/<name>``; -> the wallet's same-device URL query."""
        self.server.routes[f"/request/{name}"] = static(
            token, content_type="application/oauth-authz-req+jwt"
        )
        params = {
            "client_id": client_id or self.client_id,
            "request_uri": f"{self.server.base}/request/{name}",
            **link,
        }
        return urlencode(params, quote_via=quote)

    def signed(self, claims: Mapping[str, Any], key: jose.Key | None = None, **header: Any) -> str:
        return jose.encode_jws(dict(claims), key or self.key, self.header(**header))


# -- a credential issuer whose certificate the wallet trusts --------------------------------


class FakeIssuer:
    """The real AF metadata, rewritten to this server's URL; a leaf under the AF development
    CA naming this URL (so the wallet trusts the credentials it mints). ``mint(holder_jwks)``
    decides what the credential endpoint returns; notifications are recorded."""

    def __init__(self, live: Live, server: Loopback) -> None:
        self.server = server
        self.base = server.base
        af = live.url("issuer-af")
        ca_key, ca_pem = live.sealed_key("issuer-af", "signing_keys", "dev_ca", "signing_key")
        self.key = jose.generate_key("ES256")
        leaf = x509.make_leaf(
            ca_key,
            x509.cert_from_pem(ca_pem),
            self.key,
            common_name="Falsk utfärdare",
            organization="Falsk utfärdare",
            country="SE",
            san_uri=[self.base],
        )
        self.x5c = x509.x5c_from_certs([leaf])
        metadata = httpx.get(oid4vci.well_known_url(af)).json()
        as_metadata = httpx.get(
            oid4vci.well_known_url(af, oid4vci.WELL_KNOWN_AUTHORIZATION_SERVER)
        ).json()
        self.metadata = json.loads(json.dumps(metadata).replace(af, self.base))
        self.as_metadata = json.loads(json.dumps(as_metadata).replace(af, self.base))
        self.as_metadata.pop("dpop_signing_alg_values_supported", None)
        self.configuration_id = next(
            cid
            for cid, c in self.metadata["credential_configurations_supported"].items()
            if c.get("format") == "dc+sd-jwt"
        )
        self.mint: Callable[[list[dict[str, Any]]], list[str]] = self.good
        routes = server.routes
        routes["/.well-known/openid-credential-issuer"] = lambda _: Reply(
            200, strict_json.dumps(self.metadata)
        )
        routes["/.well-known/oauth-authorization-server"] = lambda _: Reply(
            200, strict_json.dumps(self.as_metadata)
        )
        routes["/token"] = static(
            {
                "access_token": "fake-access-token-0123456789",
                "token_type": "Bearer",
                "expires_in": 300,
            }
        )
        routes["/nonce"] = static({"c_nonce": "fake-c-nonce-0123456789abcdef"})
        routes["/credential"] = self._credential
        routes["/notification"] = lambda _: Reply(204, b"")

    def offer_link(self) -> str:
        offer = oid4vci.credential_offer(
            self.base, [self.configuration_id], pre_authorized_code="fake-pre-authorized-code"
        )
        return oid4vci.offer_link(offer)

    def _credential(self, seen: Seen) -> Reply:
        body = json.loads(seen.body)
        holder_jwks = [jose.parse_jws(p).header["jwk"] for p in body["proofs"]["jwt"]]
        credentials = [{"credential": c} for c in self.mint(holder_jwks)]
        return Reply(
            200,
            strict_json.dumps({"credentials": credentials, "notification_id": "fake-notification"}),
        )

    def payload(self, **changes: Any) -> dict[Any, Any]:
        now = int(time.time())
        payload: dict[Any, Any] = {
            "iss": self.base,
            "vct": REGISTRATION_CERTIFICATE_VCT,
            "iat": now - 60,
            "exp": now + 30 * 86400,
            SD("given_name"): "Mallory",
            SD("family_name"): "Falsk",
            SD("personal_identity_number"): "200306062381",
            SD("registered"): True,
            SD("registered_since"): "2026-01-12",
            SD("registration_category"): {"code": "11", "label": "Öppet arbetslös"},
        }
        payload.update(changes)
        return {k: v for k, v in payload.items() if v is not None}

    def issue(
        self,
        holder_jwk: Mapping[str, Any],
        payload: Mapping[Any, Any] | None = None,
        *,
        key: jose.Key | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> str:
        return sdjwt_vc.issue_vc(
            dict(payload or self.payload()),
            key or self.key,
            holder_jwk=dict(holder_jwk),
            header=dict(header) if header is not None else {"x5c": self.x5c},
        )

    def good(self, holder_jwks: list[dict[str, Any]]) -> list[str]:
        return [self.issue(jwk) for jwk in holder_jwks]

    @property
    def notifications(self) -> list[dict[str, Any]]:
        return [json.loads(seen.body) for seen in self.server.to("/notification")]
