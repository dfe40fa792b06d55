"""X.509 for intyg: ``x5c`` chains (RFC 7515 §4.1.6), their validation and a development PKI.

HAIP 1.0 makes ``x5c`` the issuer-key mechanism for SD-JWT VC and makes signed OpenID4VP
requests use the ``x509_hash`` client identifier prefix; both require that the trust anchor
is *not* part of ``x5c`` and that the signing (leaf) certificate is not self-signed.

Validation is a short, explicit RFC 5280 §6.1 path walk rather than
``cryptography.x509.verification``: that module only implements the Web PKI (CA/B Forum)
profile, which refuses Ed25519 and hides which rule failed, while our chains are at most a
few certificates long and every rejection must name its rule. What is checked:

- ``x5c`` is a non-empty list of *standard* base64 (not base64url) DER certificates, leaf
  first, each the subject of the signature of the next (RFC 7515 §4.1.6);
- the last certificate is signed by one of the configured trust anchors, and no trust anchor
  and no self-signed certificate is itself in ``x5c`` (HAIP 1.0);
- every certificate, the anchor included, is valid at ``now`` (RFC 5280 §6.1.3 (a)(2));
- CA certificates have ``basicConstraints`` CA true, a respected ``pathLenConstraint`` and
  ``keyCertSign`` (RFC 5280 §4.2.1.9, §4.2.1.3); the leaf is no CA and has
  ``digitalSignature``; no unknown critical extension (RFC 5280 §4.2);
- signatures use SHA-256 or stronger (no SHA-1/MD5); the leaf key is P-256 or Ed25519;
- optionally, a ``dNSName`` or URI SAN equals what the caller expects (OpenID4VP §5.9.3).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from intyg import jose

Certificate = x509.Certificate

#: Longest ``x5c`` accepted; real chains are 1-3 certificates (DoS bound).
MAX_CHAIN_LENGTH = 5
#: Largest DER certificate accepted (DoS bound before parsing).
MAX_CERTIFICATE_BYTES = 16 * 1024

_STANDARD_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_ALLOWED_SIGNATURE_ALGORITHMS = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
        SignatureAlgorithmOID.ED25519,
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
        SignatureAlgorithmOID.RSASSA_PSS,
    }
)
#: Extensions whose meaning this module enforces or that carry no constraint; any other
#: extension marked critical makes the certificate unusable (RFC 5280 §4.2).
_UNDERSTOOD_EXTENSIONS = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
)


class X509Error(ValueError):
    """A certificate or ``x5c`` chain was refused; the message is safe to show."""


# -- encodings (RFC 7515 §4.1.6, RFC 7468) -----------------------------------------------


def cert_to_der(cert: Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def cert_to_pem(cert: Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def cert_from_der(der: bytes) -> Certificate:
    """Parse one DER certificate, size-bounded, with its extensions checked for well-formedness."""
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise X509Error(f"certificate larger than {MAX_CERTIFICATE_BYTES} bytes")
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.extensions  # noqa: B018 - duplicate or malformed extensions raise here, not later
    except ValueError as exc:
        raise X509Error("not a well-formed DER X.509 certificate") from exc
    return cert


def certs_from_pem(pem: str | bytes) -> list[Certificate]:
    """All certificates of a PEM bundle (e.g. a trust-anchor file), in order."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise X509Error("not a PEM certificate bundle") from exc


def cert_from_pem(pem: str | bytes) -> Certificate:
    """Exactly one PEM certificate."""
    certs = certs_from_pem(pem)
    if len(certs) != 1:
        raise X509Error("expected exactly one PEM certificate")
    return certs[0]


def x5c_from_certs(certs: Iterable[Certificate]) -> list[str]:
    """The ``x5c`` header value: standard base64 (not base64url) DER, leaf first."""
    return [base64.b64encode(cert_to_der(cert)).decode("ascii") for cert in certs]


def _load_x5c_entry(entry: str) -> Certificate:
    if len(entry) > MAX_CERTIFICATE_BYTES * 4 // 3 + 4:
        raise X509Error(f"certificate larger than {MAX_CERTIFICATE_BYTES} bytes")
    if len(entry) % 4 or not _STANDARD_BASE64.fullmatch(entry):
        raise X509Error("x5c entry is not standard base64 (RFC 7515 §4.1.6; not base64url)")
    try:
        der = base64.b64decode(entry, validate=True)
    except binascii.Error as exc:
        raise X509Error("x5c entry is not standard base64") from exc
    if base64.b64encode(der).decode("ascii") != entry:
        raise X509Error("x5c entry is not canonical base64")
    return cert_from_der(der)


def _check_x5c_shape(x5c: Sequence[str]) -> None:
    if not isinstance(x5c, list | tuple) or not x5c:
        raise X509Error("x5c must be a non-empty array of certificates")
    if len(x5c) > MAX_CHAIN_LENGTH:
        raise X509Error(f"x5c has more than {MAX_CHAIN_LENGTH} certificates")
    if not all(isinstance(entry, str) for entry in x5c):
        raise X509Error("x5c entries must be strings")


def certs_from_x5c(x5c: Sequence[str]) -> list[Certificate]:
    """Decode an ``x5c`` value without validating the chain (RFC 7515 §4.1.6)."""
    _check_x5c_shape(x5c)
    return [_load_x5c_entry(entry) for entry in x5c]


# -- identifiers (OpenID4VP §5.9.3, §6.1.1; RFC 5280 §4.2.1.1-2) ---------------------------


def x509_hash(leaf: bytes | Certificate) -> str:
    """OpenID4VP §5.9.3 ``x509_hash``: base64url(SHA-256(DER of the leaf certificate))."""
    der = leaf if isinstance(leaf, bytes) else cert_to_der(leaf)
    return jose.b64url_encode(hashlib.sha256(der).digest())


def aki(cert: Certificate) -> str:
    """base64url ``keyIdentifier`` of AuthorityKeyIdentifier (DCQL ``trusted_authorities`` aki)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound as exc:
        raise X509Error("certificate has no AuthorityKeyIdentifier") from exc
    if ext.value.key_identifier is None:
        raise X509Error("AuthorityKeyIdentifier has no keyIdentifier")
    return jose.b64url_encode(ext.value.key_identifier)


def ski(cert: Certificate) -> str:
    """base64url SubjectKeyIdentifier, the value a CA's issued certificates carry as aki."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound as exc:
        raise X509Error("certificate has no SubjectKeyIdentifier") from exc
    return jose.b64url_encode(ext.value.digest)


# -- chain validation (RFC 5280 §6.1, HAIP 1.0) -------------------------------------------


@dataclass(frozen=True)
class ValidatedChain:
    """An ``x5c`` chain that passed :func:`validate_x5c`."""

    leaf: Certificate
    key: jose.Key
    subject: str
    san_dns: tuple[str, ...]
    san_uri: tuple[str, ...]
    chain: tuple[Certificate, ...]
    trust_anchor: Certificate


def validate_x5c(
    x5c: Sequence[str],
    trust_anchors: Sequence[Certificate],
    *,
    now: datetime | int | None = None,
    dns_name: str | None = None,
    uri: str | None = None,
) -> ValidatedChain:
    """Validate ``x5c`` up to one of ``trust_anchors`` and return the leaf's key and names.

    ``now`` is a datetime or seconds since the epoch; ``dns_name`` / ``uri``, when given,
    must equal a SAN of the leaf (OpenID4VP §5.9.3 ``x509_san_dns``).
    """
    if not trust_anchors:
        raise X509Error("no trust anchors configured")
    _check_x5c_shape(x5c)
    validated = _validate_path(tuple(x5c), tuple(trust_anchors))
    at = _as_datetime(now)
    _check_validity(validated.leaf, at, "leaf certificate")
    for cert in validated.chain[1:]:
        _check_validity(cert, at, "intermediate certificate")
    _check_validity(validated.trust_anchor, at, "trust anchor")
    if dns_name is not None and dns_name.lower() not in (n.lower() for n in validated.san_dns):
        raise X509Error("leaf certificate has no dNSName SAN equal to the expected DNS name")
    if uri is not None and uri not in validated.san_uri:
        raise X509Error("leaf certificate has no URI SAN equal to the expected URI")
    return validated


def _validate_path(x5c: tuple[str, ...], anchors: tuple[Certificate, ...]) -> ValidatedChain:
    """Every time-independent rule. A pure function of the chain and anchor bytes, so it is
    cached: an issuer signs many credentials under one chain, and a repeat costs no
    signature verification. A refusal is cached too (a verifier with several trust list
    entries tries each one's anchors for every credential), and raised anew each time."""
    outcome = _path_outcome(x5c, anchors)
    if isinstance(outcome, X509Error):
        raise X509Error(str(outcome))
    return outcome


@lru_cache(maxsize=256)
def _path_outcome(
    x5c: tuple[str, ...], anchors: tuple[Certificate, ...]
) -> ValidatedChain | X509Error:
    try:
        return _check_path(x5c, anchors)
    except X509Error as exc:
        return exc


def _check_path(x5c: tuple[str, ...], anchors: tuple[Certificate, ...]) -> ValidatedChain:
    certs = certs_from_x5c(x5c)
    _check_no_anchor_or_root(certs, anchors)
    for child, issuer in itertools.pairwise(certs):
        _check_signed_by(child, issuer)
    anchor = _find_anchor(certs[-1], anchors)
    for cert in certs:
        _check_critical_extensions(cert)
    for below, cert in enumerate(certs[1:]):
        _check_ca(cert, below, required=True)
    _check_ca(anchor, len(certs) - 1, required=False)
    leaf = certs[0]
    _check_leaf_usage(leaf)
    try:
        key = jose.key_from_public_key(leaf.public_key())
    except (jose.JoseError, UnsupportedAlgorithm) as exc:
        raise X509Error("leaf certificate key must be P-256 or Ed25519") from exc
    san_dns, san_uri = _subject_alternative_names(leaf)
    return ValidatedChain(
        leaf=leaf,
        key=key,
        subject=leaf.subject.rfc4514_string(),
        san_dns=san_dns,
        san_uri=san_uri,
        chain=tuple(certs),
        trust_anchor=anchor,
    )


def _check_no_anchor_or_root(certs: list[Certificate], anchors: tuple[Certificate, ...]) -> None:
    """HAIP 1.0: the trust anchor is not sent, and the signer is not self-signed."""
    anchor_identities = {_identity(anchor) for anchor in anchors}
    if any(_identity(cert) in anchor_identities for cert in certs):
        raise X509Error("x5c must not include the trust anchor")
    if certs[0].issuer == certs[0].subject:
        raise X509Error("leaf certificate must not be self-signed")
    if any(cert.issuer == cert.subject for cert in certs[1:]):
        raise X509Error("x5c must not include a self-signed certificate")


def _identity(cert: Certificate) -> tuple[x509.Name, bytes]:
    # A re-issued anchor (same name and key, other serial or dates) is still the anchor.
    try:
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (UnsupportedAlgorithm, ValueError):
        spki = cert_to_der(cert)  # a key type we cannot load: compare whole certificates
    return cert.subject, spki


def _check_signed_by(child: Certificate, issuer: Certificate) -> None:
    if child.issuer != issuer.subject:
        raise X509Error("x5c is not in order: a certificate's issuer is not the next one")
    if not _issued_by(child, issuer):
        raise X509Error("certificate signature in the chain does not verify")


def _find_anchor(last: Certificate, anchors: tuple[Certificate, ...]) -> Certificate:
    for anchor in anchors:
        if last.issuer == anchor.subject and _issued_by(last, anchor):
            return anchor
    raise X509Error("certificate chain does not lead to a trusted anchor")


def _issued_by(child: Certificate, issuer: Certificate) -> bool:
    if child.signature_algorithm_oid not in _ALLOWED_SIGNATURE_ALGORITHMS:
        raise X509Error("certificate uses a weak or unsupported signature algorithm")
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _as_datetime(now: datetime | int | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=UTC)
    return datetime.fromtimestamp(now, UTC)


def _check_validity(cert: Certificate, at: datetime, role: str) -> None:
    if at < cert.not_valid_before_utc:
        raise X509Error(f"{role} is not yet valid")
    if at > cert.not_valid_after_utc:
        raise X509Error(f"{role} has expired")


def _check_critical_extensions(cert: Certificate) -> None:
    for ext in cert.extensions:
        if ext.critical and ext.oid not in _UNDERSTOOD_EXTENSIONS:
            raise X509Error("certificate has an unsupported critical extension")


def _extension(cert: Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_ca(cert: Certificate, intermediates_below: int, *, required: bool) -> None:
    """RFC 5280 §4.2.1.9 and §4.2.1.3 for a certificate that signs the next one down.

    ``required`` is false for trust anchors, whose constraints apply only when present.
    """
    constraints = _extension(cert, x509.BasicConstraints)
    if (constraints is None and required) or (constraints is not None and not constraints.ca):
        raise X509Error("issuing certificate is not a CA (basicConstraints)")
    if constraints is not None and constraints.path_length is not None:
        if intermediates_below > constraints.path_length:
            raise X509Error("certificate chain exceeds a pathLenConstraint")
    usage = _extension(cert, x509.KeyUsage)
    if (usage is None and required) or (usage is not None and not usage.key_cert_sign):
        raise X509Error("issuing certificate lacks the keyCertSign key usage")


def _check_leaf_usage(leaf: Certificate) -> None:
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise X509Error("leaf certificate must not be a CA")
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        raise X509Error("leaf certificate lacks the digitalSignature key usage")


def _subject_alternative_names(cert: Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is None:
        return (), ()
    return (
        tuple(san.get_values_for_type(x509.DNSName)),
        tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
    )


# -- development PKI (never for production keys) ------------------------------------------


def _name(common_name: str, organization: str | None, country: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if country:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    return x509.Name(attributes)


def _sign(builder: x509.CertificateBuilder, signer: jose.Key) -> Certificate:
    if signer.private_key is None:
        raise X509Error("the issuing key has no private part")
    algorithm = (
        hashes.SHA256() if isinstance(signer.private_key, ec.EllipticCurvePrivateKey) else None
    )
    return builder.sign(signer.private_key, algorithm)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    subject_key: jose.Key,
    valid_days: int,
    not_before: datetime | None,
) -> x509.CertificateBuilder:
    # Backdated an hour (as public CAs do) so clocks a little behind still accept a new cert.
    start = not_before or datetime.now(UTC) - timedelta(hours=1)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_key.public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=valid_days))
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key), critical=False
        )
    )


def _authority_key_identifier(issuer_cert: Certificate) -> x509.AuthorityKeyIdentifier:
    issuer_ski = _extension(issuer_cert, x509.SubjectKeyIdentifier)
    if isinstance(issuer_ski, x509.SubjectKeyIdentifier):
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())  # type: ignore[arg-type]


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def make_ca(
    common_name: str,
    *,
    key: jose.Key | None = None,
    valid_days: int = 3650,
    path_length: int | None = None,
    organization: str | None = None,
    country: str | None = None,
    not_before: datetime | None = None,
) -> tuple[jose.Key, Certificate]:
    """A self-signed root CA (a trust anchor; never put it in ``x5c``)."""
    key = key or jose.generate_key("ES256")
    name = _name(common_name, organization, country)
    builder = (
        _builder(name, name, key, valid_days, not_before)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key),  # type: ignore[arg-type]
            critical=False,
        )
    )
    return key, _sign(builder, key)


def make_intermediate_ca(
    ca_key: jose.Key,
    ca_cert: Certificate,
    common_name: str,
    *,
    key: jose.Key | None = None,
    valid_days: int = 1825,
    path_length: int | None = 0,
    organization: str | None = None,
    country: str | None = None,
    not_before: datetime | None = None,
) -> tuple[jose.Key, Certificate]:
    """An intermediate CA issued by ``ca_cert`` (sent in ``x5c`` after the leaf)."""
    key = key or jose.generate_key("ES256")
    builder = (
        _builder(
            _name(common_name, organization, country), ca_cert.subject, key, valid_days, not_before
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    return key, _sign(builder, ca_key)


def make_leaf(
    ca_key: jose.Key,
    ca_cert: Certificate,
    subject_key: jose.Key,
    *,
    common_name: str,
    san_dns: Sequence[str] = (),
    san_uri: Sequence[str] = (),
    valid_days: int = 365,
    organization: str | None = None,
    country: str | None = None,
    not_before: datetime | None = None,
) -> Certificate:
    """An end-entity signing certificate for ``subject_key`` issued by ``ca_cert``."""
    builder = (
        _builder(
            _name(common_name, organization, country),
            ca_cert.subject,
            subject_key,
            valid_days,
            not_before,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_KEY_USAGE, critical=True)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in san_dns]
    names += [x509.UniformResourceIdentifier(value) for value in san_uri]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _sign(builder, ca_key)
