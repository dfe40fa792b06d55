"""Tests for intyg.x509: development PKI, x5c encoding and HAIP chain validation."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ObjectIdentifier

from intyg import jose
from intyg import x509 as ix

NOW = datetime.now(UTC)
DNS = "verifier.intyg.example"
URI = "https://verifier.intyg.example"


# -- fixtures: one root, one intermediate, leaves ----------------------------------------


@pytest.fixture(scope="module")
def root() -> tuple[jose.Key, x509.Certificate]:
    return ix.make_ca("intyg test root", organization="intyg", country="SE")


@pytest.fixture(scope="module")
def other_root() -> tuple[jose.Key, x509.Certificate]:
    return ix.make_ca("intyg other root")


@pytest.fixture(scope="module")
def intermediate(root) -> tuple[jose.Key, x509.Certificate]:
    return ix.make_intermediate_ca(*root, "intyg test issuing CA")


@pytest.fixture(scope="module")
def leaf_key() -> jose.Key:
    return jose.generate_key()


@pytest.fixture(scope="module")
def leaf(intermediate, leaf_key) -> x509.Certificate:
    return ix.make_leaf(
        *intermediate, leaf_key, common_name="Verifier", san_dns=[DNS], san_uri=[URI]
    )


@pytest.fixture(scope="module")
def chain(leaf, intermediate) -> list[str]:
    return ix.x5c_from_certs([leaf, intermediate[1]])


def _custom_cert(
    issuer_key: jose.Key,
    issuer_cert: x509.Certificate,
    public_key,
    *,
    common_name: str = "custom",
    extensions: list[tuple[x509.ExtensionType, bool]] = (),
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    """A certificate with exactly the extensions a negative test needs."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key.private_key, hash_algorithm or hashes.SHA256())


def _key_usage(**flags: bool) -> x509.KeyUsage:
    names = (
        "digital_signature content_commitment key_encipherment data_encipherment "
        "key_agreement key_cert_sign crl_sign encipher_only decipher_only"
    ).split()
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


LEAF_EXTENSIONS = [
    (x509.BasicConstraints(ca=False, path_length=None), True),
    (_key_usage(digital_signature=True), True),
]


# -- happy paths ---------------------------------------------------------------------------


def test_validates_leaf_and_intermediate(chain, root, leaf, leaf_key) -> None:
    result = ix.validate_x5c(chain, [root[1]], dns_name=DNS, uri=URI)
    assert result.leaf == leaf
    assert result.key.thumbprint() == leaf_key.thumbprint()
    assert result.key.alg == "ES256"
    assert result.subject == "CN=Verifier"
    assert result.san_dns == (DNS,)
    assert result.san_uri == (URI,)
    assert result.trust_anchor == root[1]
    assert len(result.chain) == 2


def test_validates_leaf_directly_under_anchor(root) -> None:
    key = jose.generate_key()
    cert = ix.make_leaf(*root, key, common_name="Issuer")
    result = ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])
    assert result.key.thumbprint() == key.thumbprint()


def test_validates_ed25519_keys_throughout() -> None:
    ca_key, ca_cert = ix.make_ca("ed root", key=jose.generate_key("EdDSA"))
    key = jose.generate_key("EdDSA")
    cert = ix.make_leaf(ca_key, ca_cert, key, common_name="ed leaf")
    result = ix.validate_x5c(ix.x5c_from_certs([cert]), [ca_cert])
    assert result.key.alg == "EdDSA"


def test_picks_the_right_anchor_among_several(chain, root, other_root) -> None:
    assert ix.validate_x5c(chain, [other_root[1], root[1]]).trust_anchor == root[1]


def test_dns_name_match_is_case_insensitive(chain, root) -> None:
    ix.validate_x5c(chain, [root[1]], dns_name=DNS.upper())


def test_now_as_epoch_seconds(chain, root) -> None:
    ix.validate_x5c(chain, [root[1]], now=int(NOW.timestamp()))


def test_dev_pki_extensions(root, intermediate, leaf) -> None:
    ca = root[1]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    constraints = intermediate[1].extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert ix.aki(leaf) == ix.ski(intermediate[1])
    assert ix.aki(intermediate[1]) == ix.ski(root[1])
    leaf_ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert leaf_ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())


def test_dev_pki_passes_cryptography_rfc5280_verifier(root, intermediate, leaf) -> None:
    """An independent path validator (cryptography's Web PKI profile) accepts our dev chain."""
    verification = pytest.importorskip("cryptography.x509.verification")
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([root[1]]))
        .time(NOW)
        .build_client_verifier()
    )
    verified = verifier.verify(leaf, [intermediate[1]])
    assert verified.chain[0] == leaf


# -- encodings and identifiers ------------------------------------------------------------


def test_x5c_is_standard_base64_der(chain, leaf) -> None:
    assert base64.b64decode(chain[0], validate=True) == ix.cert_to_der(leaf)
    assert ix.certs_from_x5c(chain)[0] == leaf


def test_pem_round_trip(leaf, intermediate) -> None:
    pem = ix.cert_to_pem(leaf)
    assert ix.cert_from_pem(pem) == leaf
    bundle = pem + ix.cert_to_pem(intermediate[1])
    assert ix.certs_from_pem(bundle.encode()) == [leaf, intermediate[1]]
    assert ix.cert_from_der(ix.cert_to_der(leaf)) == leaf


def test_pem_rejects_garbage_and_bundles_for_single() -> None:
    with pytest.raises(ix.X509Error, match="not a PEM certificate bundle"):
        ix.certs_from_pem("nope")


def test_cert_from_pem_wants_exactly_one(leaf, intermediate) -> None:
    with pytest.raises(ix.X509Error, match="exactly one"):
        ix.cert_from_pem(ix.cert_to_pem(leaf) + ix.cert_to_pem(intermediate[1]))


def test_x509_hash(chain, leaf) -> None:
    expected = jose.b64url_encode(hashlib.sha256(base64.b64decode(chain[0])).digest())
    assert ix.x509_hash(leaf) == expected == ix.x509_hash(ix.cert_to_der(leaf))
    # SHA-256 of the empty string, base64url without padding: fixes the encoding.
    assert ix.x509_hash(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"


def test_aki_missing(root, leaf_key) -> None:
    cert = _custom_cert(*root, leaf_key.public_key, extensions=LEAF_EXTENSIONS)
    with pytest.raises(ix.X509Error, match="no AuthorityKeyIdentifier"):
        ix.aki(cert)
    with pytest.raises(ix.X509Error, match="no SubjectKeyIdentifier"):
        ix.ski(cert)


# -- x5c shape -----------------------------------------------------------------------------


def test_rejects_empty_list(root) -> None:
    with pytest.raises(ix.X509Error, match="non-empty array"):
        ix.validate_x5c([], [root[1]])


def test_rejects_string_instead_of_list(chain, root) -> None:
    with pytest.raises(ix.X509Error, match="non-empty array"):
        ix.validate_x5c(chain[0], [root[1]])  # type: ignore[arg-type]


def test_rejects_non_string_entries(root) -> None:
    with pytest.raises(ix.X509Error, match="entries must be strings"):
        ix.validate_x5c([b"MII"], [root[1]])  # type: ignore[list-item]


def test_rejects_too_long_chain(chain, root) -> None:
    with pytest.raises(ix.X509Error, match="more than 5"):
        ix.validate_x5c(chain * 3, [root[1]])


def test_rejects_garbage_base64(root) -> None:
    with pytest.raises(ix.X509Error, match="not standard base64"):
        ix.validate_x5c(["!!!not base64!!!"], [root[1]])


def test_rejects_base64url(chain, root) -> None:
    der = base64.b64decode(chain[0])
    url_form = base64.urlsafe_b64encode(der).decode().rstrip("=")
    assert url_form != chain[0].rstrip("=")  # the certificate has '+' or '/' in base64
    with pytest.raises(ix.X509Error, match="not standard base64"):
        ix.validate_x5c([url_form], [root[1]])
    with pytest.raises(ix.X509Error, match="not standard base64"):
        ix.validate_x5c([base64.urlsafe_b64encode(der).decode()], [root[1]])


def test_rejects_non_canonical_base64(root) -> None:
    with pytest.raises(ix.X509Error, match="not canonical base64"):
        ix.validate_x5c(["QR=="], [root[1]])


def test_rejects_base64_that_is_not_der(root) -> None:
    with pytest.raises(ix.X509Error, match="not a well-formed DER"):
        ix.validate_x5c([base64.b64encode(b"not a certificate").decode()], [root[1]])


def test_rejects_oversized_certificate(root) -> None:
    with pytest.raises(ix.X509Error, match="larger than"):
        ix.validate_x5c(["A" * (ix.MAX_CERTIFICATE_BYTES * 2)], [root[1]])


def test_rejects_without_trust_anchors(chain) -> None:
    with pytest.raises(ix.X509Error, match="no trust anchors"):
        ix.validate_x5c(chain, [])


# -- chain rules ---------------------------------------------------------------------------


def test_rejects_wrong_anchor(chain, other_root) -> None:
    with pytest.raises(ix.X509Error, match="does not lead to a trusted anchor"):
        ix.validate_x5c(chain, [other_root[1]])


def test_rejects_anchor_with_same_name_but_other_key(chain, root) -> None:
    impostor = ix.make_ca("intyg test root", organization="intyg", country="SE")[1]
    assert impostor.subject == root[1].subject
    with pytest.raises(ix.X509Error, match="does not lead to a trusted anchor"):
        ix.validate_x5c(chain, [impostor])


def test_rejects_anchor_included_in_x5c(leaf, intermediate, root) -> None:
    x5c = ix.x5c_from_certs([leaf, intermediate[1], root[1]])
    with pytest.raises(ix.X509Error, match="must not include the trust anchor"):
        ix.validate_x5c(x5c, [root[1]])


def test_rejects_reissued_anchor_included_in_x5c(leaf, intermediate, root) -> None:
    reissued = ix.make_ca("intyg test root", key=root[0], organization="intyg", country="SE")[1]
    assert reissued != root[1]
    x5c = ix.x5c_from_certs([leaf, intermediate[1], reissued])
    with pytest.raises(ix.X509Error, match="must not include the trust anchor"):
        ix.validate_x5c(x5c, [root[1]])


def test_rejects_self_signed_root_in_x5c(leaf, intermediate, root, other_root) -> None:
    x5c = ix.x5c_from_certs([leaf, intermediate[1], root[1]])
    with pytest.raises(ix.X509Error, match="must not include a self-signed certificate"):
        ix.validate_x5c(x5c, [other_root[1]])


def test_rejects_self_signed_leaf(root) -> None:
    key = jose.generate_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "self")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key)
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .sign(key.private_key, hashes.SHA256())
    )
    with pytest.raises(ix.X509Error, match="leaf certificate must not be self-signed"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])


def test_rejects_wrong_order(leaf, intermediate, root) -> None:
    with pytest.raises(ix.X509Error, match="not in order"):
        ix.validate_x5c(ix.x5c_from_certs([intermediate[1], leaf]), [root[1]])


def _tamper_signature(cert: x509.Certificate) -> str:
    der = bytearray(ix.cert_to_der(cert))
    der[-3] ^= 0x01  # inside the ECDSA signature's s integer; the DER stays well-formed
    return base64.b64encode(bytes(der)).decode()


def test_rejects_broken_leaf_signature(leaf, intermediate, root) -> None:
    x5c = [_tamper_signature(leaf), ix.x5c_from_certs([intermediate[1]])[0]]
    with pytest.raises(ix.X509Error, match="signature in the chain does not verify"):
        ix.validate_x5c(x5c, [root[1]])


def test_rejects_broken_intermediate_signature(leaf, intermediate, root) -> None:
    x5c = [ix.x5c_from_certs([leaf])[0], _tamper_signature(intermediate[1])]
    with pytest.raises(ix.X509Error, match="does not lead to a trusted anchor"):
        ix.validate_x5c(x5c, [root[1]])


def test_rejects_weak_signature_hash(root, leaf_key) -> None:
    cert = _custom_cert(
        *root, leaf_key.public_key, extensions=LEAF_EXTENSIONS, hash_algorithm=hashes.SHA224()
    )
    with pytest.raises(ix.X509Error, match="weak or unsupported signature algorithm"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])


# -- validity periods ----------------------------------------------------------------------


def test_rejects_expired_leaf(intermediate, root, leaf_key) -> None:
    cert = ix.make_leaf(
        *intermediate,
        leaf_key,
        common_name="old",
        not_before=NOW - timedelta(days=10),
        valid_days=5,
    )
    with pytest.raises(ix.X509Error, match="leaf certificate has expired"):
        ix.validate_x5c(ix.x5c_from_certs([cert, intermediate[1]]), [root[1]])


def test_rejects_not_yet_valid_leaf(intermediate, root, leaf_key) -> None:
    cert = ix.make_leaf(
        *intermediate, leaf_key, common_name="future", not_before=NOW + timedelta(days=1)
    )
    with pytest.raises(ix.X509Error, match="leaf certificate is not yet valid"):
        ix.validate_x5c(ix.x5c_from_certs([cert, intermediate[1]]), [root[1]])


def test_rejects_at_time_outside_validity(chain, root) -> None:
    with pytest.raises(ix.X509Error, match="has expired"):
        ix.validate_x5c(chain, [root[1]], now=NOW + timedelta(days=20 * 365))
    with pytest.raises(ix.X509Error, match="is not yet valid"):
        ix.validate_x5c(chain, [root[1]], now=datetime(2000, 1, 1))


def test_rejects_expired_intermediate(root, leaf_key) -> None:
    ca = ix.make_intermediate_ca(*root, "old CA", not_before=NOW - timedelta(days=10), valid_days=5)
    cert = ix.make_leaf(*ca, leaf_key, common_name="leaf", not_before=NOW - timedelta(days=9))
    with pytest.raises(ix.X509Error, match="intermediate certificate has expired"):
        ix.validate_x5c(ix.x5c_from_certs([cert, ca[1]]), [root[1]])


def test_rejects_expired_anchor(leaf_key) -> None:
    anchor = ix.make_ca("old root", not_before=NOW - timedelta(days=10), valid_days=5)
    cert = ix.make_leaf(*anchor, leaf_key, common_name="leaf")
    with pytest.raises(ix.X509Error, match="trust anchor has expired"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [anchor[1]])


# -- CA and leaf constraints ---------------------------------------------------------------


def test_rejects_intermediate_without_ca_flag(root, leaf_key) -> None:
    key = jose.generate_key()
    not_ca = _custom_cert(
        *root,
        key.public_key,
        common_name="not a CA",
        extensions=[
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_key_usage(key_cert_sign=True), True),
        ],
    )
    cert = _custom_cert(key, not_ca, leaf_key.public_key, extensions=LEAF_EXTENSIONS)
    with pytest.raises(ix.X509Error, match="not a CA"):
        ix.validate_x5c(ix.x5c_from_certs([cert, not_ca]), [root[1]])


def test_rejects_intermediate_without_basic_constraints(root, leaf_key) -> None:
    key = jose.generate_key()
    bare = _custom_cert(
        *root,
        key.public_key,
        common_name="bare",
        extensions=[(_key_usage(key_cert_sign=True), True)],
    )
    cert = _custom_cert(key, bare, leaf_key.public_key, extensions=LEAF_EXTENSIONS)
    with pytest.raises(ix.X509Error, match="not a CA"):
        ix.validate_x5c(ix.x5c_from_certs([cert, bare]), [root[1]])


def test_rejects_intermediate_without_key_cert_sign(root, leaf_key) -> None:
    key = jose.generate_key()
    ca = _custom_cert(
        *root,
        key.public_key,
        common_name="no keyCertSign",
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (_key_usage(digital_signature=True), True),
        ],
    )
    cert = _custom_cert(key, ca, leaf_key.public_key, extensions=LEAF_EXTENSIONS)
    with pytest.raises(ix.X509Error, match="lacks the keyCertSign"):
        ix.validate_x5c(ix.x5c_from_certs([cert, ca]), [root[1]])


def test_rejects_path_length_exceeded(leaf_key) -> None:
    anchor = ix.make_ca("strict root", path_length=0)
    ca = ix.make_intermediate_ca(*anchor, "sub CA")
    cert = ix.make_leaf(*ca, leaf_key, common_name="leaf")
    with pytest.raises(ix.X509Error, match="pathLenConstraint"):
        ix.validate_x5c(ix.x5c_from_certs([cert, ca[1]]), [anchor[1]])
    # The same root may sign leaves directly.
    direct = ix.make_leaf(*anchor, leaf_key, common_name="leaf")
    ix.validate_x5c(ix.x5c_from_certs([direct]), [anchor[1]])


def test_rejects_path_length_exceeded_by_intermediate(root, leaf_key) -> None:
    first = ix.make_intermediate_ca(*root, "first", path_length=0)
    second = ix.make_intermediate_ca(*first, "second", path_length=0)
    cert = ix.make_leaf(*second, leaf_key, common_name="leaf")
    with pytest.raises(ix.X509Error, match="pathLenConstraint"):
        ix.validate_x5c(ix.x5c_from_certs([cert, second[1], first[1]]), [root[1]])


def test_rejects_leaf_without_digital_signature(root, leaf_key) -> None:
    cert = _custom_cert(
        *root,
        leaf_key.public_key,
        extensions=[
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_key_usage(key_encipherment=True), True),
        ],
    )
    with pytest.raises(ix.X509Error, match="lacks the digitalSignature"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])


def test_rejects_leaf_without_key_usage(root, leaf_key) -> None:
    cert = _custom_cert(
        *root,
        leaf_key.public_key,
        extensions=[(x509.BasicConstraints(ca=False, path_length=None), True)],
    )
    with pytest.raises(ix.X509Error, match="lacks the digitalSignature"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])


def test_rejects_leaf_that_is_a_ca(root, leaf_key) -> None:
    cert = _custom_cert(
        *root,
        leaf_key.public_key,
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (_key_usage(digital_signature=True, key_cert_sign=True), True),
        ],
    )
    with pytest.raises(ix.X509Error, match="leaf certificate must not be a CA"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])


def test_rejects_unknown_critical_extension(root, leaf_key) -> None:
    unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    cert = _custom_cert(*root, leaf_key.public_key, extensions=[*LEAF_EXTENSIONS, (unknown, True)])
    with pytest.raises(ix.X509Error, match="unsupported critical extension"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])


def test_accepts_unknown_non_critical_extension(root, leaf_key) -> None:
    unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    cert = _custom_cert(*root, leaf_key.public_key, extensions=[*LEAF_EXTENSIONS, (unknown, False)])
    ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])


# -- leaf key type and names ---------------------------------------------------------------


def test_rejects_rsa_leaf_key(root) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _custom_cert(*root, rsa_key.public_key(), extensions=LEAF_EXTENSIONS)
    with pytest.raises(ix.X509Error, match="P-256 or Ed25519"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])


def test_rejects_p384_leaf_key(root) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    cert = _custom_cert(*root, p384.public_key(), extensions=LEAF_EXTENSIONS)
    with pytest.raises(ix.X509Error, match="P-256 or Ed25519"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]])


def test_rejects_san_dns_mismatch(chain, root) -> None:
    with pytest.raises(ix.X509Error, match="no dNSName SAN equal"):
        ix.validate_x5c(chain, [root[1]], dns_name="evil.example")
    with pytest.raises(ix.X509Error, match="no dNSName SAN equal"):
        ix.validate_x5c(chain, [root[1]], dns_name="intyg.example")  # no suffix matching


def test_rejects_san_uri_mismatch(chain, root) -> None:
    with pytest.raises(ix.X509Error, match="no URI SAN equal"):
        ix.validate_x5c(chain, [root[1]], uri=URI + "/")


def test_rejects_san_check_when_leaf_has_no_san(root, leaf_key) -> None:
    cert = ix.make_leaf(*root, leaf_key, common_name=DNS)
    with pytest.raises(ix.X509Error, match="no dNSName SAN equal"):
        ix.validate_x5c(ix.x5c_from_certs([cert]), [root[1]], dns_name=DNS)


def test_make_leaf_needs_private_issuer_key(root, leaf_key) -> None:
    with pytest.raises(ix.X509Error, match="no private part"):
        ix.make_leaf(root[0].public(), root[1], leaf_key, common_name="x")
