"""The `intyg` command line: decode (incl. a token from the IETF reference implementation)
and keys new."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from jwcrypto.jwk import JWK
from sd_jwt.common import SDObj
from sd_jwt.holder import SDJWTHolder
from sd_jwt.issuer import SDJWTIssuer
from typer.testing import CliRunner

from intyg import jose, vcdm
from intyg.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def reference_presentation(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """An SD-JWT+KB made entirely by the reference implementation (PyPI sd-jwt)."""
    issuer_key = JWK.generate(kty="EC", crv="P-256")
    holder_key = JWK.generate(kty="EC", crv="P-256")
    claims = {
        "iss": "https://issuer.example",
        "iat": int(time.time()),
        "vct": "https://intyg.example/vct/af-inskrivningsintyg/1",
        SDObj("given_name"): "Erika",
        SDObj("registered_since"): "2026-01-12",
        "nationalities": [SDObj("DE"), "SE"],
    }
    issued = SDJWTIssuer(claims, issuer_key, holder_key, add_decoy_claims=True)
    holder = SDJWTHolder(issued.sd_jwt_issuance)
    holder.create_presentation(
        {"registered_since": True, "nationalities": [True]},
        "nonce-1",
        "https://verifier.example",
        holder_key,
        "ES256",
    )
    key_file = tmp_path_factory.mktemp("keys") / "issuer.jwk"
    key_file.write_text(issuer_key.export_public())
    return holder.sd_jwt_presentation, key_file


def test_decode_reference_token_shows_claims_and_verifies(reference_presentation) -> None:
    token, key_file = reference_presentation
    result = runner.invoke(app, ["decode", token, "--key", str(key_file)])
    assert result.exit_code == 0, result.output
    assert "SD-JWT+KB" in result.output
    assert '"registered_since": "2026-01-12"' in result.output
    assert '"given_name"' not in result.output  # not disclosed by the holder
    assert "issuer signature: verified" in result.output
    assert "KB-JWT (signature by cnf key, sd_hash): verified" in result.output
    assert "KB-JWT aud and nonce: not verified" in result.output


def test_decode_without_key_says_signature_not_verified(reference_presentation) -> None:
    token, _ = reference_presentation
    result = runner.invoke(app, ["decode", token, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["claims"]["nationalities"] == ["DE", "SE"]
    outcomes = {check["name"]: check["outcome"] for check in report["checks"]}
    assert outcomes["issuer signature"] == "not verified"


def test_decode_reads_stdin(reference_presentation) -> None:
    token, _ = reference_presentation
    result = runner.invoke(app, ["decode", "-"], input=token + "\n")
    assert result.exit_code == 0 and "2026-01-12" in result.output


def test_decode_with_wrong_key_fails(reference_presentation, tmp_path: Path) -> None:
    token, _ = reference_presentation
    other = tmp_path / "other.jwk"
    other.write_text(json.dumps(jose.generate_key().public_jwk()))
    result = runner.invoke(app, ["decode", token, "--key", str(other)])
    assert result.exit_code == 1
    assert "issuer signature: FAILED" in result.output


def test_decode_tampered_disclosure_fails(reference_presentation) -> None:
    token, _ = reference_presentation
    parts = token.split("~")
    forged = jose.b64url_encode(json.dumps(["salt", "registered_since", "2020-01-01"]).encode())
    parts[1] = forged
    result = runner.invoke(app, ["decode", "~".join(parts)])
    assert result.exit_code == 1
    assert "structure (RFC 9901 §7.1 steps 3-5): FAILED" in result.output


def test_decode_vp_jwt_shows_embedded_credential() -> None:
    issuer, holder = jose.generate_key(), jose.generate_key()
    credential = vcdm.credential(
        issuer="https://issuer.example",
        credential_subject={"name": "Erika"},
        types=["ExampleCredential"],
    )
    vc_jwt = vcdm.sign_credential(credential, issuer)
    vp_jwt = vcdm.sign_presentation(
        [vc_jwt], holder, audience="https://verifier.example", nonce="n-1"
    )
    result = runner.invoke(app, ["decode", vp_jwt])
    assert result.exit_code == 0, result.output
    assert "W3C VP (vp+jwt)" in result.output and "W3C VC (vc+jwt)" in result.output
    assert '"name": "Erika"' in result.output


def test_decode_garbage_fails_cleanly() -> None:
    result = runner.invoke(app, ["decode", "not-a-token"])
    assert result.exit_code == 1
    assert "FAILED" in result.output and "Traceback" not in result.output


def test_decode_jwe_says_encrypted() -> None:
    header = jose.b64url_encode(json.dumps({"alg": "ECDH-ES", "enc": "A128GCM"}).encode())
    result = runner.invoke(app, ["decode", f"{header}.AA.AA.AA.AA"])
    assert result.exit_code == 0
    assert "JWE (encrypted)" in result.output and "not verified" in result.output


def test_keys_new_writes_private_jwk_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "issuer.jwk"
    result = runner.invoke(app, ["keys", "new", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    key = jose.key_from_jwk(json.loads(target.read_text()), allow_private=True)
    public = json.loads(result.stdout)
    assert "d" not in public and public["kid"] == key.thumbprint()


def test_keys_new_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "issuer.jwk"
    target.write_text("keep me")
    result = runner.invoke(app, ["keys", "new", "--out", str(target)])
    assert result.exit_code == 1 and target.read_text() == "keep me"


def test_keys_new_eddsa_and_bad_alg(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["keys", "new", "--alg", "EdDSA", "--out", str(tmp_path / "e.jwk")])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["crv"] == "Ed25519"
    bad = runner.invoke(app, ["keys", "new", "--alg", "HS256", "--out", str(tmp_path / "h.jwk")])
    assert bad.exit_code != 0 and not (tmp_path / "h.jwk").exists()
