"""OpenID for Verifiable Credential Issuance 1.0 (Final): messages and their checks.

Both sides of the protocol, without any I/O or state:

- issuer / authorization server: Credential Offer (§4.1) and offer links, token request
  (§6.1) with ``authorization_details`` (§5.1.1, RFC 9396) and PKCE (RFC 7636), credential
  request (§8.2), ``jwt`` and ``attestation`` key proofs (Appendix F) with key attestations
  (Appendix D), deferred (§9) and notification (§11) requests, response builders;
- wallet: offer links and offers, Credential Issuer metadata (§12.2) and authorization
  server metadata (RFC 8414), token, nonce and credential responses, key proofs.

Single-use values (pre-authorized codes, ``c_nonce``, transaction ids) are consumed by the
caller: the functions here *return* them (e.g. :attr:`ProofResult.nonce`) so the caller
can consume them atomically in its store.

Every refusal is an :class:`OID4VCIError` whose ``error`` is the protocol error code to
answer with and whose ``description`` is ASCII-safe (§8.3.1.2). Wallet-side checks of
issuer messages use local codes that never go on the wire: ``invalid_credential_offer``,
``invalid_issuer_metadata``, ``invalid_token_response``, ``invalid_credential_response``.
Unknown members are ignored everywhere (the spec requires it) and never copied into results.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from intyg import dcql, jose, strict_json, x509

# -- constants ------------------------------------------------------------------------------

PRE_AUTHORIZED_CODE_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
AUTHORIZATION_CODE_GRANT = "authorization_code"
REFRESH_TOKEN_GRANT = "refresh_token"  # noqa: S105 (a grant type name)
GRANT_TYPES = frozenset({AUTHORIZATION_CODE_GRANT, PRE_AUTHORIZED_CODE_GRANT, REFRESH_TOKEN_GRANT})
PROOF_TYP = "openid4vci-proof+jwt"
KEY_ATTESTATION_TYP = "key-attestation+jwt"
SIGNED_METADATA_TYP = "openidvci-issuer-metadata+jwt"
PROOF_TYPE_JWT = "jwt"
PROOF_TYPE_ATTESTATION = "attestation"
PROOF_TYPE_DI_VP = "di_vp"
AUTHORIZATION_DETAILS_TYPE = "openid_credential"
WELL_KNOWN_CREDENTIAL_ISSUER = "openid-credential-issuer"
WELL_KNOWN_AUTHORIZATION_SERVER = "oauth-authorization-server"
CREDENTIAL_OFFER_SCHEME = "openid-credential-offer://"
HAIP_CREDENTIAL_OFFER_SCHEME = "haip-vci://"
FORMAT_SD_JWT_VC = "dc+sd-jwt"
FORMAT_JWT_VC_JSON = "jwt_vc_json"
FORMAT_JWT_VC_JSON_LD = "jwt_vc_json-ld"
FORMAT_LDP_VC = "ldp_vc"
FORMAT_MSO_MDOC = "mso_mdoc"
TX_CODE_INPUT_MODES = frozenset({"numeric", "text"})
TX_CODE_DESCRIPTION_MAX = 300
NOTIFICATION_EVENTS = frozenset({"credential_accepted", "credential_failure", "credential_deleted"})
PKCE_METHOD = "S256"
DEFAULT_PROOF_MAX_AGE_SECONDS = 300
#: Bounds on untrusted input (DoS): links, identifiers, lists.
MAX_OFFER_LINK_LENGTH = 16 * 1024
MAX_STRING_LENGTH = 2048
MAX_LIST_LENGTH = 100
OPAQUE_VALUE_BYTES = 32  # 256 bits for codes, nonces and ids (security.md T024: >= 128)

_NOT_NQSCHAR = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
_TEXT_TX_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I look-alikes

#: ``(header, unverified claims) -> signer key`` for key attestations (e.g. x5c validation).
KeyAttestationTrust = Callable[[Mapping[str, Any], Mapping[str, Any]], jose.Key]


class OID4VCIError(ValueError):
    """A refused OpenID4VCI message: ``error`` is the protocol error code, ``description``
    an ASCII text safe to send (never secrets or personal data)."""

    def __init__(self, error: str, description: str) -> None:
        self.error = error
        self.description = _NOT_NQSCHAR.sub("?", description)[:300]
        super().__init__(f"{error}: {self.description}")


# -- small validators -----------------------------------------------------------------------


def _string(value: Any, what: str, error: str, *, max_length: int = MAX_STRING_LENGTH) -> str:
    if not isinstance(value, str) or not value:
        raise OID4VCIError(error, f"{what} must be a non-empty string")
    if len(value) > max_length:
        raise OID4VCIError(error, f"{what} is too long")
    return value


def _optional_string(obj: Mapping[str, Any], name: str, error: str) -> str | None:
    return None if obj.get(name) is None else _string(obj[name], name, error)


def _object(value: Any, what: str, error: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OID4VCIError(error, f"{what} must be a JSON object")
    return value


def _json_object(value: Any, what: str, error: str) -> dict[str, Any]:
    """A JSON object given as text/bytes (parsed strictly) or already parsed."""
    if isinstance(value, str | bytes):
        try:
            value = strict_json.loads(value)
        except strict_json.StrictJSONError as exc:
            raise OID4VCIError(error, f"{what}: {exc}") from exc
    return _object(value, what, error)


def _string_list(
    value: Any, what: str, error: str, *, unique: bool = False, allow_int: bool = False
) -> tuple[Any, ...]:
    """A non-empty JSON array of strings (or integers, for COSE algorithm numbers)."""
    if not isinstance(value, list) or not value or len(value) > MAX_LIST_LENGTH:
        raise OID4VCIError(error, f"{what} must be a non-empty array")
    for item in value:
        if not ((isinstance(item, str) and item) or (allow_int and type(item) is int)) or (
            isinstance(item, str) and len(item) > MAX_STRING_LENGTH
        ):
            raise OID4VCIError(error, f"{what} must contain non-empty strings")
    if unique and len(set(value)) != len(value):
        raise OID4VCIError(error, f"{what} must not repeat values")
    return tuple(value)


def _bool(obj: Mapping[str, Any], name: str, error: str, *, required: bool) -> bool | None:
    if name not in obj:
        if required:
            raise OID4VCIError(error, f"{name} is required")
        return None
    if type(obj[name]) is not bool:
        raise OID4VCIError(error, f"{name} must be a boolean")
    return obj[name]


def _url(value: Any, what: str, error: str, *, allow_http: bool, allow_query: bool) -> str:
    """An absolute ``https`` URL (``http`` only with the development flag)."""
    url = _string(value, what, error)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        raise OID4VCIError(error, f"{what} is not a valid URL") from exc
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise OID4VCIError(error, f"{what} must be an https URL")
    if parts.username is not None or parts.fragment or (parts.query and not allow_query):
        raise OID4VCIError(error, f"{what} must not contain user info, fragment or query")
    return url


def check_issuer_identifier(value: Any, *, allow_http: bool = False, error: str = "") -> str:
    """§12.2.1: an https URL with scheme, host, optional port and path; no query/fragment."""
    return _url(
        value,
        "credential issuer identifier",
        error or "invalid_request",
        allow_http=allow_http,
        allow_query=False,
    )


def is_ascii_description(text: str) -> bool:
    """§8.3.1.2, §11.1: only ``%x20-21 / %x23-5B / %x5D-7E`` characters."""
    return _NOT_NQSCHAR.search(text) is None


def new_opaque_value(nbytes: int = OPAQUE_VALUE_BYTES) -> str:
    """An unguessable value (pre-authorized code, ``c_nonce``, ``transaction_id``, ...)."""
    return jose.b64url_encode(secrets.token_bytes(nbytes))


# -- claims path pointers and claims descriptions (Appendix B, C) ----------------------------


def check_claims_path(path: Any, error: str = "invalid_request") -> tuple[str | int | None, ...]:
    """Appendix C: the claims path pointer, the same syntax as OpenID4VP §7 (intyg.dcql)."""
    if not isinstance(path, list):
        raise OID4VCIError(error, "claims path must be a non-empty array")
    try:
        return dcql.check_claims_path(path)
    except dcql.DCQLError as exc:
        raise OID4VCIError(error, str(exc)) from exc


def check_claims_descriptions(
    claims: Any, error: str = "invalid_request"
) -> tuple[tuple[str | int | None, ...], ...]:
    """Appendix B.3: claims description objects; repeated or contradictory ones abort.

    Contradictions are the same path twice, ``null`` and an index on the same array, and
    one claim addressed both as an array and as an object. Returns the paths.
    """
    if not isinstance(claims, list) or not claims or len(claims) > 10 * MAX_LIST_LENGTH:
        raise OID4VCIError(error, "claims must be a non-empty array")
    paths: list[tuple[str | int | None, ...]] = []
    kinds: dict[tuple[Any, ...], set[str]] = {}
    for description in claims:
        _object(description, "claims description", error)
        path = check_claims_path(description.get("path"), error)
        if "mandatory" in description and type(description["mandatory"]) is not bool:
            raise OID4VCIError(error, "mandatory must be a boolean")
        if path in paths:
            raise OID4VCIError(error, "the same claim is described twice")
        for depth, component in enumerate(path):
            kind = "key" if isinstance(component, str) else "all" if component is None else "index"
            seen = kinds.setdefault(path[:depth], set())
            seen.add(kind)
            if ("key" in seen and len(seen) > 1) or {"all", "index"} <= seen:
                raise OID4VCIError(error, "contradictory claims descriptions")
        paths.append(path)
    return tuple(paths)


# -- Credential Offer (§4.1) ----------------------------------------------------------------


@dataclass(frozen=True)
class TxCode:
    """§4.1.1 ``tx_code``: its presence means a Transaction Code is required."""

    input_mode: str = "numeric"
    length: int | None = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input_mode": self.input_mode}
        if self.length is not None:
            out["length"] = self.length
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class PreAuthorizedCodeGrant:
    pre_authorized_code: str
    tx_code: TxCode | None = None
    authorization_server: str | None = None


@dataclass(frozen=True)
class AuthorizationCodeGrant:
    issuer_state: str | None = None
    authorization_server: str | None = None


@dataclass(frozen=True)
class CredentialOffer:
    """A checked Credential Offer. Every value is still untrusted (Security Considerations)."""

    credential_issuer: str
    credential_configuration_ids: tuple[str, ...]
    pre_authorized_code: PreAuthorizedCodeGrant | None = None
    authorization_code: AuthorizationCodeGrant | None = None


def _tx_code(value: Any, error: str) -> TxCode:
    obj = _object(value, "tx_code", error)
    input_mode = obj.get("input_mode", "numeric")
    if input_mode not in TX_CODE_INPUT_MODES:
        raise OID4VCIError(error, "tx_code input_mode must be numeric or text")
    length = obj.get("length")
    if length is not None and (type(length) is not int or not 1 <= length <= 64):
        raise OID4VCIError(error, "tx_code length must be an integer from 1 to 64")
    description = obj.get("description")
    if description is not None and (
        not isinstance(description, str) or len(description) > TX_CODE_DESCRIPTION_MAX
    ):
        raise OID4VCIError(error, "tx_code description must be a string of at most 300 chars")
    return TxCode(input_mode, length, description)


def credential_offer(
    issuer: str,
    configuration_ids: Sequence[str],
    *,
    pre_authorized_code: str | None = None,
    tx_code: Mapping[str, Any] | TxCode | None = None,
    issuer_state: str | None = None,
    authorization_server: str | None = None,
) -> dict[str, Any]:
    """Build a Credential Offer object (§4.1.1).

    A pre-authorized code grant is included when ``pre_authorized_code`` is given (with
    ``tx_code`` when a Transaction Code will be sent out of band), an authorization code
    grant when ``issuer_state`` is given. ``authorization_server`` is added to each grant
    (only meaningful when the metadata lists several authorization servers).
    """
    error = "invalid_request"
    offer: dict[str, Any] = {
        "credential_issuer": check_issuer_identifier(issuer, allow_http=True),
        "credential_configuration_ids": list(
            _string_list(
                list(configuration_ids), "credential_configuration_ids", error, unique=True
            )
        ),
    }
    grants: dict[str, Any] = {}
    if pre_authorized_code is not None:
        grant: dict[str, Any] = {
            "pre-authorized_code": _string(pre_authorized_code, "pre-authorized_code", error)
        }
        if tx_code is not None:
            code = tx_code if isinstance(tx_code, TxCode) else _tx_code(dict(tx_code), error)
            grant["tx_code"] = code.to_json()
        grants[PRE_AUTHORIZED_CODE_GRANT] = grant
    if issuer_state is not None:
        grants[AUTHORIZATION_CODE_GRANT] = {
            "issuer_state": _string(issuer_state, "issuer_state", error)
        }
    if authorization_server is not None:
        for grant in grants.values():
            grant["authorization_server"] = authorization_server
    if grants:
        offer["grants"] = grants
    return offer


def offer_link(offer: str | Mapping[str, Any], scheme: str = CREDENTIAL_OFFER_SCHEME) -> str:
    """The link (or QR code content) carrying an offer (§4.1).

    A string is an offer URI (``credential_offer_uri``, by reference: the form QR codes
    normally use); a mapping is the offer itself (``credential_offer``, by value).
    ``scheme`` is the wallet invocation prefix: ``openid-credential-offer://``,
    ``haip-vci://`` or a wallet's ``credential_offer_endpoint``.
    """
    if "?" in scheme or "#" in scheme:
        raise ValueError("the wallet endpoint must not contain a query or fragment")
    if isinstance(offer, str):
        name, value = "credential_offer_uri", offer
    else:
        name, value = "credential_offer", strict_json.dumps(dict(offer))
    return f"{scheme}?{name}={quote(value, safe='')}"


def parse_offer_link(url: str, *, allow_http: bool = False) -> dict[str, Any] | str:
    """Wallet side of §4.1: the offer object (by value) or the https offer URI (by reference).

    The link must carry exactly one query parameter, ``credential_offer`` or
    ``credential_offer_uri``. The returned object still needs :func:`parse_credential_offer`;
    the URI is fetched by the caller (``application/json`` only).
    """
    error = "invalid_credential_offer"
    if not isinstance(url, str) or len(url) > MAX_OFFER_LINK_LENGTH:
        raise OID4VCIError(error, "credential offer link is missing or too long")
    try:
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise OID4VCIError(error, "credential offer link is malformed") from exc
    if parts.fragment or len(params) != 1:
        raise OID4VCIError(error, "credential offer link must carry exactly one query parameter")
    name, value = params[0]
    if name == "credential_offer":
        return _json_object(value, "credential_offer", error)
    if name == "credential_offer_uri":
        return _url(value, "credential_offer_uri", error, allow_http=allow_http, allow_query=True)
    raise OID4VCIError(error, "expected credential_offer or credential_offer_uri")


def parse_credential_offer(
    obj: Any,
    *,
    known_configuration_ids: Collection[str] | None = None,
    allow_http: bool = False,
) -> CredentialOffer:
    """Wallet side of §4.1.1: check a Credential Offer object (or its JSON text).

    ``known_configuration_ids`` are the keys of the issuer's
    ``credential_configurations_supported``, once the metadata has been fetched.
    """
    error = "invalid_credential_offer"
    offer = _json_object(obj, "credential offer", error)
    issuer = check_issuer_identifier(
        offer.get("credential_issuer"), allow_http=allow_http, error=error
    )
    ids = _string_list(
        offer.get("credential_configuration_ids"),
        "credential_configuration_ids",
        error,
        unique=True,
    )
    if known_configuration_ids is not None:
        if any(cid not in known_configuration_ids for cid in ids):
            raise OID4VCIError(error, "offer names a credential configuration the issuer lacks")
    grants = _object(offer.get("grants", {}), "grants", error)
    pre_authorized = authorization_code = None
    if PRE_AUTHORIZED_CODE_GRANT in grants:
        grant = _object(grants[PRE_AUTHORIZED_CODE_GRANT], "pre-authorized code grant", error)
        pre_authorized = PreAuthorizedCodeGrant(
            pre_authorized_code=_string(
                grant.get("pre-authorized_code"), "pre-authorized_code", error
            ),
            tx_code=_tx_code(grant["tx_code"], error) if "tx_code" in grant else None,
            authorization_server=_optional_string(grant, "authorization_server", error),
        )
    if AUTHORIZATION_CODE_GRANT in grants:
        grant = _object(grants[AUTHORIZATION_CODE_GRANT], "authorization code grant", error)
        authorization_code = AuthorizationCodeGrant(
            issuer_state=_optional_string(grant, "issuer_state", error),
            authorization_server=_optional_string(grant, "authorization_server", error),
        )
    return CredentialOffer(issuer, ids, pre_authorized, authorization_code)


# -- metadata (§12.2, RFC 8414) ---------------------------------------------------------------


@dataclass(frozen=True)
class IssuerMetadata:
    """Credential Issuer metadata that passed :func:`check_issuer_metadata`."""

    credential_issuer: str
    credential_endpoint: str
    credential_configurations: dict[str, dict[str, Any]]
    authorization_servers: tuple[str, ...] = ()
    nonce_endpoint: str | None = None
    deferred_credential_endpoint: str | None = None
    notification_endpoint: str | None = None
    batch_size: int | None = None
    credential_request_encryption: dict[str, Any] | None = None
    credential_response_encryption: dict[str, Any] | None = None

    def configuration(self, configuration_id: str) -> dict[str, Any]:
        try:
            return self.credential_configurations[configuration_id]
        except KeyError as exc:
            raise OID4VCIError(
                "unknown_credential_configuration", "unknown credential configuration"
            ) from exc


def well_known_url(issuer_identifier: str, suffix: str = WELL_KNOWN_CREDENTIAL_ISSUER) -> str:
    """Insert ``/.well-known/<suffix>`` between host and path (§12.2.2, RFC 8414 §3.1).

    ``https://issuer.example/tenant`` gives
    ``https://issuer.example/.well-known/openid-credential-issuer/tenant``; a terminating
    ``/`` of the path is removed first (RFC 8414 §3.1).
    """
    parts = urlsplit(issuer_identifier)
    if parts.query or parts.fragment or not parts.netloc:
        raise ValueError("an issuer identifier has a host and no query or fragment")
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path
    name = suffix.removeprefix("/").removeprefix(".well-known/").strip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"/.well-known/{name}{path}", "", ""))


def check_issuer_metadata(
    doc: Any, issuer_identifier: str, *, allow_http: bool = False, haip: bool = False
) -> IssuerMetadata:
    """Wallet side of §12.2.4 (also used by the issuer to test its own document, T034).

    ``credential_issuer`` must equal ``issuer_identifier`` by plain string comparison;
    every endpoint must be https (``allow_http`` only in development). ``haip`` adds
    HAIP 1.0 (Issuer Metadata): a ``scope`` per configuration and a ``nonce_endpoint`` when any
    configuration requires key binding.
    """
    error = "invalid_issuer_metadata"
    meta = _json_object(doc, "credential issuer metadata", error)
    if meta.get("credential_issuer") != issuer_identifier:
        raise OID4VCIError(error, "credential_issuer is not the identifier the URL came from")
    check_issuer_identifier(issuer_identifier, allow_http=allow_http, error=error)

    def endpoint(name: str, required: bool = False) -> str | None:
        if meta.get(name) is None and not required:
            return None
        return _url(meta.get(name), name, error, allow_http=allow_http, allow_query=True)

    servers: tuple[str, ...] = ()
    if "authorization_servers" in meta:
        servers = _string_list(meta["authorization_servers"], "authorization_servers", error)
        for server in servers:
            check_issuer_identifier(server, allow_http=allow_http, error=error)
    batch_size = None
    if "batch_credential_issuance" in meta:
        batch = _object(meta["batch_credential_issuance"], "batch_credential_issuance", error)
        batch_size = batch.get("batch_size")
        if type(batch_size) is not int or batch_size < 2:
            raise OID4VCIError(error, "batch_size must be an integer of at least 2")
    if "display" in meta:
        _check_display(meta["display"], error, name_required=False)
    configurations = _object(
        meta.get("credential_configurations_supported"),
        "credential_configurations_supported",
        error,
    )
    for configuration_id, configuration in configurations.items():
        _check_configuration(configuration_id, configuration, error, haip=haip)
    nonce_endpoint = endpoint("nonce_endpoint")
    if (
        haip
        and nonce_endpoint is None
        and any("cryptographic_binding_methods_supported" in c for c in configurations.values())
    ):
        raise OID4VCIError(error, "HAIP requires a nonce_endpoint when key binding is required")
    return IssuerMetadata(
        credential_issuer=issuer_identifier,
        credential_endpoint=endpoint("credential_endpoint", required=True),  # type: ignore[arg-type]
        credential_configurations=configurations,
        authorization_servers=servers,
        nonce_endpoint=nonce_endpoint,
        deferred_credential_endpoint=endpoint("deferred_credential_endpoint"),
        notification_endpoint=endpoint("notification_endpoint"),
        batch_size=batch_size,
        credential_request_encryption=_request_encryption_metadata(meta, error),
        credential_response_encryption=_response_encryption_metadata(meta, error),
    )


def _check_configuration(configuration_id: str, value: Any, error: str, *, haip: bool) -> None:
    """§12.2.4 ``credential_configurations_supported`` entry and its format profile."""
    config = _object(value, f"credential configuration {configuration_id[:60]!r}", error)
    fmt = _string(config.get("format"), "format", error)
    scope = config.get("scope")
    if scope is not None or haip:
        _string(scope, "scope", error)
    if "credential_signing_alg_values_supported" in config:
        _string_list(
            config["credential_signing_alg_values_supported"],
            "credential_signing_alg_values_supported",
            error,
            allow_int=True,
        )
    binding = "cryptographic_binding_methods_supported" in config
    if binding:
        _string_list(
            config["cryptographic_binding_methods_supported"],
            "cryptographic_binding_methods_supported",
            error,
        )
    if binding != ("proof_types_supported" in config):
        raise OID4VCIError(
            error,
            "proof_types_supported must be present exactly when "
            "cryptographic_binding_methods_supported is",
        )
    if binding:
        proof_types = _object(config["proof_types_supported"], "proof_types_supported", error)
        if not proof_types:
            raise OID4VCIError(error, "proof_types_supported must not be empty")
        for proof_type in proof_types.values():
            entry = _object(proof_type, "proof type", error)
            _string_list(
                entry.get("proof_signing_alg_values_supported"),
                "proof_signing_alg_values_supported",
                error,
            )
            if "key_attestations_required" in entry:
                required = _object(
                    entry["key_attestations_required"], "key_attestations_required", error
                )
                for name in ("key_storage", "user_authentication"):
                    if name in required:
                        _string_list(required[name], name, error)
    if fmt == FORMAT_SD_JWT_VC:
        _string(config.get("vct"), "vct", error)
    elif fmt == FORMAT_MSO_MDOC:
        _string(config.get("doctype"), "doctype", error)
    elif fmt in (FORMAT_JWT_VC_JSON, FORMAT_JWT_VC_JSON_LD, FORMAT_LDP_VC):
        definition = _object(config.get("credential_definition"), "credential_definition", error)
        _string_list(definition.get("type"), "credential_definition.type", error)
        if fmt != FORMAT_JWT_VC_JSON and not (
            isinstance(definition.get("@context"), list) and definition["@context"]
        ):
            raise OID4VCIError(error, "credential_definition.@context must be a non-empty array")
    if "credential_metadata" in config:
        metadata = _object(config["credential_metadata"], "credential_metadata", error)
        if "display" in metadata:
            _check_display(metadata["display"], error, name_required=True)
        if "claims" in metadata:
            check_claims_descriptions(metadata["claims"], error)


def _check_display(value: Any, error: str, *, name_required: bool) -> None:
    """``display`` arrays: objects, one per locale, with a name where required."""
    if not isinstance(value, list) or not value or len(value) > MAX_LIST_LENGTH:
        raise OID4VCIError(error, "display must be a non-empty array")
    locales = set()
    for entry in value:
        _object(entry, "display entry", error)
        if name_required or "name" in entry:
            _string(entry.get("name"), "display name", error)
        locale = entry.get("locale")
        if locale in locales:
            raise OID4VCIError(error, "display has two entries for one locale")
        locales.add(locale)


def _request_encryption_metadata(meta: Mapping[str, Any], error: str) -> dict[str, Any] | None:
    if "credential_request_encryption" not in meta:
        return None
    enc = _object(meta["credential_request_encryption"], "credential_request_encryption", error)
    jwks = _object(enc.get("jwks"), "credential_request_encryption.jwks", error)
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise OID4VCIError(error, "credential_request_encryption.jwks needs keys")
    kids = [_object(k, "encryption key", error).get("kid") for k in keys]
    if not all(isinstance(kid, str) and kid for kid in kids) or len(set(kids)) != len(kids):
        raise OID4VCIError(error, "every request encryption key needs a unique kid")
    _string_list(enc.get("enc_values_supported"), "enc_values_supported", error)
    if "zip_values_supported" in enc:
        _string_list(enc["zip_values_supported"], "zip_values_supported", error)
    _bool(enc, "encryption_required", error, required=True)
    return enc


def _response_encryption_metadata(meta: Mapping[str, Any], error: str) -> dict[str, Any] | None:
    if "credential_response_encryption" not in meta:
        return None
    enc = _object(meta["credential_response_encryption"], "credential_response_encryption", error)
    _string_list(enc.get("alg_values_supported"), "alg_values_supported", error)
    _string_list(enc.get("enc_values_supported"), "enc_values_supported", error)
    if "zip_values_supported" in enc:
        _string_list(enc["zip_values_supported"], "zip_values_supported", error)
    _bool(enc, "encryption_required", error, required=True)
    return enc


def select_authorization_server(metadata: IssuerMetadata, hint: str | None = None) -> str:
    """The authorization server to use (§12.2.4 ``authorization_servers``, §4.1.1).

    An offer's ``authorization_server`` hint must be one of the metadata's entries (the
    wallet MUST NOT proceed otherwise); without a hint the first entry is used, and
    without ``authorization_servers`` the Credential Issuer is its own server.
    """
    if hint is not None:
        if hint not in metadata.authorization_servers:
            raise OID4VCIError(
                "invalid_credential_offer",
                "offer authorization_server is not listed in the issuer metadata",
            )
        return hint
    if metadata.authorization_servers:
        return metadata.authorization_servers[0]
    return metadata.credential_issuer


def check_authorization_server_metadata(
    doc: Any, issuer: str, *, allow_http: bool = False
) -> dict[str, Any]:
    """Wallet side of RFC 8414 §3.3: ``issuer`` must be identical; endpoints https."""
    error = "invalid_issuer_metadata"
    meta = _json_object(doc, "authorization server metadata", error)
    if meta.get("issuer") != issuer:
        raise OID4VCIError(error, "authorization server issuer does not match")
    _url(
        meta.get("token_endpoint"), "token_endpoint", error, allow_http=allow_http, allow_query=True
    )
    for name in (
        "authorization_endpoint",
        "pushed_authorization_request_endpoint",
        "jwks_uri",
        "challenge_endpoint",
    ):
        if meta.get(name) is not None:
            _url(meta[name], name, error, allow_http=allow_http, allow_query=True)
    _bool(meta, "pre-authorized_grant_anonymous_access_supported", error, required=False)
    return meta


# -- authorization details (§5.1.1, RFC 9396) --------------------------------------------------


@dataclass(frozen=True)
class AuthorizationDetail:
    """One ``openid_credential`` authorization details object (only known members)."""

    credential_configuration_id: str
    claims: tuple[dict[str, Any], ...] | None = None
    locations: tuple[str, ...] | None = None

    def to_json(self, credential_identifiers: Sequence[str] | None = None) -> dict[str, Any]:
        """The object as sent; with ``credential_identifiers`` as in a token response (§6.2)."""
        out: dict[str, Any] = {
            "type": AUTHORIZATION_DETAILS_TYPE,
            "credential_configuration_id": self.credential_configuration_id,
        }
        if self.claims is not None:
            out["claims"] = [dict(c) for c in self.claims]
        if self.locations is not None:
            out["locations"] = list(self.locations)
        if credential_identifiers is not None:
            out["credential_identifiers"] = list(
                _string_list(
                    list(credential_identifiers),
                    "credential_identifiers",
                    "invalid_request",
                    unique=True,
                )
            )
        return out


def parse_authorization_details(
    value: Any,
    *,
    known_configuration_ids: Collection[str] | None = None,
    credential_issuer: str | None = None,
    require_locations: bool = False,
) -> tuple[AuthorizationDetail, ...]:
    """§5.1.1 / RFC 9396 ``authorization_details`` (JSON text or parsed array).

    ``credential_issuer``: the Credential Issuer these details must be for; any
    ``locations`` must name it, and with ``require_locations`` (the metadata lists
    ``authorization_servers``) they must be present. Errors are
    ``invalid_authorization_details`` (RFC 9396 §5).
    """
    error = "invalid_authorization_details"
    if isinstance(value, str | bytes):
        try:
            value = strict_json.loads(value)
        except strict_json.StrictJSONError as exc:
            raise OID4VCIError(error, f"authorization_details: {exc}") from exc
    if not isinstance(value, list) or not value or len(value) > MAX_LIST_LENGTH:
        raise OID4VCIError(error, "authorization_details must be a non-empty array")
    details = []
    for item in value:
        obj = _object(item, "authorization details object", error)
        if obj.get("type") != AUTHORIZATION_DETAILS_TYPE:
            raise OID4VCIError(error, "authorization details type must be openid_credential")
        configuration_id = _string(
            obj.get("credential_configuration_id"), "credential_configuration_id", error
        )
        if known_configuration_ids is not None and configuration_id not in known_configuration_ids:
            raise OID4VCIError(error, "unknown credential_configuration_id")
        claims = None
        if "claims" in obj:
            check_claims_descriptions(obj["claims"], error)
            claims = tuple(_known_claims_description(c) for c in obj["claims"])
        locations = None
        if "locations" in obj:
            locations = _string_list(obj["locations"], "locations", error)
        if credential_issuer is not None and (
            (locations is not None and credential_issuer not in locations)
            or (locations is None and require_locations)
        ):
            raise OID4VCIError(error, "locations must name this credential issuer")
        details.append(AuthorizationDetail(configuration_id, claims, locations))
    return tuple(details)


def _known_claims_description(description: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"path": list(description["path"])}
    if "mandatory" in description:
        out["mandatory"] = description["mandatory"]
    return out


# -- token endpoint (§6) ----------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRequest:
    """A checked token request; grant-specific members are None when not sent."""

    grant_type: str
    code: str | None = None
    redirect_uri: str | None = None
    code_verifier: str | None = None
    pre_authorized_code: str | None = None
    tx_code: str | None = None
    refresh_token: str | None = None
    client_id: str | None = None
    scope: tuple[str, ...] = ()
    resource: str | None = None
    authorization_details: tuple[AuthorizationDetail, ...] | None = None


def parse_token_request(
    form: Mapping[str, str],
    *,
    grant_types: Collection[str] = GRANT_TYPES,
    known_configuration_ids: Collection[str] | None = None,
    credential_issuer: str | None = None,
    require_locations: bool = False,
) -> TokenRequest:
    """§6.1 token request (RFC 6749 §4.1.3, §6 and the pre-authorized code grant).

    Parameters without a value count as absent (RFC 6749 §3.1). Whether a ``tx_code``
    was expected is known only from the stored offer: see :func:`check_tx_code_presence`.
    PKCE is checked with :func:`verify_pkce`, client authentication by the caller.
    """
    error = "invalid_request"
    params: dict[str, str] = {}
    for name, value in form.items():
        if not isinstance(value, str):
            raise OID4VCIError(error, f"parameter {name[:40]} must be a single string")
        if value:
            params[name] = value
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise OID4VCIError(error, "grant_type is required")
    if grant_type not in grant_types:
        raise OID4VCIError("unsupported_grant_type", "grant_type is not supported")

    def required(name: str) -> str:
        if name not in params:
            raise OID4VCIError(error, f"{name} is required")
        return _string(params[name], name, error)

    if "tx_code" in params and grant_type != PRE_AUTHORIZED_CODE_GRANT:
        raise OID4VCIError(error, "tx_code is only allowed with the pre-authorized code grant")
    details = None
    if "authorization_details" in params:
        details = parse_authorization_details(
            params["authorization_details"],
            known_configuration_ids=known_configuration_ids,
            credential_issuer=credential_issuer,
            require_locations=require_locations,
        )
    common = {
        "grant_type": grant_type,
        "client_id": params.get("client_id"),
        "scope": tuple(s for s in params.get("scope", "").split(" ") if s),
        "resource": params.get("resource"),
        "authorization_details": details,
    }
    if grant_type == AUTHORIZATION_CODE_GRANT:
        return TokenRequest(
            code=required("code"),
            redirect_uri=params.get("redirect_uri"),
            code_verifier=params.get("code_verifier"),
            **common,  # type: ignore[arg-type]
        )
    if grant_type == PRE_AUTHORIZED_CODE_GRANT:
        return TokenRequest(
            pre_authorized_code=required("pre-authorized_code"),
            tx_code=params.get("tx_code"),
            **common,  # type: ignore[arg-type]
        )
    return TokenRequest(refresh_token=required("refresh_token"), **common)  # type: ignore[arg-type]


def check_tx_code_presence(expected: bool, sent: str | None) -> None:
    """§6.3 ``invalid_request``: a tx_code sent but not expected, or expected but missing.

    A wrong tx_code is ``invalid_grant``, decided by the caller's constant-time comparison
    (and failed-attempt counter, security.md T021).
    """
    if expected and not sent:
        raise OID4VCIError("invalid_request", "tx_code is required for this offer")
    if sent and not expected:
        raise OID4VCIError("invalid_request", "this offer does not use a tx_code")


def new_tx_code(length: int = 6, input_mode: str = "numeric") -> str:
    """A Transaction Code matching the ``length`` and ``input_mode`` announced (T024)."""
    if input_mode not in TX_CODE_INPUT_MODES or not 4 <= length <= 64:
        raise ValueError("tx_code needs input_mode numeric/text and a length of 4 to 64")
    alphabet = "0123456789" if input_mode == "numeric" else _TEXT_TX_CODE_ALPHABET
    return "".join(secrets.choice(alphabet) for _ in range(length))


def token_response(
    access_token: str,
    *,
    token_type: str,
    expires_in: int,
    authorization_details: Sequence[Mapping[str, Any]] | None = None,
    refresh_token: str | None = None,
) -> dict[str, Any]:
    """§6.2 successful token response body (send with ``Cache-Control: no-store``)."""
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": expires_in,
    }
    if authorization_details is not None:
        body["authorization_details"] = [dict(d) for d in authorization_details]
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return body


@dataclass(frozen=True)
class GrantedCredential:
    """A token response ``authorization_details`` entry (§6.2)."""

    credential_configuration_id: str
    credential_identifiers: tuple[str, ...]


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    token_type: str
    expires_in: int | None = None
    refresh_token: str | None = None
    authorization_details: tuple[GrantedCredential, ...] | None = None


def parse_token_response(obj: Any) -> TokenResponse:
    """Wallet side of §6.2 (RFC 6749 §5.1)."""
    error = "invalid_token_response"
    body = _json_object(obj, "token response", error)
    access_token = _string(body.get("access_token"), "access_token", error, max_length=16384)
    token_type = _string(body.get("token_type"), "token_type", error)
    expires_in = body.get("expires_in")
    if expires_in is not None and (type(expires_in) is not int or expires_in <= 0):
        raise OID4VCIError(error, "expires_in must be a positive integer")
    granted = None
    if "authorization_details" in body:
        entries = body["authorization_details"]
        if not isinstance(entries, list) or not entries:
            raise OID4VCIError(error, "authorization_details must be a non-empty array")
        granted_list = []
        for entry in entries:
            detail = _object(entry, "authorization details object", error)
            if detail.get("type") != AUTHORIZATION_DETAILS_TYPE:
                continue  # other types are not ours to interpret
            granted_list.append(
                GrantedCredential(
                    _string(
                        detail.get("credential_configuration_id"),
                        "credential_configuration_id",
                        error,
                    ),
                    _string_list(
                        detail.get("credential_identifiers"),
                        "credential_identifiers",
                        error,
                        unique=True,
                    ),
                )
            )
        granted = tuple(granted_list)
    refresh_token = body.get("refresh_token")
    if refresh_token is not None:
        refresh_token = _string(refresh_token, "refresh_token", error, max_length=16384)
    return TokenResponse(access_token, token_type, expires_in, refresh_token, granted)


# -- PKCE (RFC 7636; S256 only, HAIP 1.0 §4) -----------------------------------------------


def new_pkce_verifier() -> str:
    """A ``code_verifier`` of 256 random bits (43 characters, RFC 7636 §4.1)."""
    return jose.b64url_encode(secrets.token_bytes(32))


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2 ``S256``: base64url(SHA-256(ASCII(code_verifier)))."""
    if not isinstance(verifier, str) or not _PKCE_VERIFIER.fullmatch(verifier):
        raise OID4VCIError("invalid_grant", "code_verifier must be 43-128 unreserved characters")
    return jose.sha256_b64url(verifier)


def check_code_challenge(challenge: str | None, method: str | None) -> None:
    """At the authorization/PAR endpoint: PKCE is required and only ``S256`` is accepted."""
    if not challenge:
        raise OID4VCIError("invalid_request", "code_challenge is required")
    if method != PKCE_METHOD:
        raise OID4VCIError("invalid_request", "code_challenge_method must be S256")
    if not _PKCE_CHALLENGE.fullmatch(challenge):
        raise OID4VCIError("invalid_request", "code_challenge is not an S256 challenge")


def verify_pkce(challenge: str | None, method: str | None, verifier: str | None) -> None:
    """RFC 7636 §4.6 at the token endpoint, with BCP 240 §2.1.1 downgrade protection.

    ``challenge``/``method`` are what the authorization request stored. A verifier without
    a stored challenge, a stored challenge without a verifier and a mismatch are all
    ``invalid_grant``; a stored method other than ``S256`` is ``invalid_request``.
    """
    if challenge is None:
        if verifier is not None:
            raise OID4VCIError("invalid_grant", "code_verifier sent but no code_challenge was")
        return
    if method != PKCE_METHOD:
        raise OID4VCIError("invalid_request", "code_challenge_method must be S256")
    if verifier is None:
        raise OID4VCIError("invalid_grant", "code_verifier is required")
    computed = pkce_challenge(verifier)
    if not hmac.compare_digest(computed.encode(), challenge.encode("utf-8")):
        raise OID4VCIError("invalid_grant", "code_verifier does not match the code_challenge")


# -- nonce endpoint (§7) ----------------------------------------------------------------------


def nonce_response(c_nonce: str) -> dict[str, str]:
    """§7.2 body (send with ``Cache-Control: no-store``)."""
    return {"c_nonce": c_nonce}


def parse_nonce_response(obj: Any) -> str:
    """Wallet side of §7.2: the ``c_nonce``."""
    body = _json_object(obj, "nonce response", "invalid_credential_response")
    return _string(body.get("c_nonce"), "c_nonce", "invalid_credential_response")


# -- credential request (§8.2) ------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialRequest:
    """A checked credential request: only the members this spec defines."""

    credential_configuration_id: str
    credential_identifier: str | None
    proof_type: str | None
    proofs: tuple[Any, ...]
    credential_response_encryption: dict[str, Any] | None
    configuration: Mapping[str, Any] | None = None


def parse_credential_request(
    body: Any,
    *,
    batch_size: int | None,
    proof_types_supported: Mapping[str, Any] | None = None,
    configurations: Mapping[str, Mapping[str, Any]] | None = None,
    credential_identifiers: Mapping[str, str] | None = None,
    authorized_configuration_ids: Collection[str] | None = None,
    encrypted: bool = False,
    response_encryption: Mapping[str, Any] | None = None,
) -> CredentialRequest:
    """§8.2 credential request, before the proofs themselves are verified.

    - ``credential_identifiers``: identifier -> configuration id, as granted with the access
      token (§6.2); None when the token response carried none. Then the request must use
      ``credential_identifier``; otherwise ``credential_configuration_id``.
    - ``configurations``: the issuer's ``credential_configurations_supported``; when given,
      the configuration is resolved and its ``proof_types_supported`` used; else
      ``proof_types_supported`` is the resolved configuration's (None: no key binding).
    - ``authorized_configuration_ids``: configurations the access token covers; others are
      RFC 6750 ``insufficient_scope`` (§8.3.1.1).
    - ``encrypted``: whether the request arrived as a JWE (§10); ``response_encryption``:
      our ``credential_response_encryption`` metadata (None: not supported).
    - ``batch_size``: metadata ``batch_size``; None means one proof per request.
    """
    error = "invalid_credential_request"
    request = _object(body, "credential request", error)
    identifier = request.get("credential_identifier")
    configuration_id = request.get("credential_configuration_id")
    if (identifier is None) == (configuration_id is None):
        raise OID4VCIError(
            error, "use exactly one of credential_identifier and credential_configuration_id"
        )
    if identifier is not None:
        identifier = _string(identifier, "credential_identifier", error)
        if credential_identifiers is None:
            raise OID4VCIError(error, "the access token granted no credential_identifiers")
        if identifier not in credential_identifiers:
            raise OID4VCIError("unknown_credential_identifier", "credential_identifier is unknown")
        configuration_id = credential_identifiers[identifier]
    else:
        configuration_id = _string(configuration_id, "credential_configuration_id", error)
        if credential_identifiers is not None:
            raise OID4VCIError(error, "use a credential_identifier from the token response")
    configuration = None
    if configurations is not None:
        if configuration_id not in configurations:
            raise OID4VCIError(
                "unknown_credential_configuration", "credential configuration is unknown"
            )
        configuration = configurations[configuration_id]
        proof_types_supported = configuration.get("proof_types_supported")
    if authorized_configuration_ids is not None and configuration_id not in (
        authorized_configuration_ids
    ):
        raise OID4VCIError("insufficient_scope", "the access token does not cover this credential")
    proof_type, proofs = _proofs(request.get("proofs"), proof_types_supported, batch_size)
    return CredentialRequest(
        credential_configuration_id=configuration_id,
        credential_identifier=identifier,
        proof_type=proof_type,
        proofs=proofs,
        credential_response_encryption=_response_encryption_request(
            request, encrypted=encrypted, supported=response_encryption
        ),
        configuration=configuration,
    )


def _proofs(
    value: Any, proof_types_supported: Mapping[str, Any] | None, batch_size: int | None
) -> tuple[str | None, tuple[Any, ...]]:
    """§8.2 ``proofs``: one proof type -> non-empty array, at most ``batch_size`` long."""
    error = "invalid_proof"
    if value is None:
        if proof_types_supported:
            raise OID4VCIError(error, "proofs are required for this credential")
        return None, ()
    if not proof_types_supported:
        raise OID4VCIError(error, "this credential is not key-bound; send no proofs")
    proofs = _object(value, "proofs", error)
    if len(proofs) != 1:
        raise OID4VCIError(error, "proofs must contain exactly one proof type")
    ((proof_type, entries),) = proofs.items()
    if proof_type not in proof_types_supported:
        raise OID4VCIError(error, "proof type is not supported for this credential")
    if not isinstance(entries, list) or not entries:
        raise OID4VCIError(error, "proofs must map the proof type to a non-empty array")
    limit = 1 if proof_type == PROOF_TYPE_ATTESTATION else batch_size or 1
    if len(entries) > limit:
        raise OID4VCIError(error, f"at most {limit} proofs are accepted in one request")
    if proof_type in (PROOF_TYPE_JWT, PROOF_TYPE_ATTESTATION) and not all(
        isinstance(e, str) and e for e in entries
    ):
        raise OID4VCIError(error, f"{proof_type} proofs must be JWT strings")
    return proof_type, tuple(entries)


def _response_encryption_request(
    request: Mapping[str, Any], *, encrypted: bool, supported: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """§8.2 ``credential_response_encryption`` against our metadata (§10)."""
    error = "invalid_encryption_parameters"
    value = request.get("credential_response_encryption")
    if value is None:
        if supported is not None and supported.get("encryption_required") is True:
            raise OID4VCIError(error, "credential response encryption is required")
        return None
    if supported is None:
        raise OID4VCIError(error, "credential response encryption is not supported")
    if not encrypted:
        raise OID4VCIError(
            error, "credential_response_encryption is only accepted in an encrypted request"
        )
    enc = _object(value, "credential_response_encryption", error)
    jwk = _object(enc.get("jwk"), "credential_response_encryption.jwk", error)
    if jwk.get("kty") not in ("EC", "OKP", "RSA") or {"d", "p", "q", "k"} & jwk.keys():
        raise OID4VCIError(error, "the encryption key must be a public asymmetric JWK")
    if jwk.get("alg") not in supported.get("alg_values_supported", ()):
        raise OID4VCIError(error, "the encryption key alg is missing or not supported")
    if enc.get("enc") not in supported.get("enc_values_supported", ()):
        raise OID4VCIError(error, "enc is missing or not supported")
    if "zip" in enc and enc["zip"] not in supported.get("zip_values_supported", ()):
        raise OID4VCIError(error, "zip is not supported")
    return {name: enc[name] for name in ("jwk", "enc", "zip") if name in enc}


def parse_deferred_credential_request(
    body: Any, *, encrypted: bool = False, response_encryption: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, Any] | None]:
    """§9.1: ``(transaction_id, credential_response_encryption)``; the caller looks the id
    up and answers ``invalid_transaction_id`` when it is unknown or used."""
    request = _object(body, "deferred credential request", "invalid_credential_request")
    transaction_id = _string(
        request.get("transaction_id"), "transaction_id", "invalid_credential_request"
    )
    encryption = _response_encryption_request(
        request, encrypted=encrypted, supported=response_encryption
    )
    return transaction_id, encryption


# -- key proofs (Appendix F) and key attestations (Appendix D) ----------------------------------


@dataclass(frozen=True)
class KeyAttestation:
    """A verified key attestation (Appendix D.1)."""

    claims: dict[str, Any]
    attested_keys: tuple[jose.Key, ...]
    nonce: str | None


@dataclass(frozen=True)
class ProofResult:
    """A verified key proof. ``nonce`` must be consumed by the caller (``invalid_nonce``
    when it is unknown, expired or used)."""

    key: jose.Key
    nonce: str | None
    iat: int | None
    key_attestation: dict[str, Any] | None
    attested_keys: tuple[jose.Key, ...]
    jwt: str


def make_jwt_proof(
    holder_key: jose.Key,
    *,
    audience: str,
    nonce: str | None,
    iat: int | None = None,
    client_id: str | None = None,
    key_attestation: str | None = None,
) -> str:
    """Wallet side of Appendix F.1: a ``jwt`` proof with the public key in ``jwk``.

    ``client_id`` becomes ``iss``; leave it out after anonymous pre-authorized access.
    """
    public = holder_key.public_jwk()
    public.pop("kid", None)
    header: dict[str, Any] = {"typ": PROOF_TYP, "jwk": public}
    if key_attestation is not None:
        header["key_attestation"] = key_attestation
    claims: dict[str, Any] = {"aud": audience, "iat": int(time.time()) if iat is None else iat}
    if nonce is not None:
        claims["nonce"] = nonce
    if client_id is not None:
        claims["iss"] = client_id
    return jose.encode_jws(claims, holder_key, header)


def verify_jwt_proof(
    proof: str,
    *,
    audience: str,
    now: int,
    algorithms: Collection[str],
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    max_age: int = DEFAULT_PROOF_MAX_AGE_SECONDS,
    client_id: str | None = None,
    anonymous: bool = False,
    nonce_required: bool = False,
    key_resolver: Callable[[str], jose.Key] | None = None,
    x5c_validator: Callable[[list[str]], jose.Key] | None = None,
    key_attestation_trust: KeyAttestationTrust | None = None,
    key_attestations_required: Mapping[str, Any] | None = None,
) -> ProofResult:
    """Appendix F.1 / F.4: verify one ``jwt`` key proof (security.md T001-T008, T038-T042).

    - ``algorithms``: the configuration's ``proof_signing_alg_values_supported``.
    - exactly one of ``kid`` (resolved by ``key_resolver``, e.g. a DID URL), ``jwk`` (public
      only) or ``x5c`` (validated by ``x5c_validator``) names the key that must verify.
    - ``aud`` is exactly ``audience`` (the Credential Issuer Identifier); ``iat`` is required,
      not in the future beyond ``leeway`` and not older than ``max_age``.
    - ``iss`` must be absent when ``anonymous`` (pre-authorized access without client_id),
      otherwise equal to ``client_id`` when present.
    - ``nonce_required`` (the issuer has a nonce endpoint): a proof without ``nonce`` is
      ``invalid_proof`` "proof without c_nonce". The nonce is returned, not checked.
    - a ``key_attestation`` header is verified with ``key_attestation_trust`` and the proof
      key must be among its ``attested_keys``; ``key_attestations_required`` (metadata)
      makes one mandatory and checks its ``key_storage``/``user_authentication``.
    """
    error = "invalid_proof"
    jws = _parse_typed(proof, PROOF_TYP, algorithms, "key proof")
    key = _proof_key(jws.header, key_resolver, x5c_validator)
    try:
        jose.verify_signature(jws, key)
        claims = jws.claims()
        jose.check_audience(claims, audience)
        jose.check_time_claims(
            claims, now=now, leeway=leeway, require=("iat",), max_iat_age=max_age
        )
    except jose.JoseError as exc:
        raise OID4VCIError(error, f"key proof: {exc}") from exc
    if "iss" in claims and (anonymous or claims["iss"] != client_id):
        raise OID4VCIError(error, "key proof iss must be the client_id (absent if anonymous)")
    nonce = _proof_nonce(claims.get("nonce"), nonce_required)
    attestation = None
    if "key_attestation" in jws.header:
        if key_attestation_trust is None:
            raise OID4VCIError(error, "key attestations are not accepted")
        attestation = verify_key_attestation(
            jws.header["key_attestation"],
            trust=key_attestation_trust,
            now=now,
            algorithms=algorithms,
            leeway=leeway,
            requirements=key_attestations_required,
        )
        _check_attested(attestation, key, nonce if nonce_required else None)
    elif key_attestations_required is not None:
        raise OID4VCIError(error, "a key attestation is required")
    return ProofResult(
        key=key,
        nonce=nonce,
        iat=claims["iat"],
        key_attestation=attestation.claims if attestation else None,
        attested_keys=attestation.attested_keys if attestation else (),
        jwt=proof,
    )


def verify_attestation_proof(
    proof: str,
    *,
    now: int,
    trust: KeyAttestationTrust,
    algorithms: Collection[str],
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    nonce_required: bool = False,
    key_attestations_required: Mapping[str, Any] | None = None,
) -> ProofResult:
    """Appendix F.3: an ``attestation`` proof, a key attestation whose ``nonce`` is the
    ``c_nonce``. ``key`` is the first attested key; bind one credential per attested key."""
    attestation = verify_key_attestation(
        proof,
        trust=trust,
        now=now,
        algorithms=algorithms,
        leeway=leeway,
        require_exp=False,
        requirements=key_attestations_required,
    )
    nonce = _proof_nonce(attestation.nonce, nonce_required)
    return ProofResult(
        key=attestation.attested_keys[0],
        nonce=nonce,
        iat=attestation.claims.get("iat"),
        key_attestation=attestation.claims,
        attested_keys=attestation.attested_keys,
        jwt=proof,
    )


def _parse_typed(token: Any, typ: str, algorithms: Collection[str], what: str) -> jose.CompactJWS:
    """Compact JWS, allowed asymmetric ``alg`` (T001-T003), ``typ`` exactly as defined."""
    try:
        jws = jose.parse_jws(token)
        jose.check_header(jws, algorithms=algorithms)
    except jose.JoseError as exc:
        raise OID4VCIError("invalid_proof", f"{what}: {exc}") from exc
    if jws.header.get("typ") != typ:
        raise OID4VCIError("invalid_proof", f"{what}: typ must be {typ}")
    return jws


def _proof_key(
    header: Mapping[str, Any],
    key_resolver: Callable[[str], jose.Key] | None,
    x5c_validator: Callable[[list[str]], jose.Key] | None,
) -> jose.Key:
    """Appendix F.1: exactly one of ``kid``, ``jwk``, ``x5c`` (T007); no private key (T008)."""
    error = "invalid_proof"
    present = [name for name in ("kid", "jwk", "x5c") if name in header]
    if len(present) != 1:
        raise OID4VCIError(error, "key proof header needs exactly one of kid, jwk and x5c")
    try:
        if present[0] == "jwk":
            if not isinstance(header["jwk"], dict):
                raise OID4VCIError(error, "key proof jwk must be a JSON object")
            return jose.key_from_jwk(header["jwk"])
        if present[0] == "kid":
            if key_resolver is None or not isinstance(header["kid"], str):
                raise OID4VCIError(error, "key proofs identified by kid are not accepted")
            key = key_resolver(header["kid"])
        else:
            if x5c_validator is None or not isinstance(header["x5c"], list):
                raise OID4VCIError(error, "key proofs with x5c are not accepted")
            key = x5c_validator(header["x5c"])
    except OID4VCIError:
        raise
    except (ValueError, LookupError) as exc:  # JoseError, X509Error, DIDError, unknown kid
        raise OID4VCIError(error, f"key proof key: {exc}") from exc
    if not isinstance(key, jose.Key):
        raise OID4VCIError(error, "key proof key could not be resolved")
    return key


def _proof_nonce(value: Any, required: bool) -> str | None:
    if value is None:
        if required:
            raise OID4VCIError("invalid_proof", "proof without c_nonce")
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_STRING_LENGTH:
        raise OID4VCIError("invalid_proof", "nonce must be a non-empty string")
    return value


def _check_attested(attestation: KeyAttestation, proof_key: jose.Key, nonce: str | None) -> None:
    """Appendix F.1 ``key_attestation`` header: it must list the proof key and, when the
    issuer uses nonces, carry the proof's ``c_nonce``."""
    thumbprint = proof_key.thumbprint()
    if all(k.thumbprint() != thumbprint for k in attestation.attested_keys):
        raise OID4VCIError("invalid_proof", "the proof key is not among the attested keys")
    if nonce is not None and attestation.nonce != nonce:
        raise OID4VCIError("invalid_proof", "key attestation nonce must be the proof's c_nonce")


def make_key_attestation(
    signer: jose.Key,
    *,
    attested_keys: Sequence[Mapping[str, Any] | jose.Key],
    exp: int | None,
    iat: int | None = None,
    x5c: Sequence[str] | None = None,
    nonce: str | None = None,
    key_storage: Sequence[str] | None = None,
    user_authentication: Sequence[str] | None = None,
    certification: str | None = None,
    status: Mapping[str, Any] | None = None,
    issuer: str | None = None,
) -> str:
    """Appendix D.1 key attestation JWT (``typ`` ``key-attestation+jwt``) by the wallet
    provider or key storage component. HAIP wants the signer's chain in ``x5c``."""
    keys = []
    for key in attested_keys:
        if isinstance(key, jose.Key):
            jwk: dict[str, Any] = key.public_jwk()
        else:
            jose.key_from_jwk(key)  # refuses private members
            jwk = dict(key)
        jwk.pop("kid", None)
        keys.append(jwk)
    claims: dict[str, Any] = {
        "iat": int(time.time()) if iat is None else iat,
        "attested_keys": keys,
    }
    optional = {
        "exp": exp,
        "nonce": nonce,
        "key_storage": list(key_storage) if key_storage else None,
        "user_authentication": list(user_authentication) if user_authentication else None,
        "certification": certification,
        "status": dict(status) if status else None,
        "iss": issuer,
    }
    claims.update({name: value for name, value in optional.items() if value is not None})
    header: dict[str, Any] = {"typ": KEY_ATTESTATION_TYP}
    if x5c:
        header["x5c"] = list(x5c)
    elif signer.kid:
        header["kid"] = signer.kid
    return jose.encode_jws(claims, signer, header)


def verify_key_attestation(
    token: Any,
    *,
    trust: KeyAttestationTrust,
    now: int,
    algorithms: Collection[str] = jose.DEFAULT_ALGORITHMS,
    leeway: int = jose.DEFAULT_LEEWAY_SECONDS,
    require_exp: bool = True,
    requirements: Mapping[str, Any] | None = None,
) -> KeyAttestation:
    """Appendix D.1: a key attestation signed by a key ``trust`` accepts (e.g. an x5c chain
    to a wallet provider anchor, see :func:`x5c_trust`). ``iat`` is required, ``exp`` too
    when used with a ``jwt`` proof; ``attested_keys`` is a non-empty array of distinct
    public JWKs. ``requirements``: the metadata's ``key_attestations_required``.
    """
    error = "invalid_proof"
    jws = _parse_typed(token, KEY_ATTESTATION_TYP, algorithms, "key attestation")
    try:
        claims = jws.claims()
        signer = trust(jws.header, claims)
        if not isinstance(signer, jose.Key):
            raise OID4VCIError(error, "key attestation signer is not trusted")
        jose.verify_signature(jws, signer)
        require = ("iat", "exp") if require_exp else ("iat",)
        jose.check_time_claims(claims, now=now, leeway=leeway, require=require)
    except OID4VCIError:
        raise
    except (ValueError, LookupError) as exc:
        raise OID4VCIError(error, f"key attestation: {exc}") from exc
    jwks = claims.get("attested_keys")
    if not isinstance(jwks, list) or not jwks or len(jwks) > MAX_LIST_LENGTH:
        raise OID4VCIError(error, "attested_keys must be a non-empty array of JWKs")
    try:
        keys = tuple(jose.key_from_jwk(_object(j, "attested key", error)) for j in jwks)
    except jose.JoseError as exc:
        raise OID4VCIError(error, f"attested key: {exc}") from exc
    if len({k.thumbprint() for k in keys}) != len(keys):
        raise OID4VCIError(error, "attested_keys lists a key twice")
    for name in ("key_storage", "user_authentication"):
        if name in claims:
            _string_list(claims[name], name, error)
    if requirements:
        for name in ("key_storage", "user_authentication"):
            accepted = requirements.get(name)
            if accepted and not set(claims.get(name, ())) & set(accepted):
                raise OID4VCIError(error, f"key attestation {name} does not meet our policy")
    nonce = claims.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise OID4VCIError(error, "key attestation nonce must be a string")
    return KeyAttestation(claims, keys, nonce)


def x5c_trust(trust_anchors: Sequence[x509.Certificate], *, now: int) -> KeyAttestationTrust:
    """A :data:`KeyAttestationTrust` validating the header ``x5c`` up to ``trust_anchors``
    (HAIP 1.0 Key Attestation: the signer's certificate in ``x5c``, no anchor, not self-signed)."""

    def resolve(header: Mapping[str, Any], claims: Mapping[str, Any]) -> jose.Key:
        x5c = header.get("x5c")
        if not isinstance(x5c, list) or not x5c:
            raise OID4VCIError("invalid_proof", "key attestation needs an x5c chain")
        return x509.validate_x5c(x5c, trust_anchors, now=now).key

    return resolve


def distinct_proof_keys(results: Iterable[ProofResult]) -> list[jose.Key]:
    """The keys to bind one credential each to (§8.2; T043), in request order.

    Two proofs signed with the same key are ``invalid_proof``. Attested keys (Appendix
    F.1: the issuer SHOULD issue one credential per attested key) are added once each.
    """
    seen: set[str] = set()
    proof_keys: set[str] = set()
    keys: list[jose.Key] = []
    for result in results:
        thumbprint = result.key.thumbprint()
        if thumbprint in proof_keys:
            raise OID4VCIError("invalid_proof", "two proofs use the same key")
        proof_keys.add(thumbprint)
        for key in (result.key, *result.attested_keys):
            key_thumbprint = key.thumbprint()
            if key_thumbprint not in seen:
                seen.add(key_thumbprint)
                keys.append(key)
    return keys


def common_nonce(results: Iterable[ProofResult]) -> str | None:
    """The one ``c_nonce`` all proofs of a request carry; different nonces are refused."""
    nonces = {result.nonce for result in results}
    if len(nonces) > 1:
        raise OID4VCIError("invalid_proof", "all proofs of a request must use the same c_nonce")
    return nonces.pop() if nonces else None


# -- credential response (§8.3) and deferred response (§9.2) ------------------------------------


@dataclass(frozen=True)
class CredentialResponse:
    credentials: tuple[str | dict[str, Any], ...] = ()
    notification_id: str | None = None
    transaction_id: str | None = None
    interval: int | float | None = None


def credential_response(
    credentials: Sequence[str | Mapping[str, Any]], notification_id: str | None = None
) -> dict[str, Any]:
    """§8.3 immediate response body (200): ``credentials`` and optional ``notification_id``."""
    if not credentials:
        raise ValueError("a credential response carries at least one credential")
    body: dict[str, Any] = {
        "credentials": [{"credential": c if isinstance(c, str) else dict(c)} for c in credentials]
    }
    if notification_id is not None:
        body["notification_id"] = notification_id
    return body


def deferred_response(transaction_id: str, interval: int) -> dict[str, Any]:
    """§8.3 / §9.2 deferred response body (202)."""
    if type(interval) is not int or interval <= 0:
        raise ValueError("interval must be a positive number of seconds")
    return {"transaction_id": transaction_id, "interval": interval}


def parse_credential_response(
    obj: Any, *, expected_transaction_id: str | None = None
) -> CredentialResponse:
    """Wallet side of §8.3 / §9.2.

    ``credentials`` XOR ``transaction_id``; ``interval`` (positive) exactly with
    ``transaction_id``; ``notification_id`` only with ``credentials``. For a deferred
    request, ``expected_transaction_id`` must be echoed by a 202 answer.
    """
    error = "invalid_credential_response"
    body = _json_object(obj, "credential response", error)
    has_credentials = "credentials" in body
    if has_credentials == ("transaction_id" in body):
        raise OID4VCIError(error, "expected exactly one of credentials and transaction_id")
    if has_credentials:
        if "interval" in body:
            raise OID4VCIError(error, "interval is only allowed with transaction_id")
        entries = body["credentials"]
        if not isinstance(entries, list) or not entries or len(entries) > 10 * MAX_LIST_LENGTH:
            raise OID4VCIError(error, "credentials must be a non-empty array")
        credentials = []
        for entry in entries:
            credential = _object(entry, "credentials entry", error).get("credential")
            if not (isinstance(credential, str) and credential) and not isinstance(
                credential, dict
            ):
                raise OID4VCIError(error, "each credential must be a string or an object")
            credentials.append(credential)
        return CredentialResponse(
            credentials=tuple(credentials),
            notification_id=_optional_string(body, "notification_id", error),
        )
    transaction_id = _string(body["transaction_id"], "transaction_id", error)
    if expected_transaction_id is not None and transaction_id != expected_transaction_id:
        raise OID4VCIError(error, "transaction_id differs from the one requested")
    interval = body.get("interval")
    if type(interval) not in (int, float) or not 0 < interval < 10**9:
        raise OID4VCIError(error, "interval must be a positive number with transaction_id")
    if "notification_id" in body:
        raise OID4VCIError(error, "notification_id is only allowed with credentials")
    return CredentialResponse(transaction_id=transaction_id, interval=interval)


# -- notification (§11) ------------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationRequest:
    notification_id: str
    event: str
    event_description: str | None = None


def parse_notification_request(body: Any) -> NotificationRequest:
    """§11.1: the caller answers ``invalid_notification_id`` for an unknown id and 204
    (idempotently) otherwise."""
    error = "invalid_notification_request"
    request = _object(body, "notification request", error)
    notification_id = _string(request.get("notification_id"), "notification_id", error)
    event = request.get("event")
    if event not in NOTIFICATION_EVENTS:
        raise OID4VCIError(error, "event must be credential_accepted, _failure or _deleted")
    description = request.get("event_description")
    if description is not None and (
        not isinstance(description, str)
        or len(description) > MAX_STRING_LENGTH
        or not is_ascii_description(description)
    ):
        raise OID4VCIError(error, "event_description must be short printable ASCII")
    return NotificationRequest(notification_id, event, description)


def notification_request(
    notification_id: str, event: str, event_description: str | None = None
) -> dict[str, str]:
    """Wallet side of §11.1: the request body."""
    body = {"notification_id": notification_id, "event": event}
    if event_description is not None:
        body["event_description"] = event_description
    parse_notification_request(body)
    return body
