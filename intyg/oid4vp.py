"""OpenID for Verifiable Presentations 1.0 (Final, with the errata set 1 tightenings).

Both sides of the protocol, without I/O or state:

- verifier: client identifiers (§5.9), the Authorization Request as a signed Request Object
  (§5, JAR RFC 9101) and its cross-device link, the Response Endpoint's side of
  ``direct_post`` / ``direct_post.jwt`` (§8.2, §8.3), VP Token shape and presentation checks
  (§8.6), ``response_code`` and the redirect back (§13.3), Verifier metadata (§11);
- wallet: request links (QR / deep link), Request Object verification per client identifier
  prefix (§5.9.3), request parameters (§5.1-§5.3), choice of the response encryption key
  (§8.3), the Authorization Response (§8) and error responses (§8.5), Wallet metadata (§10).

Single-use values (``nonce``, ``state``, ``wallet_nonce``, ``response_code``) are generated
here and *returned*; the caller stores and consumes them atomically.

Every refusal is an :class:`OID4VPError` whose ``error`` is the protocol error code and whose
``description`` is ASCII-safe. On the wallet side ``authenticated`` says whether the request
was authentic when it failed: only then may the wallet tell the verifier (security.md: a
request that is not authentic gets *nothing* sent to its ``response_uri``).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from intyg import dcql, did, jose, jwe, sdjwt, sdjwt_vc, strict_json, x509

# -- constants ------------------------------------------------------------------------------

RESPONSE_TYPE = "vp_token"
DIRECT_POST = "direct_post"
DIRECT_POST_JWT = "direct_post.jwt"
RESPONSE_MODES = frozenset({DIRECT_POST, DIRECT_POST_JWT})
REQUEST_OBJECT_TYP = "oauth-authz-req+jwt"
REQUEST_OBJECT_MEDIA_TYPE = "application/oauth-authz-req+jwt"
#: §5.8: ``aud`` of a Request Object under static discovery.
SELF_ISSUED_AUDIENCE = "https://self-issued.me/v2"
OPENID4VP_SCHEME = "openid4vp://"
HAIP_VP_SCHEME = "haip-vp://"
REQUEST_URI_METHODS = frozenset({"get", "post"})

PREFIX_PRE_REGISTERED = "pre-registered"
PREFIX_REDIRECT_URI = "redirect_uri"
PREFIX_X509_SAN_DNS = "x509_san_dns"
PREFIX_X509_HASH = "x509_hash"
PREFIX_DID = "decentralized_identifier"
PREFIX_VERIFIER_ATTESTATION = "verifier_attestation"
PREFIX_OPENID_FEDERATION = "openid_federation"
PREFIX_ORIGIN = "origin"
#: §5.9.3 prefixes (``origin`` is reserved for the DC API and refused in requests).
CLIENT_ID_PREFIXES = frozenset(
    {
        PREFIX_REDIRECT_URI,
        PREFIX_X509_SAN_DNS,
        PREFIX_X509_HASH,
        PREFIX_DID,
        PREFIX_VERIFIER_ATTESTATION,
        PREFIX_OPENID_FEDERATION,
    }
)
#: What this implementation can authenticate.
SUPPORTED_PREFIXES = frozenset(
    {PREFIX_PRE_REGISTERED, PREFIX_REDIRECT_URI, PREFIX_X509_SAN_DNS, PREFIX_X509_HASH, PREFIX_DID}
)
#: Prefixes whose requests MUST be signed (§5.9.3).
SIGNED_PREFIXES = frozenset({PREFIX_X509_SAN_DNS, PREFIX_X509_HASH, PREFIX_DID})

FORMAT_SD_JWT_VC = dcql.FORMAT_SD_JWT_VC
FORMAT_JWT_VC_JSON = dcql.FORMAT_JWT_VC_JSON
DEFAULT_VP_FORMATS: dict[str, dict[str, list[str]]] = {
    FORMAT_SD_JWT_VC: {"sd-jwt_alg_values": ["ES256"], "kb-jwt_alg_values": ["ES256"]},
    FORMAT_JWT_VC_JSON: {"alg_values": ["ES256"]},
}
#: HAIP 1.0: verifiers list both; wallets prefer A256GCM.
ENC_PREFERENCE = ("A256GCM", "A128GCM")
DEFAULT_ENC = "A128GCM"  # §5.1 default of encrypted_response_enc_values_supported

OPAQUE_VALUE_BYTES = 32  # 256 bits for nonces, states and response codes (>= 128 required)
MIN_NONCE_LENGTH = 22  # 128 bits of base64url
MAX_LINK_LENGTH = 8 * 1024
MAX_VALUE_LENGTH = 2048
MAX_FORM_BYTES = 2 * 1024 * 1024
MAX_PRESENTATIONS = 32
DEFAULT_REQUEST_LIFETIME = 300

_NOT_NQSCHAR = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
#: §5.2 nonce / state: "ASCII URL safe characters".
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")

#: ``did_resolver(kid) -> Key``: the key of the verification method a DID URL names.
DIDResolver = Callable[[str], jose.Key]


class OID4VPError(ValueError):
    """A refused OpenID4VP message.

    ``error`` is the protocol error code (``invalid_request``, ``invalid_client``,
    ``access_denied``, ``vp_formats_not_supported``, ``invalid_request_uri_method``,
    ``invalid_transaction_data``, ``invalid_scope``, ``wallet_unavailable``, ...),
    ``description`` ASCII text safe to send. Wallet side: ``authenticated`` is true when the
    request had been authenticated before it failed, and ``response_uri`` / ``state`` are
    then where and how the error response may be sent.
    """

    def __init__(self, error: str, description: str) -> None:
        self.error = error
        self.description = _NOT_NQSCHAR.sub("?", description)[:300]
        self.authenticated = False
        self.response_uri: str | None = None
        self.state: str | None = None
        super().__init__(f"{error}: {self.description}")


def _fail(description: str, error: str = "invalid_request") -> OID4VPError:
    return OID4VPError(error, description)


# -- small helpers --------------------------------------------------------------------------


def new_nonce() -> str:
    """§5.2 ``nonce`` (and ``state``, ``wallet_nonce``): 256 random bits, URL-safe."""
    return secrets.token_urlsafe(OPAQUE_VALUE_BYTES)


new_state = new_nonce
new_wallet_nonce = new_nonce


def new_response_code() -> str:
    """§13.3 ``response_code``: a fresh secret of 256 bits for the redirect back."""
    return secrets.token_urlsafe(OPAQUE_VALUE_BYTES)


def _opaque(value: Any, what: str, *, minimum: int = 1) -> str:
    """§5.2: ``nonce`` / ``state`` use only A-Z a-z 0-9 - . _ ~."""
    if not isinstance(value, str) or not _URL_SAFE.fullmatch(value):
        raise _fail(f"{what} must be a string of A-Z a-z 0-9 - . _ ~")
    if len(value) > MAX_VALUE_LENGTH:
        raise _fail(f"{what} is too long")
    if len(value) < minimum:
        raise _fail(f"{what} is too short (at least 128 bits)")
    return value


def _https_url(value: Any, what: str, *, allow_http: bool = False) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_VALUE_LENGTH:
        raise _fail(f"{what} must be a URL")
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise _fail(f"{what} must be printable ASCII")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise _fail(f"{what} is not a valid URL") from exc
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.fragment:
        raise _fail(f"{what} must be an https URL without fragment")
    return value


def _json_object(value: Any, what: str) -> dict[str, Any]:
    """A JSON object, given as an object (Request Object) or as JSON text (form/query)."""
    if isinstance(value, str):
        try:
            value = strict_json.loads(value, max_bytes=dcql.MAX_QUERY_BYTES)
        except strict_json.StrictJSONError as exc:
            raise _fail(f"{what}: {exc}") from exc
    if not isinstance(value, dict):
        raise _fail(f"{what} must be a JSON object")
    return value


def _parse_form(form: str | bytes | Mapping[str, str] | Sequence[tuple[str, str]]) -> dict:
    """``application/x-www-form-urlencoded`` (UTF-8); a repeated parameter is refused."""
    if isinstance(form, bytes):
        if len(form) > MAX_FORM_BYTES:
            raise _fail("request body too large")
        try:
            form = form.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail("request body is not UTF-8") from exc
    if isinstance(form, str):
        if len(form) > MAX_FORM_BYTES:
            raise _fail("request body too large")
        try:
            pairs = parse_qsl(
                form, keep_blank_values=True, strict_parsing=bool(form), max_num_fields=64
            )
        except ValueError as exc:
            raise _fail("malformed form body") from exc
    elif isinstance(form, Mapping):
        pairs = list(form.items())
    else:
        pairs = list(form)
    result: dict[str, str] = {}
    for name, value in pairs:
        if name in result:
            raise _fail(f"parameter {name[:40]!r} is repeated")
        if not isinstance(value, str):
            raise _fail(f"parameter {name[:40]!r} must be a string")
        result[name] = value
    return result


# -- client identifiers (§5.9) ----------------------------------------------------------


def parse_client_id(client_id: Any) -> tuple[str, str]:
    """§5.9.1: ``(prefix, original client id)``.

    Without a ``:`` or with an unknown prefix the client is pre-registered (§5.9.2) and the
    original id is the whole value. ``origin:`` is reserved for the DC API: refused.
    """
    if not isinstance(client_id, str) or not client_id or len(client_id) > MAX_VALUE_LENGTH:
        raise _fail("client_id must be a non-empty string")
    if not _PRINTABLE_ASCII.fullmatch(client_id):
        raise _fail("client_id must be printable ASCII")
    prefix, colon, original = client_id.partition(":")
    if not colon:
        return PREFIX_PRE_REGISTERED, client_id
    if prefix == PREFIX_ORIGIN:
        raise _fail("the origin client identifier prefix is not accepted in requests")
    if prefix not in CLIENT_ID_PREFIXES:
        return PREFIX_PRE_REGISTERED, client_id
    if not original:
        raise _fail("client_id has an empty original client identifier")
    return prefix, original


def client_id_x509_hash(leaf: x509.Certificate | bytes) -> str:
    """§5.9.3 ``x509_hash:`` + base64url SHA-256 of the DER leaf (HAIP 1.0 mandates it)."""
    return f"{PREFIX_X509_HASH}:{x509.x509_hash(leaf)}"


def client_id_x509_san_dns(dns_name: str) -> str:
    return f"{PREFIX_X509_SAN_DNS}:{dns_name}"


def client_id_did(did_value: str) -> str:
    return f"{PREFIX_DID}:{did_value}"


def client_id_redirect_uri(uri: str) -> str:
    return f"{PREFIX_REDIRECT_URI}:{uri}"


# -- verifier: the Authorization Request (§5) ------------------------------------------------


def authorization_request(
    *,
    client_id: str,
    response_uri: str,
    dcql_query: dcql.DCQLQuery | Mapping[str, Any],
    nonce: str | None = None,
    state: str | None = None,
    response_mode: str = DIRECT_POST_JWT,
    encryption_jwks: Sequence[Mapping[str, Any]] = (),
    enc_values: Sequence[str] = ("A128GCM", "A256GCM"),
    vp_formats_supported: Mapping[str, Any] | None = None,
    wallet_nonce: str | None = None,
    now: int | None = None,
    lifetime: int = DEFAULT_REQUEST_LIFETIME,
) -> dict[str, Any]:
    """The claims of a Request Object (§5.1, §5.2, §8.2, §8.3).

    ``nonce`` and ``state`` default to fresh values; read them from the result and store
    them with the transaction. ``encryption_jwks`` are the public halves of
    :func:`intyg.jwe.new_encryption_key` (required for ``direct_post.jwt``).
    """
    prefix, original = parse_client_id(client_id)
    if response_mode not in RESPONSE_MODES:
        raise _fail("response_mode must be direct_post or direct_post.jwt")
    _https_url(response_uri, "response_uri", allow_http=True)
    _check_response_uri_for_prefix(prefix, original, response_uri, trusted=False)
    query = dcql_query if isinstance(dcql_query, dcql.DCQLQuery) else _dcql(dcql_query)
    metadata: dict[str, Any] = {
        "vp_formats_supported": dict(vp_formats_supported or DEFAULT_VP_FORMATS)
    }
    if response_mode == DIRECT_POST_JWT:
        if not encryption_jwks:
            raise _fail("direct_post.jwt needs at least one encryption key")
        try:
            keys = [jwe.check_encryption_jwk(jwk) for jwk in encryption_jwks]
        except jwe.JWEError as exc:
            raise _fail(f"encryption_jwks: {exc}") from exc
        if not set(enc_values) <= jwe.ENC_VALUES or not enc_values:
            raise _fail("enc_values must be a non-empty subset of A128GCM, A256GCM")
        metadata["jwks"] = {"keys": keys}
        metadata["encrypted_response_enc_values_supported"] = list(enc_values)
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "response_type": RESPONSE_TYPE,
        "client_id": client_id,
        "response_mode": response_mode,
        "response_uri": response_uri,
        "nonce": _opaque(nonce, "nonce", minimum=MIN_NONCE_LENGTH) if nonce else new_nonce(),
        "state": _opaque(state, "state", minimum=MIN_NONCE_LENGTH) if state else new_state(),
        "dcql_query": query.to_json(),
        "client_metadata": metadata,
        "aud": SELF_ISSUED_AUDIENCE,
        "iat": issued_at,
        "exp": issued_at + lifetime,
    }
    if wallet_nonce is not None:
        claims["wallet_nonce"] = _opaque(wallet_nonce, "wallet_nonce")
    return claims


def sign_request_object(
    claims: Mapping[str, Any], key: jose.Key, *, x5c: Sequence[str] | None = None
) -> str:
    """A signed Request Object (§5, RFC 9101) with ``typ`` ``oauth-authz-req+jwt``.

    ``x5c`` for the ``x509_*`` prefixes (leaf first, no trust anchor: HAIP 1.0); without it
    the key's ``kid`` goes in the header (a DID URL for ``decentralized_identifier``).
    """
    header: dict[str, Any] = {"typ": REQUEST_OBJECT_TYP}
    if x5c:
        header["x5c"] = list(x5c)
    elif key.kid:
        header["kid"] = key.kid
    return jose.encode_jws(claims, key, header)


def request_uri_link(
    client_id: str,
    request_uri: str,
    scheme: str = OPENID4VP_SCHEME,
    request_uri_method: str | None = None,
) -> str:
    """The cross-device QR / deep link: only ``client_id``, ``request_uri`` (and
    ``request_uri_method``), §5.10 and RFC 9101 §5.2."""
    params = {"client_id": client_id, "request_uri": request_uri}
    if request_uri_method is not None:
        if request_uri_method not in REQUEST_URI_METHODS:
            raise _fail("request_uri_method must be get or post", "invalid_request_uri_method")
        params["request_uri_method"] = request_uri_method
    query = urlencode(params, quote_via=quote, safe="")
    if scheme.endswith("://") or scheme.endswith(":"):
        return f"{scheme}?{query}"
    return f"{scheme}{'&' if '?' in scheme else '?'}{query}"


# -- wallet: request links and Request Objects (§5) ----------------------------------------


@dataclass(frozen=True)
class RequestLink:
    """A parsed wallet invocation: by reference, by value, or plain parameters."""

    client_id: str
    request_uri: str | None = None
    request_uri_method: str | None = None
    request: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)


def parse_request_link(url: str, *, allow_http: bool = False) -> RequestLink:
    """Strictly parse an ``openid4vp://`` (or ``haip-vp://``, or https) invocation (T068).

    Size-limited, printable ASCII only (no CR/LF), no repeated parameters. ``request`` and
    ``request_uri`` exclude each other; ``request_uri_method`` is ``get`` or ``post``
    (case-sensitive, §5.1) and only with ``request_uri``.
    """
    if not isinstance(url, str) or not url:
        raise _fail("request link must be a non-empty string")
    if len(url) > MAX_LINK_LENGTH:
        raise _fail("request link is too long")
    if not _PRINTABLE_ASCII.fullmatch(url):
        raise _fail("request link must be printable ASCII without whitespace")
    _, question, query = url.partition("?")
    if not question:
        raise _fail("request link has no parameters")
    params = _parse_form(query.partition("#")[0])
    client_id = params.get("client_id")
    parse_client_id(client_id)
    assert isinstance(client_id, str)  # checked by parse_client_id
    request_uri = params.get("request_uri")
    request = params.get("request")
    method = params.get("request_uri_method")
    if request_uri is not None and request is not None:
        raise _fail("request and request_uri must not both be present")
    if method is not None:
        if request_uri is None:
            raise _fail("request_uri_method without request_uri")
        if method not in REQUEST_URI_METHODS:
            raise _fail("request_uri_method must be get or post", "invalid_request_uri_method")
    if request_uri is not None:
        _https_url(request_uri, "request_uri", allow_http=allow_http)
        return RequestLink(client_id, request_uri, method)
    if request is not None:
        return RequestLink(client_id, request=request)
    return RequestLink(client_id, params=params)


def request_uri_post_body(
    *, wallet_metadata: Mapping[str, Any] | None = None, wallet_nonce: str | None = None
) -> dict[str, str]:
    """§5.10 ``request_uri_method=post``: the form the wallet POSTs to the request URI
    (``Accept: application/oauth-authz-req+jwt``). Keep ``wallet_nonce`` to verify the echo."""
    body: dict[str, str] = {}
    if wallet_metadata is not None:
        body["wallet_metadata"] = strict_json.dumps(wallet_metadata)
    if wallet_nonce is not None:
        body["wallet_nonce"] = _opaque(wallet_nonce, "wallet_nonce")
    return body


@dataclass(frozen=True)
class RegisteredClient:
    """A pre-registered verifier (§5.9.2): keys that sign its requests, its metadata."""

    client_id: str
    keys: tuple[jose.Key, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    response_uris: tuple[str, ...] = ()
    allow_unsigned: bool = False


ClientRegistry = Mapping[str, RegisteredClient] | Callable[[str], RegisteredClient | None]


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated Authorization Request, as the wallet acts on it."""

    client_id: str
    client_id_prefix: str
    original_client_id: str
    response_mode: str
    response_uri: str
    nonce: str
    state: str | None
    dcql_query: dcql.DCQLQuery
    client_metadata: Mapping[str, Any]
    #: Chosen verifier key and ``enc`` for ``direct_post.jwt`` (None for ``direct_post``).
    encryption_jwk: Mapping[str, Any] | None
    encryption_enc: str | None
    signed: bool
    #: The validated ``x5c`` chain for the x509 prefixes (display the verifier from it).
    certificate_chain: x509.ValidatedChain | None = None
    registered_client: RegisteredClient | None = None
    wallet_nonce: str | None = None

    @property
    def audience(self) -> str:
        """KB-JWT / VP ``aud``: the FULL client identifier, prefix included (§14.1.2)."""
        return self.client_id


def verify_request_object(
    request_jwt: str,
    *,
    client_id_from_link: str,
    x5c_trust_anchors: Sequence[x509.Certificate] | None = None,
    did_resolver: DIDResolver | None = None,
    client_registry: ClientRegistry | None = None,
    trusted_client_ids: Collection[str] = (),
    wallet_nonce: str | None = None,
    supported_prefixes: Collection[str] = SUPPORTED_PREFIXES,
    wallet_formats: Collection[str] = (FORMAT_SD_JWT_VC, FORMAT_JWT_VC_JSON),
    scopes: Mapping[str, Mapping[str, Any]] | None = None,
    audiences: Collection[str] | None = (SELF_ISSUED_AUDIENCE,),
    now: int | None = None,
    allow_http: bool = False,
) -> AuthorizationRequest:
    """Authenticate a Request Object and validate its parameters (§5, §5.9.3, RFC 9101).

    ``client_id_from_link`` is the ``client_id`` of the invocation, which must equal the
    claim exactly (§5.10.1). Trust inputs are injected: ``x5c_trust_anchors`` for the x509
    prefixes, ``did_resolver(kid) -> Key`` for DIDs, ``client_registry`` for pre-registered
    clients. ``trusted_client_ids`` may use any response URI (§5.9.3 ``x509_san_dns``).
    ``wallet_nonce`` is the value the wallet POSTed to the request URI, if it did.
    """
    try:
        jws = jose.parse_jws(request_jwt)
        jose.check_header(jws, typ=REQUEST_OBJECT_TYP)  # T057: absent or other typ refused
        claims = jws.claims()
    except jose.JoseError as exc:
        raise _fail(f"request object: {exc}") from exc
    client_id = claims.get("client_id")
    if client_id != client_id_from_link or not isinstance(client_id, str):
        raise _fail("client_id of the request object differs from the request's client_id")
    prefix, original = parse_client_id(client_id)
    if prefix not in supported_prefixes:
        raise _fail("unsupported client identifier prefix")
    registered = _registered(client_registry, client_id)
    chain = _authenticate(jws, prefix, original, registered, x5c_trust_anchors, did_resolver, now)
    try:
        if audiences is not None and "aud" in claims and claims["aud"] not in audiences:
            raise jose.JoseError("aud is not this wallet")
        jose.check_time_claims(claims, now=now)
    except jose.JoseError as exc:
        raise _fail(f"request object: {exc}") from exc
    if wallet_nonce is not None and claims.get("wallet_nonce") != wallet_nonce:
        raise _fail("request object does not echo the wallet_nonce")
    # Authentic from here on: failures may be reported to the verifier.
    return _with_context(
        claims,
        lambda: _request_parameters(
            claims,
            prefix=prefix,
            original=original,
            signed=True,
            chain=chain,
            registered=registered,
            trusted=client_id in trusted_client_ids,
            wallet_formats=wallet_formats,
            scopes=scopes,
            wallet_nonce=wallet_nonce,
            allow_http=allow_http,
        ),
        allow_http=allow_http,
    )


def parse_authorization_request(
    params: Mapping[str, Any],
    *,
    client_registry: ClientRegistry | None = None,
    supported_prefixes: Collection[str] = SUPPORTED_PREFIXES,
    wallet_formats: Collection[str] = (FORMAT_SD_JWT_VC, FORMAT_JWT_VC_JSON),
    scopes: Mapping[str, Mapping[str, Any]] | None = None,
    allow_http: bool = False,
) -> AuthorizationRequest:
    """An unsigned request given as plain parameters (:attr:`RequestLink.params`).

    Only the ``redirect_uri`` prefix, and pre-registered clients registered as sending
    unsigned requests, may do this; the signed-only prefixes are refused (§5.9.3).
    """
    prefix, original = parse_client_id(params.get("client_id"))
    if prefix not in supported_prefixes:
        raise _fail("unsupported client identifier prefix")
    registered = _registered(client_registry, params["client_id"])
    if prefix in SIGNED_PREFIXES:
        raise _fail("this client identifier prefix requires a signed request")
    if prefix == PREFIX_PRE_REGISTERED and (registered is None or not registered.allow_unsigned):
        raise _fail("unsigned request from a client that must sign", "invalid_client")
    return _with_context(
        params,
        lambda: _request_parameters(
            params,
            prefix=prefix,
            original=original,
            signed=False,
            chain=None,
            registered=registered,
            trusted=False,
            wallet_formats=wallet_formats,
            scopes=scopes,
            wallet_nonce=None,
            allow_http=allow_http,
        ),
        allow_http=allow_http,
    )


def _with_context(
    params: Mapping[str, Any], build: Callable[[], AuthorizationRequest], *, allow_http: bool
) -> AuthorizationRequest:
    """Mark failures of an authentic request, with where its error response could go."""
    try:
        return build()
    except OID4VPError as exc:
        exc.authenticated = True
        uri, state = params.get("response_uri"), params.get("state")
        try:
            exc.response_uri = _https_url(uri, "response_uri", allow_http=allow_http)
            exc.state = _opaque(state, "state") if state is not None else None
        except OID4VPError:
            exc.response_uri = exc.state = None
        raise


def _registered(registry: ClientRegistry | None, client_id: str) -> RegisteredClient | None:
    if registry is None:
        return None
    if isinstance(registry, Mapping):
        return registry.get(client_id)
    return registry(client_id)


def _authenticate(
    jws: jose.CompactJWS,
    prefix: str,
    original: str,
    registered: RegisteredClient | None,
    anchors: Sequence[x509.Certificate] | None,
    did_resolver: DIDResolver | None,
    now: int | None,
) -> x509.ValidatedChain | None:
    """§5.9.3: the key that may sign for this client identifier, and the signature."""
    chain = None
    if prefix in (PREFIX_X509_SAN_DNS, PREFIX_X509_HASH):
        chain = _x509_chain(jws.header, prefix, original, anchors, now)
        key = chain.key
    elif prefix == PREFIX_DID:
        key = _did_key(jws.header, original, did_resolver)
    elif prefix == PREFIX_REDIRECT_URI:
        raise _fail("requests with the redirect_uri prefix cannot be signed")
    else:
        if registered is None:
            raise _fail("unknown client", "invalid_client")
        key = _registered_key(jws.header, registered)
    try:
        jose.verify_signature(jws, key)
    except jose.JoseError as exc:
        raise _fail(f"request object: {exc}") from exc
    return chain


def _x509_chain(
    header: Mapping[str, Any],
    prefix: str,
    original: str,
    anchors: Sequence[x509.Certificate] | None,
    now: int | None,
) -> x509.ValidatedChain:
    if not anchors:
        raise _fail("no trust anchors for x509 client identifiers")
    if "x5c" not in header:
        raise _fail("request object needs an x5c header for this client identifier")
    try:
        if prefix == PREFIX_X509_HASH:
            leaf = x509.certs_from_x5c(header["x5c"])[0]
            if x509.x509_hash(leaf) != original:
                raise _fail("x509_hash does not match the leaf certificate")
            return x509.validate_x5c(header["x5c"], anchors, now=now)
        return x509.validate_x5c(header["x5c"], anchors, now=now, dns_name=original)
    except x509.X509Error as exc:
        raise _fail(f"x5c: {exc}") from exc


def _did_key(header: Mapping[str, Any], did_value: str, resolver: DIDResolver | None) -> jose.Key:
    if resolver is None:
        raise _fail("no DID resolver for decentralized_identifier clients")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise _fail("request object needs a kid naming a verification method of the DID")
    try:
        kid_did, _, fragment = did.split_did_url(kid)
        client_did, _, _ = did.split_did_url(did_value)
        if kid_did != client_did or fragment is None:
            raise _fail("request object kid is not a verification method of the client DID")
        return resolver(kid)
    except did.DIDError as exc:
        raise _fail(f"DID: {exc}") from exc


def _registered_key(header: Mapping[str, Any], client: RegisteredClient) -> jose.Key:
    keys = [k for k in client.keys if header.get("kid") in (None, k.kid)]
    if len(keys) != 1:
        raise _fail("no unambiguous registered key for this request", "invalid_client")
    return keys[0]


def _check_response_uri_for_prefix(prefix: str, original: str, uri: str, *, trusted: bool) -> None:
    """§5.9.3: ``redirect_uri`` — the URI *is* the client id (T059); ``x509_san_dns`` —
    its host is the DNS name unless the client is trusted."""
    if prefix == PREFIX_REDIRECT_URI and uri != original:
        raise _fail("response_uri must equal the redirect_uri client identifier")
    if prefix == PREFIX_X509_SAN_DNS and not trusted:
        host = urlsplit(uri).hostname or ""
        if host.lower() != original.lower():
            raise _fail("response_uri host must equal the x509_san_dns client identifier")


def _request_parameters(
    params: Mapping[str, Any],
    *,
    prefix: str,
    original: str,
    signed: bool,
    chain: x509.ValidatedChain | None,
    registered: RegisteredClient | None,
    trusted: bool,
    wallet_formats: Collection[str],
    scopes: Mapping[str, Mapping[str, Any]] | None,
    wallet_nonce: str | None,
    allow_http: bool,
) -> AuthorizationRequest:
    """§5.1-§5.3, §8.2, §8.3 on the parameters of an authenticated request."""
    if "transaction_data" in params:
        # §5.1: a wallet that does not support transaction data MUST reject (T063).
        raise _fail("transaction_data is not supported", "invalid_transaction_data")
    if params.get("response_type") != RESPONSE_TYPE:
        raise _fail("response_type must be vp_token", "unsupported_response_type")
    response_mode = params.get("response_mode")
    if response_mode not in RESPONSE_MODES:
        raise _fail("response_mode must be direct_post or direct_post.jwt")
    if "redirect_uri" in params:
        raise _fail("redirect_uri must not be present with direct_post")
    response_uri = params.get("response_uri")
    if response_uri is None and prefix == PREFIX_REDIRECT_URI:
        response_uri = original  # §5.9.3: may be omitted with this prefix
    response_uri = _https_url(response_uri, "response_uri", allow_http=allow_http)
    _check_response_uri_for_prefix(prefix, original, response_uri, trusted=trusted)
    if registered is not None and registered.response_uris:
        if response_uri not in registered.response_uris:
            raise _fail("response_uri is not registered for this client")
    if "nonce" not in params:
        raise _fail("nonce is required")  # T061
    nonce = _opaque(params["nonce"], "nonce")
    state = _opaque(params["state"], "state") if params.get("state") is not None else None
    query = _query(params, scopes)
    metadata = _client_metadata(params, registered)
    _check_formats(query, metadata, wallet_formats)
    jwk = enc = None
    if response_mode == DIRECT_POST_JWT:
        jwk, enc = choose_encryption(metadata)
    return AuthorizationRequest(
        client_id=params["client_id"],
        client_id_prefix=prefix,
        original_client_id=original,
        response_mode=response_mode,
        response_uri=response_uri,
        nonce=nonce,
        state=state,
        dcql_query=query,
        client_metadata=metadata,
        encryption_jwk=jwk,
        encryption_enc=enc,
        signed=signed,
        certificate_chain=chain,
        registered_client=registered,
        wallet_nonce=wallet_nonce,
    )


def _dcql(value: Any) -> dcql.DCQLQuery:
    try:
        return dcql.parse_query(value)
    except dcql.DCQLError as exc:
        raise _fail(str(exc)) from exc


def _query(
    params: Mapping[str, Any], scopes: Mapping[str, Mapping[str, Any]] | None
) -> dcql.DCQLQuery:
    """§5.1 / §5.5: exactly one of ``dcql_query`` and a scope aliasing a DCQL query (T062)."""
    has_query, has_scope = "dcql_query" in params, "scope" in params
    if has_query and has_scope:
        raise _fail("dcql_query and scope must not both be present")
    if has_query:
        return _dcql(_json_object(params["dcql_query"], "dcql_query"))
    if not has_scope:
        raise _fail("dcql_query or a scope is required")
    scope = params["scope"]
    if not isinstance(scope, str) or not scope.split():
        raise _fail("scope must be a non-empty string", "invalid_scope")
    credentials: list[Any] = []
    for value in scope.split():
        if scopes is None or value not in scopes:
            raise _fail("unknown scope value", "invalid_scope")
        credentials.extend(scopes[value].get("credentials", ()))
    return _dcql({"credentials": credentials})


def _client_metadata(
    params: Mapping[str, Any], registered: RegisteredClient | None
) -> Mapping[str, Any]:
    """§5.1 ``client_metadata``; a client whose metadata we know must not send it (T066)."""
    if "client_metadata" not in params:
        return registered.metadata if registered is not None else {}
    if registered is not None:
        raise _fail("client_metadata sent by a client whose metadata is known", "invalid_client")
    return _json_object(params["client_metadata"], "client_metadata")


def _check_formats(
    query: dcql.DCQLQuery, metadata: Mapping[str, Any], wallet_formats: Collection[str]
) -> None:
    """§8.5 ``vp_formats_not_supported``: no requested format this wallet can present."""
    verifier_formats = metadata.get("vp_formats_supported")
    if verifier_formats is not None and not isinstance(verifier_formats, dict):
        raise _fail("vp_formats_supported must be a JSON object")
    requested = {query_item.format for query_item in query.credentials}
    usable = requested.intersection(wallet_formats)
    if verifier_formats is not None:
        usable.intersection_update(verifier_formats)
    if not usable:
        raise _fail("none of the requested formats is supported", "vp_formats_not_supported")


def choose_encryption(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """§8.3: the verifier key to encrypt to and the ``enc`` to use.

    Only keys :func:`intyg.jwe.check_encryption_jwk` accepts are usable (P-256, ``alg``
    ``ECDH-ES``, ``use`` absent or ``enc``, ``kid``, no private parts); none usable is an
    error, never a fallback to plaintext (T067). ``enc``: A256GCM preferred (HAIP 1.0).
    """
    jwks = metadata.get("jwks")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise _fail("direct_post.jwt needs client_metadata.jwks")
    usable = []
    for candidate in keys[: dcql.MAX_LIST_LENGTH]:
        try:
            usable.append(jwe.check_encryption_jwk(candidate))
        except jwe.JWEError:
            continue
    if not usable:
        raise _fail("client_metadata.jwks has no usable encryption key")
    offered = metadata.get("encrypted_response_enc_values_supported", [DEFAULT_ENC])
    if not isinstance(offered, list) or not offered:
        raise _fail("encrypted_response_enc_values_supported must be a non-empty array")
    enc = next((value for value in ENC_PREFERENCE if value in offered), None)
    if enc is None:
        raise _fail("no supported content encryption algorithm offered")
    return usable[0], enc


# -- wallet: the Authorization Response (§8) -----------------------------------------------


def vp_token(presentations: Mapping[str, Sequence[str | Mapping[str, Any]]]) -> dict[str, list]:
    """§8.1 ``vp_token``: credential query id -> non-empty array of presentations."""
    token: dict[str, list] = {}
    for query_id, items in presentations.items():
        if not isinstance(items, list | tuple) or not items:
            raise _fail("each vp_token entry must be a non-empty array")
        token[query_id] = list(items)
    if not token:
        raise _fail("vp_token must not be empty")
    return token


def direct_post_body(vp_token_value: Mapping[str, Any], state: str | None = None) -> dict[str, str]:
    """§8.2 ``direct_post`` form fields: ``vp_token`` as JSON text, ``state`` if sent."""
    body = {"vp_token": strict_json.dumps(vp_token_value)}
    if state is not None:
        body["state"] = state
    return body


def encrypt_response(params: Mapping[str, Any], jwk: Mapping[str, Any], enc: str) -> dict[str, str]:
    """§8.3.1 ``direct_post.jwt``: the single form field ``response`` = JWE of ``params``."""
    try:
        return {"response": jwe.encrypt(params, jwk, enc=enc)}
    except jwe.JWEError as exc:
        raise _fail(f"response encryption: {exc}") from exc


def authorization_response(
    request: AuthorizationRequest, vp_token_value: Mapping[str, Any]
) -> dict[str, str]:
    """The form to POST to ``request.response_uri``, encrypted when the mode asks for it.

    A ``direct_post.jwt`` request without a chosen key is refused: a ``vp_token`` never goes
    out unencrypted when encryption was requested (T067).
    """
    if request.response_mode == DIRECT_POST:
        return direct_post_body(vp_token_value, request.state)
    if request.encryption_jwk is None or request.encryption_enc is None:
        raise _fail("no encryption key for a direct_post.jwt response")
    params: dict[str, Any] = {"vp_token": dict(vp_token_value)}
    if request.state is not None:
        params["state"] = request.state
    return encrypt_response(params, request.encryption_jwk, request.encryption_enc)


def error_response(
    error: str, description: str | None = None, state: str | None = None
) -> dict[str, str]:
    """§8.5 error response form fields (POSTed to ``response_uri`` like a response).

    Keep ``description`` generic: it must not reveal the person's data (§15.x, T111).
    """
    body = {"error": error}
    if description:
        body["error_description"] = _NOT_NQSCHAR.sub("?", description)[:300]
    if state is not None:
        body["state"] = state
    return body


def parse_response_endpoint_reply(
    body: bytes | str | Mapping[str, Any], *, allow_http: bool = False
) -> str | None:
    """§8.2: the Response Endpoint's JSON reply; its ``redirect_uri`` if any.

    Only an ``https`` URI is followed (T073: no ``javascript:``, ``data:``, ``http:`` or
    custom schemes). ``allow_http`` (development only, like :func:`parse_request_link`)
    also accepts ``http`` for verifiers on loopback.
    """
    reply = (
        body
        if isinstance(body, Mapping)
        else _json_object(
            body.decode("utf-8", "replace") if isinstance(body, bytes) else body, "response"
        )
    )
    uri = reply.get("redirect_uri")
    if uri is None:
        return None
    if not isinstance(uri, str) or len(uri) > MAX_VALUE_LENGTH:
        raise _fail("redirect_uri must be a string")
    schemes = ("https", "http") if allow_http else ("https",)
    if not _PRINTABLE_ASCII.fullmatch(uri) or urlsplit(uri).scheme not in schemes:
        raise _fail("redirect_uri must be an https URL")
    host = urlsplit(uri).hostname
    if not host:
        raise _fail("redirect_uri must be an absolute https URL")
    if urlsplit(uri).scheme == "http" and not is_loopback_host(host):
        raise _fail("redirect_uri must be an https URL (http only to loopback)")
    return uri


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal (the only http targets development allows)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- verifier: the Response Endpoint (§8.2, §8.3, §13.3) ----------------------------------


@dataclass(frozen=True)
class DirectPostResponse:
    """What arrived at the Response Endpoint: a ``vp_token`` or an error."""

    vp_token: dict[str, Any] | None
    state: str | None
    error: str | None = None
    error_description: str | None = None
    encrypted: bool = False
    #: Protected header of the JWE (``direct_post.jwt``), for e.g. the mdoc handover.
    jwe_header: Mapping[str, Any] | None = None


def parse_direct_post(
    form: str | bytes | Mapping[str, str] | Sequence[tuple[str, str]],
) -> DirectPostResponse:
    """A ``direct_post`` body (§8.2): ``vp_token`` (JSON text) + ``state``, or an error."""
    return _response_parameters(_parse_form(form), encrypted=False, header=None)


def decrypt_direct_post_jwt(
    form: str | bytes | Mapping[str, str] | Sequence[tuple[str, str]],
    private_jwks: Sequence[jwe.PrivateKeyInput],
    *,
    allowed_enc: Sequence[str] = ("A128GCM", "A256GCM"),
) -> DirectPostResponse:
    """A ``direct_post.jwt`` body (§8.3.1): ``response`` = JWE of the response parameters.

    An unencrypted *error* response is accepted (a wallet that cannot encrypt may send one,
    §8.3.1); an unencrypted ``vp_token`` is refused (no downgrade).
    """
    fields = _parse_form(form)
    if "response" not in fields:
        if "error" in fields and "vp_token" not in fields:
            return _response_parameters(fields, encrypted=False, header=None)
        raise _fail("direct_post.jwt response must carry a response JWE")
    if set(fields) - {"response"}:
        raise _fail("direct_post.jwt carries only the response parameter")
    try:
        header, plaintext = jwe.decrypt(fields["response"], private_jwks, allowed_enc=allowed_enc)
        payload = strict_json.loads(plaintext, max_bytes=jwe.MAX_JWE_BYTES)
    except (jwe.JWEError, strict_json.StrictJSONError) as exc:
        raise _fail(f"response: {exc}") from exc
    if not isinstance(payload, dict):
        raise _fail("encrypted response payload must be a JSON object")
    return _response_parameters(payload, encrypted=True, header=header)


def _response_parameters(
    params: Mapping[str, Any], *, encrypted: bool, header: Mapping[str, Any] | None
) -> DirectPostResponse:
    state = params.get("state")
    if state is not None:
        state = _opaque(state, "state")
    if "error" in params:
        error = params["error"]
        if not isinstance(error, str) or not _ERROR_CODE.fullmatch(error) or len(error) > 64:
            raise _fail("malformed error code")
        description = params.get("error_description")
        if description is not None and not isinstance(description, str):
            raise _fail("error_description must be a string")
        description = _NOT_NQSCHAR.sub("?", description)[:300] if description else None
        return DirectPostResponse(None, state, error, description, encrypted, header)
    if "vp_token" not in params:
        raise _fail("response has neither vp_token nor error")
    token = _json_object(params["vp_token"], "vp_token")
    return DirectPostResponse(token, state, encrypted=encrypted, jwe_header=header)


def check_vp_token_shape(token: Any, query: dcql.DCQLQuery) -> dict[str, list]:
    """§8.1 / §8.6 step 1: an object keyed by query ids, arrays of presentations, exactly one
    unless ``multiple``; unknown ids refused. SD-JWT VC and JWT presentations are strings."""
    if not isinstance(token, dict) or not token:
        raise _fail("vp_token must be a non-empty JSON object")
    known = {item.id: item for item in query.credentials}
    for query_id, items in token.items():
        credential_query = known.get(query_id)
        if credential_query is None:
            raise _fail("vp_token has an entry for an unknown credential query")
        if not isinstance(items, list) or not items or len(items) > MAX_PRESENTATIONS:
            raise _fail("each vp_token entry must be a non-empty array")
        if len(items) > 1 and not credential_query.multiple:
            raise _fail("more than one presentation for a query without multiple")
        expected = dict if credential_query.format == dcql.FORMAT_LDP_VC else str
        if not all(isinstance(item, expected) and item for item in items):
            raise _fail("presentation has the wrong JSON type for its format")
    return token


@dataclass(frozen=True)
class VerifiedPresentation:
    """One SD-JWT VC presentation that passed :func:`verify_sd_jwt_presentation`."""

    query_id: str
    vc: sdjwt_vc.VerifiedVC

    @property
    def claims(self) -> dict[str, Any]:
        return self.vc.claims

    def presented(self) -> dcql.Presented:
        """The input :func:`intyg.dcql.check_presentation_set` expects."""
        return dcql.Presented(self.vc.claims, self.vc.disclosed_paths)


def verify_sd_jwt_presentation(
    presentation: str,
    query: dcql.CredentialQuery,
    *,
    client_id: str,
    nonce: str,
    resolver: sdjwt.IssuerKeyResolver,
    now: int | None = None,
    kb_max_age: int = sdjwt.DEFAULT_KB_MAX_AGE_SECONDS,
) -> VerifiedPresentation:
    """§8.6 step 2 for ``dc+sd-jwt`` via :func:`intyg.sdjwt_vc.verify_vc`.

    The KB-JWT ``aud`` must be the FULL ``client_id`` (prefix included) and its ``nonce``
    this transaction's. Key binding is required unless the query set
    ``require_cryptographic_holder_binding`` false; a KB-JWT that is present anyway is
    still checked. Any failure raises (the service rejects the whole response: a wrong
    nonce MUST reject it, §14.1.2).
    """
    if query.format != dcql.FORMAT_SD_JWT_VC:
        raise _fail("credential query is not for dc+sd-jwt")
    require_kb = query.require_cryptographic_holder_binding or not presentation.endswith("~")
    try:
        verified = sdjwt_vc.verify_vc(
            presentation,
            resolver,
            require_key_binding=require_kb,
            audience=client_id,
            nonce=nonce,
            now=now,
            kb_max_age=kb_max_age,
        )
    except sdjwt.SDJWTError as exc:
        raise _fail(f"presentation for {query.id}: {exc}") from exc
    return VerifiedPresentation(query.id, verified)


@dataclass(frozen=True)
class VPTokenResult:
    """Result of :func:`verify_vp_token`."""

    presentations: Mapping[str, tuple[VerifiedPresentation, ...]]
    check: dcql.PresentationCheck


def verify_vp_token(
    token: Any,
    query: dcql.DCQLQuery,
    *,
    client_id: str,
    nonce: str,
    resolver: sdjwt.IssuerKeyResolver,
    now: int | None = None,
) -> VPTokenResult:
    """§8.6 for ``dc+sd-jwt`` answers: shape, every presentation, then the query.

    Refuses the whole token when a presentation fails, a requested claim or ``values``
    constraint is not met, or a required credential set is unsatisfied. Disclosed claims
    nobody asked for are in ``check.reports[*].extra_claims``: drop them.
    """
    shaped = check_vp_token_shape(token, query)
    verified: dict[str, tuple[VerifiedPresentation, ...]] = {}
    for query_id, items in shaped.items():
        credential_query = query.credential(query_id)
        verified[query_id] = tuple(
            verify_sd_jwt_presentation(
                item,
                credential_query,
                client_id=client_id,
                nonce=nonce,
                resolver=resolver,
                now=now,
            )
            for item in items
        )
    check = dcql.check_presentation_set(
        query, {qid: [p.presented() for p in items] for qid, items in verified.items()}
    )
    if not check.satisfied:
        raise _fail("the presentations do not satisfy the query")
    return VPTokenResult(verified, check)


def redirect_uri_with_response_code(redirect_uri: str, response_code: str) -> str:
    """§13.3: ``<redirect_uri>#response_code=<code>`` returned to the wallet."""
    _https_url(redirect_uri, "redirect_uri", allow_http=True)
    return f"{redirect_uri}#response_code={quote(response_code, safe='')}"


def response_endpoint_reply(redirect_uri: str | None = None) -> dict[str, str]:
    """§8.2: the 200 ``application/json`` body of the Response Endpoint."""
    return {"redirect_uri": redirect_uri} if redirect_uri else {}


# -- metadata (§10, §11) ------------------------------------------------------------------


def wallet_metadata(
    *,
    vp_formats_supported: Mapping[str, Any] | None = None,
    client_id_prefixes_supported: Iterable[str] = (
        PREFIX_X509_HASH,
        PREFIX_X509_SAN_DNS,
        PREFIX_DID,
        PREFIX_REDIRECT_URI,
        PREFIX_PRE_REGISTERED,
    ),
    authorization_endpoint: str = "openid4vp:",
    request_object_signing_alg_values_supported: Sequence[str] = ("ES256",),
) -> dict[str, Any]:
    """§10 Wallet metadata (RFC 8414 style), e.g. for ``wallet_metadata`` in a POST."""
    prefixes = list(client_id_prefixes_supported)
    metadata: dict[str, Any] = {
        "authorization_endpoint": authorization_endpoint,
        "response_types_supported": [RESPONSE_TYPE],
        "response_modes_supported": sorted(RESPONSE_MODES),
        "vp_formats_supported": dict(vp_formats_supported or DEFAULT_VP_FORMATS),
        "client_id_prefixes_supported": prefixes,
        "authorization_encryption_alg_values_supported": [jwe.ALG_ECDH_ES],
        "authorization_encryption_enc_values_supported": list(ENC_PREFERENCE),
    }
    # §5.10: omit the signing algorithms when only an unsigned-only prefix is supported.
    if set(prefixes) - {PREFIX_REDIRECT_URI}:
        metadata["request_object_signing_alg_values_supported"] = list(
            request_object_signing_alg_values_supported
        )
    return metadata


def verifier_metadata(
    *,
    jwks: Sequence[Mapping[str, Any]] = (),
    vp_formats_supported: Mapping[str, Any] | None = None,
    enc_values: Sequence[str] = ("A128GCM", "A256GCM"),
) -> dict[str, Any]:
    """§11 Verifier metadata (RFC 7591 style), as sent in ``client_metadata``."""
    metadata: dict[str, Any] = {
        "vp_formats_supported": dict(vp_formats_supported or DEFAULT_VP_FORMATS)
    }
    if jwks:
        metadata["jwks"] = {"keys": [dict(jwk) for jwk in jwks]}
        metadata["encrypted_response_enc_values_supported"] = list(enc_values)
    return metadata
