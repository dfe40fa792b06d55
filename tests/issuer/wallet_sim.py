"""A third-party wallet for the issuer tests and the bench: it speaks only HTTP and uses only
intyg's core message helpers (``intyg.oid4vci``, ``intyg.dpop``, ``intyg.client_attestation``,
``intyg.x509``), never the issuer's modules.

- :class:`WalletProvider`: a wallet provider with its own CA; it signs wallet attestations
  (OAuth Attestation-Based Client Authentication, HAIP "Wallet Attestation") and key
  attestations (OpenID4VCI Appendix D). The issuer trusts its CA through settings.
- :class:`Wallet`: one wallet instance (DPoP key = attested instance key, holder keys, PKCE),
  over any ``httpx.Client`` (a FastAPI ``TestClient`` or a real socket).
- :class:`AsyncWallet`: the pre-authorized flow over ``httpx.AsyncClient`` for the bench.

Each step returns the raw ``httpx.Response`` where tests want to look at refusals, and
parsed values on the happy path (``*_ok`` helpers raise :class:`WalletError`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from intyg import client_attestation, dpop, jose, oid4vci, strict_json, x509

CLIENT_ID = "https://wallet.example/sim"
PROVIDER_NAME = "Simulated Wallet Provider"


class WalletError(AssertionError):
    """The issuer answered something the wallet did not expect."""


class WalletProvider:
    """A wallet provider: a root CA (the anchor the issuer is configured with) and a leaf
    attestation key; ``x5c`` carries the leaf only (HAIP: never the anchor)."""

    def __init__(self, name: str = PROVIDER_NAME) -> None:
        self.ca_key, self.ca_cert = x509.make_ca(f"{name} CA", organization=name, country="SE")
        self.key = jose.generate_key("ES256")
        self.cert = x509.make_leaf(
            self.ca_key,
            self.ca_cert,
            self.key,
            common_name=f"{name} attestation",
            organization=name,
            san_dns=["wallet.example"],
        )
        self.x5c = x509.x5c_from_certs([self.cert])

    def write_anchor(self, directory: Path) -> Path:
        path = directory / "wallet-provider.pem"
        path.write_text(x509.cert_to_pem(self.ca_cert))
        return path

    def wallet_attestation(self, instance_key: jose.Key, client_id: str = CLIENT_ID) -> str:
        now = int(time.time())
        return client_attestation.make_client_attestation(
            self.key,
            x5c=self.x5c,
            client_id=client_id,
            instance_key_jwk=instance_key.public_jwk(),
            iat=now,
            exp=now + 3600,
            wallet_name="intyg wallet simulator",
            wallet_link="https://wallet.example",
        )

    def key_attestation(self, keys: Sequence[jose.Key], nonce: str | None) -> str:
        now = int(time.time())
        return oid4vci.make_key_attestation(
            self.key,
            attested_keys=list(keys),
            iat=now,
            exp=now + 600,
            x5c=self.x5c,
            nonce=nonce,
            key_storage=["iso_18045_moderate"],
            user_authentication=["iso_18045_moderate"],
        )


@dataclass
class Issued:
    """A successful credential response with the holder keys it was bound to."""

    credentials: list[str]
    notification_id: str | None
    keys: list[jose.Key]
    response: httpx.Response


@dataclass
class AuthorizationStart:
    request_uri: str
    verifier: str
    state: str
    redirect_uri: str
    authorize_url: str


@dataclass
class Wallet:
    """One wallet instance talking to ``issuer`` over ``http``."""

    http: httpx.Client
    issuer: str
    provider: WalletProvider | None = None
    client_id: str = CLIENT_ID
    use_dpop: bool = True
    dpop_key: jose.Key = field(default_factory=lambda: jose.generate_key("ES256"))

    # -- helpers ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.issuer + path

    def dpop_headers(
        self, method: str, url: str, access_token: str | None = None, **overrides: Any
    ) -> dict[str, str]:
        if not self.use_dpop:
            return {}
        key = overrides.pop("key", self.dpop_key)
        htu = overrides.pop("htu", url)
        proof = dpop.make_dpop_proof(
            key, htm=method, htu=htu, access_token=access_token, **overrides
        )
        return {dpop.DPOP_HEADER: proof}

    def attestation_headers(self, *, pop: bool = True) -> dict[str, str]:
        """Wallet attestation + PoP; without ``pop`` the DPoP proof is the PoP (§5.2)."""
        if self.provider is None:
            return {}
        headers = {
            client_attestation.ATTESTATION_HEADER: self.provider.wallet_attestation(
                self.dpop_key, self.client_id
            )
        }
        if pop:
            headers[client_attestation.POP_HEADER] = client_attestation.make_client_attestation_pop(
                self.dpop_key, client_id=self.client_id, audience=self.issuer
            )
        return headers

    @staticmethod
    def ok(response: httpx.Response, status: int = 200) -> Any:
        if response.status_code != status:
            raise WalletError(f"{response.request.url}: {response.status_code} {response.text}")
        return strict_json.loads(response.content) if response.content else None

    # -- metadata and offers (§12.2, §4.1) -------------------------------------------------

    def metadata(self) -> oid4vci.IssuerMetadata:
        response = self.http.get(oid4vci.well_known_url(self.issuer))
        return oid4vci.check_issuer_metadata(
            self.ok(response), self.issuer, allow_http=self.issuer.startswith("http:"), haip=True
        )

    def as_metadata(self) -> dict[str, Any]:
        url = oid4vci.well_known_url(self.issuer, oid4vci.WELL_KNOWN_AUTHORIZATION_SERVER)
        return oid4vci.check_authorization_server_metadata(
            self.ok(self.http.get(url)), self.issuer, allow_http=self.issuer.startswith("http:")
        )

    def resolve_offer(self, link: str) -> oid4vci.CredentialOffer:
        allow_http = self.issuer.startswith("http:")
        found = oid4vci.parse_offer_link(link, allow_http=allow_http)
        if isinstance(found, str):
            response = self.http.get(found, headers={"Accept": "application/json"})
            found = self.ok(response)
        return oid4vci.parse_credential_offer(found, allow_http=allow_http)

    # -- token endpoint (§6) ---------------------------------------------------------------

    def token_request(
        self,
        form: Mapping[str, str],
        *,
        attest: bool = False,
        headers: Mapping[str, str] | None = None,
        dpop_overrides: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        url = self.url("/token")
        sent = {**self.dpop_headers("POST", url, **dict(dpop_overrides or {}))}
        if attest:
            sent.update(self.attestation_headers())
        sent.update(headers or {})
        return self.http.post(url, data=dict(form), headers=sent)

    def pre_authorized_form(
        self, offer: oid4vci.CredentialOffer, tx_code: str | None = None
    ) -> dict[str, str]:
        assert offer.pre_authorized_code is not None
        form = {
            "grant_type": oid4vci.PRE_AUTHORIZED_CODE_GRANT,
            "pre-authorized_code": offer.pre_authorized_code.pre_authorized_code,
        }
        if tx_code is not None:
            form["tx_code"] = tx_code
        return form

    def pre_authorized_token(
        self, offer: oid4vci.CredentialOffer, tx_code: str | None = None, *, attest: bool = False
    ) -> oid4vci.TokenResponse:
        response = self.token_request(self.pre_authorized_form(offer, tx_code), attest=attest)
        return oid4vci.parse_token_response(self.ok(response))

    # -- authorization code flow (§5, RFC 9126, RFC 7636) ----------------------------------

    def push_authorization(
        self,
        *,
        redirect_uri: str,
        scope: str | None = None,
        authorization_details: list[dict[str, Any]] | None = None,
        extra: Mapping[str, str] | None = None,
        attest: bool = True,
    ) -> tuple[httpx.Response, AuthorizationStart | None]:
        verifier = oid4vci.new_pkce_verifier()
        state = oid4vci.new_opaque_value(16)
        form = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "code_challenge": oid4vci.pkce_challenge(verifier),
            "code_challenge_method": "S256",
            "state": state,
        }
        if scope is not None:
            form["scope"] = scope
        if authorization_details is not None:
            form["authorization_details"] = strict_json.dumps(authorization_details)
        form.update(extra or {})
        url = self.url("/par")
        headers = self.dpop_headers("POST", url)
        if attest:
            headers.update(self.attestation_headers())
        response = self.http.post(url, data=form, headers=headers)
        if response.status_code != 201:
            return response, None
        request_uri = response.json()["request_uri"]
        query = httpx.QueryParams({"client_id": self.client_id, "request_uri": request_uri})
        start = AuthorizationStart(
            request_uri, verifier, state, redirect_uri, f"{self.url('/authorize')}?{query}"
        )
        return response, start

    @staticmethod
    def authorization_response(location: str) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def authorization_code_token(
        self,
        code: str,
        start: AuthorizationStart,
        *,
        attest: bool = True,
        overrides: Mapping[str, str | None] | None = None,
    ) -> httpx.Response:
        form = {
            "grant_type": oid4vci.AUTHORIZATION_CODE_GRANT,
            "code": code,
            "redirect_uri": start.redirect_uri,
            "code_verifier": start.verifier,
            "client_id": self.client_id,
        }
        for name, value in (overrides or {}).items():
            if value is None:
                form.pop(name, None)
            else:
                form[name] = value
        return self.token_request(form, attest=attest)

    # -- nonce, credential, notification (§7, §8, §11) -------------------------------------

    def nonce(self) -> str:
        return oid4vci.parse_nonce_response(self.ok(self.http.post(self.url("/nonce"))))

    def proof(
        self,
        key: jose.Key,
        nonce: str | None,
        *,
        client_id: str | None = None,
        key_attestation: str | None = None,
        **overrides: Any,
    ) -> str:
        return oid4vci.make_jwt_proof(
            key,
            audience=overrides.pop("audience", self.issuer),
            nonce=nonce,
            client_id=client_id,
            key_attestation=key_attestation,
            **overrides,
        )

    def auth_headers(self, token: oid4vci.TokenResponse | str, url: str) -> dict[str, str]:
        access_token = token if isinstance(token, str) else token.access_token
        token_type = "Bearer" if isinstance(token, str) else token.token_type
        headers = {"Authorization": f"{token_type} {access_token}"}
        if token_type == "DPoP":
            headers.update(self.dpop_headers("POST", url, access_token=access_token))
        return headers

    def credential_request(
        self,
        token: oid4vci.TokenResponse | str,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
    ) -> httpx.Response:
        url = self.url("/credential")
        sent = {**self.auth_headers(token, url), "Content-Type": "application/json"}
        sent.update(headers or {})
        content = raw if raw is not None else strict_json.dumps(body).encode()
        return self.http.post(url, content=content, headers=sent)

    def request_credentials(
        self,
        token: oid4vci.TokenResponse,
        *,
        configuration_id: str | None = None,
        credential_identifier: str | None = None,
        count: int = 1,
        client_id: str | None = None,
        attest_keys: bool = False,
    ) -> Issued:
        keys = [jose.generate_key("ES256") for _ in range(count)]
        c_nonce = self.nonce()
        attestation = None
        if attest_keys:
            assert self.provider is not None
            attestation = self.provider.key_attestation(keys, c_nonce)
        proofs = [
            self.proof(key, c_nonce, client_id=client_id, key_attestation=attestation)
            for key in keys
        ]
        body: dict[str, Any] = {"proofs": {"jwt": proofs}}
        if credential_identifier is not None:
            body["credential_identifier"] = credential_identifier
        else:
            body["credential_configuration_id"] = configuration_id
        response = self.credential_request(token, body)
        parsed = oid4vci.parse_credential_response(self.ok(response))
        return Issued([str(c) for c in parsed.credentials], parsed.notification_id, keys, response)

    def notify(
        self, token: oid4vci.TokenResponse, notification_id: str, event: str
    ) -> httpx.Response:
        url = self.url("/notification")
        return self.http.post(
            url,
            json=oid4vci.notification_request(notification_id, event),
            headers=self.auth_headers(token, url),
        )


class AsyncWallet:
    """The pre-authorized flow (token -> nonce -> credential) over ``httpx.AsyncClient``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        issuer: str,
        *,
        use_dpop: bool = True,
        holder_keys: Iterator[jose.Key] | None = None,
    ) -> None:
        self.http = http
        self.issuer = issuer
        self.use_dpop = use_dpop
        self.dpop_key = jose.generate_key("ES256")
        # A fresh holder key per credential; the bench hands in keys made before timing.
        self.holder_keys = holder_keys

    def _dpop(self, url: str, access_token: str | None = None) -> dict[str, str]:
        if not self.use_dpop:
            return {}
        proof = dpop.make_dpop_proof(self.dpop_key, htm="POST", htu=url, access_token=access_token)
        return {dpop.DPOP_HEADER: proof}

    @staticmethod
    def _ok(response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise WalletError(f"{response.request.url}: {response.status_code} {response.text}")
        return strict_json.loads(response.content)

    async def issue(
        self, pre_authorized_code: str, configuration_id: str, tx_code: str | None = None
    ) -> str:
        token_url = self.issuer + "/token"
        form = {
            "grant_type": oid4vci.PRE_AUTHORIZED_CODE_GRANT,
            "pre-authorized_code": pre_authorized_code,
        }
        if tx_code is not None:
            form["tx_code"] = tx_code
        token = oid4vci.parse_token_response(
            self._ok(await self.http.post(token_url, data=form, headers=self._dpop(token_url)))
        )
        c_nonce = oid4vci.parse_nonce_response(
            self._ok(await self.http.post(self.issuer + "/nonce"))
        )
        holder = (
            next(self.holder_keys) if self.holder_keys is not None else jose.generate_key("ES256")
        )
        proof = oid4vci.make_jwt_proof(holder, audience=self.issuer, nonce=c_nonce)
        credential_url = self.issuer + "/credential"
        headers = {"Authorization": f"{token.token_type} {token.access_token}"}
        if token.token_type == "DPoP":
            headers.update(self._dpop(credential_url, token.access_token))
        body = {"credential_configuration_id": configuration_id, "proofs": {"jwt": [proof]}}
        response = await self.http.post(credential_url, json=body, headers=headers)
        parsed = oid4vci.parse_credential_response(self._ok(response))
        return str(parsed.credentials[0])
