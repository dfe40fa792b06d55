"""Issuer schema and migrations, signing keys and rotation, status allocation and publication
(security.md T053, T054, T124, I2, L16), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient

from intyg import jose, vcdm, x509
from intyg import status as core_status
from intyg.web import db
from issuer import models, records
from issuer import status as issuer_status
from issuer.app import IssuerContext, create_app
from issuer.db import migrate
from issuer.keys import KeyRing, KeysError
from issuer.settings import IssuerSettings

from .conftest import ISSUER_URL, Clock, make_settings

PERSONAL_NUMBER = "198112189876"


# -- helpers -------------------------------------------------------------------------------


def _person_id(ctx: IssuerContext) -> int:
    with db.session(ctx.engine) as unit:
        person = ctx.person_vault().upsert(
            unit,
            PERSONAL_NUMBER,
            given_name="Johan",
            family_name="Berg",
            birthdate="1981-12-18",
            now=ctx.clock(),
        )
        assert person.id is not None
        return person.id


def _issue(ctx: IssuerContext, kind: str, person_id: int, *, expires_in: int = 3600) -> str:
    """Allocate a status entry and record an issuance, as the credential endpoint will."""
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        allocation = issuer_status.allocate(unit, ctx.settings, kind, now)
        return records.record_issuance(
            unit,
            person_id=person_id,
            record_id=None,
            configuration_id="RegistrationCertificate_dc+sd-jwt",
            credential_format="dc+sd-jwt" if kind == issuer_status.TSL else "jwt_vc_json",
            allocation=allocation,
            kid=ctx.keys.active().kid,
            proof_hash=models.digest(jose.b64url_encode(time.time_ns().to_bytes(8, "big"))),
            issued_at=now,
            expires_at=now + expires_in,
        )


def _issuance(ctx: IssuerContext, issuance_id: str) -> models.Issuance:
    with db.session(ctx.engine, write=False) as unit:
        row = unit.get(models.Issuance, issuance_id)
        assert row is not None
        return row


def _set(ctx: IssuerContext, issuance_id: str, value: int) -> None:
    with db.session(ctx.engine) as unit:
        issuer_status.set_status(unit, issuance_id, value, ctx.clock())


def _anchor(ctx: IssuerContext) -> x509.Certificate:
    pem = ctx.keys.trust_anchor_pem()
    assert pem is not None
    return x509.cert_from_pem(pem)


def _tsl_status(ctx: IssuerContext, token: str, issuance: models.Issuance) -> int:
    jws = jose.parse_jws(token)
    chain = x509.validate_x5c(jws.header["x5c"], [_anchor(ctx)], uri=ctx.settings.issuer_identifier)
    uri = ctx.settings.status_list_url(issuance.status_list_id)
    verified = core_status.verify_status_list_token(token, chain.key, uri=uri, require_exp=True)
    return verified.status(core_status.StatusListReference(issuance.status_idx, uri))


def _bitstring_bit(ctx: IssuerContext, token: str, idx: int) -> int:
    jws = jose.parse_jws(token)
    chain = x509.validate_x5c(jws.header["x5c"], [_anchor(ctx)], uri=ctx.settings.issuer_identifier)
    verified = vcdm.verify_credential(token, lambda header, claims: chain.key)
    subject = verified.credential_subjects[0]
    return core_status.BitstringStatusList.decode(subject["encodedList"]).get(idx)


# -- models and migrations -----------------------------------------------------------------


def test_migrated_schema_matches_models(engine: sa.Engine) -> None:
    migrate(engine)
    with engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), models.metadata
        )
    assert diff == []


def test_migrate_twice_is_a_no_op(engine: sa.Engine) -> None:
    migrate(engine)
    migrate(engine)
    with engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        tables = set(sa.inspect(connection).get_table_names())
    assert version == "0001"
    assert set(models.metadata.tables) <= tables


def test_digest_is_sha256_base64url() -> None:
    assert models.digest("abc") == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    assert len(models.digest("x" * 1000)) == models.DIGEST_LENGTH


def test_client_secret_hash_round_trip() -> None:
    stored = models.hash_client_secret("s3cret")
    assert "s3cret" not in stored and stored.startswith("scrypt$")
    assert models.verify_client_secret("s3cret", stored)
    assert not models.verify_client_secret("s3creT", stored)
    assert models.hash_client_secret("s3cret") != stored  # salted


@pytest.mark.parametrize(
    "stored", ["", "scrypt$1$2", "bcrypt$16384$8$1$AA$AA", "scrypt$x$8$1$AA$AA"]
)
def test_client_secret_malformed_hash_never_verifies(stored: str) -> None:
    assert not models.verify_client_secret("s3cret", stored)


def test_single_use_rows_are_consumed_once(ctx: IssuerContext) -> None:
    now = ctx.clock()
    with db.session(ctx.engine) as unit:
        unit.add(models.CNonce(nonce_hash=models.digest("n1"), created_at=now, expires_at=now + 60))
    with db.session(ctx.engine) as unit:
        first = db.consume_once(
            unit,
            models.CNonce,
            "nonce_hash",
            models.digest("n1"),
            now=now,  # type: ignore[arg-type]
            where=[models.CNonce.expires_at > now],  # type: ignore[list-item]
        )
    with db.session(ctx.engine) as unit:
        second = db.consume_once(
            unit,
            models.CNonce,
            "nonce_hash",
            models.digest("n1"),
            now=now,  # type: ignore[arg-type]
        )
    assert first is not None and first.used_at == now
    assert second is None


# -- keys ----------------------------------------------------------------------------------


def test_first_start_generates_dev_ca_and_x5c_key(ctx: IssuerContext) -> None:
    key, x5c = ctx.keys.active_signing_key()
    assert key.has_private and key.alg == "ES256" and key.kid == key.thumbprint()
    chain = x509.validate_x5c(x5c, [_anchor(ctx)], uri=ISSUER_URL, dns_name="issuer.test")
    assert chain.key.thumbprint() == key.thumbprint()
    assert len(x5c) == 1  # the trust anchor is never in x5c (HAIP)
    signature = key.sign(b"data")
    assert chain.key.verify(signature, b"data")


def test_private_keys_are_sealed_at_rest(ctx: IssuerContext) -> None:
    key, _ = ctx.keys.active_signing_key()
    d = key.private_jwk()["d"]
    with db.session(ctx.engine, write=False) as unit:
        rows = list(unit.scalars(sa.select(models.SigningKey)))
    assert {row.purpose for row in rows} == {"issuer", "dev_ca"}
    for row in rows:
        assert row.sealed_private_jwk is not None and row.sealed_private_jwk.startswith("v1.")
        assert d not in row.sealed_private_jwk and "d" not in row.public_jwk


def test_restart_keeps_the_keys(ctx: IssuerContext) -> None:
    kid = ctx.keys.active().kid
    again = KeyRing(ctx.engine, ctx.settings, ctx.store, ctx.clock)
    again.ensure()
    assert again.active().kid == kid
    assert len(again.jwks()["keys"]) == 1


def test_jwks_and_jwt_vc_issuer_metadata(ctx: IssuerContext) -> None:
    key, x5c = ctx.keys.active_signing_key()
    metadata = ctx.keys.jwt_vc_issuer_metadata()
    assert metadata["issuer"] == ISSUER_URL
    (jwk,) = metadata["jwks"]["keys"]
    assert jwk["kid"] == key.kid and jwk["use"] == "sig" and jwk["alg"] == "ES256"
    assert jwk["x5c"] == x5c and "d" not in jwk
    assert jose.key_from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y")}).thumbprint() == (
        key.thumbprint()
    )


def test_rotation_keeps_old_key_until_what_it_signed_expired(ctx: IssuerContext) -> None:
    clock: Clock = ctx.clock  # type: ignore[assignment]
    old = ctx.keys.active().kid
    person = _person_id(ctx)
    _issue(ctx, issuer_status.TSL, person, expires_in=30 * 86400)
    new = ctx.keys.rotate()
    assert new != old and ctx.keys.active().kid == new
    assert [k["kid"] for k in ctx.keys.jwks()["keys"]] == [new, old]
    clock.advance(2 * 86400)
    assert ctx.keys.retire_expired() == []  # a credential signed by the old key is valid
    clock.advance(29 * 86400)
    assert ctx.keys.retire_expired() == [old]
    assert [k["kid"] for k in ctx.keys.jwks()["keys"]] == [new]


def test_rotated_key_without_issuances_waits_for_status_tokens(ctx: IssuerContext) -> None:
    clock: Clock = ctx.clock  # type: ignore[assignment]
    old = ctx.keys.active().kid
    ctx.keys.rotate()
    assert ctx.keys.retire_expired() == []
    clock.advance(ctx.settings.status_token_lifetime_seconds)
    assert ctx.keys.retire_expired() == [old]


def _write_key_files(
    folder: Path, key: jose.Key, chain: list[x509.Certificate]
) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization

    key_file, chain_file = folder / "issuer.key", folder / "chain.pem"
    assert key.private_key is not None
    key_file.write_bytes(
        key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    chain_file.write_text("".join(x509.cert_to_pem(cert) for cert in chain))
    return key_file, chain_file


def test_production_keys_come_from_files(
    database_url: str, tmp_path: Path, engine: sa.Engine, clock: Clock
) -> None:
    ca_key, ca_cert = x509.make_ca("Agency root")
    mid_key, mid_cert = x509.make_intermediate_ca(ca_key, ca_cert, "Agency issuing CA")
    key = jose.generate_key()
    leaf = x509.make_leaf(mid_key, mid_cert, key, common_name="AF", san_uri=[ISSUER_URL])
    key_file, chain_file = _write_key_files(tmp_path, key, [leaf, mid_cert])
    settings = make_settings(
        database_url, tmp_path, signing_key_file=key_file, signing_cert_chain_file=chain_file
    )
    migrate(engine)
    ring = KeyRing(engine, settings, settings.crypto_store(), clock)
    ring.ensure()
    active = ring.active()
    assert active.kid == key.thumbprint() and len(active.x5c) == 2
    assert x509.validate_x5c(active.x5c, [ca_cert], uri=ISSUER_URL).key.thumbprint() == active.kid
    assert ring.trust_anchor_pem() is None
    with db.session(engine, write=False) as unit:
        row = unit.get(models.SigningKey, active.kid)
    assert row is not None and row.sealed_private_jwk is None and row.source == "file"
    with pytest.raises(KeysError, match="replacing the files"):
        ring.rotate()


def test_key_file_whose_chain_is_for_another_key_is_refused(
    database_url: str, tmp_path: Path, engine: sa.Engine, clock: Clock
) -> None:
    ca_key, ca_cert = x509.make_ca("Agency root")
    leaf = x509.make_leaf(ca_key, ca_cert, jose.generate_key(), common_name="AF")
    key_file, chain_file = _write_key_files(tmp_path, jose.generate_key(), [leaf])
    settings = make_settings(
        database_url, tmp_path, signing_key_file=key_file, signing_cert_chain_file=chain_file
    )
    migrate(engine)
    with pytest.raises(KeysError, match="not for the signing key"):
        KeyRing(engine, settings, settings.crypto_store(), clock).ensure()


def test_key_file_settings_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        make_settings("sqlite:///x", tmp_path, signing_key_file=tmp_path / "k.pem")


# -- status allocation ---------------------------------------------------------------------


def test_start_up_creates_one_tsl_and_one_bitstring_pair(ctx: IssuerContext) -> None:
    with db.session(ctx.engine, write=False) as unit:
        rows = list(unit.scalars(sa.select(models.StatusListRow).order_by(models.StatusListRow.id)))
    kinds = sorted((row.kind, row.purpose, row.bits, row.size) for row in rows)
    assert kinds == [
        ("bitstring", "revocation", 1, 131_072),
        ("bitstring", "suspension", 1, 131_072),
        ("tsl", "status", 2, 131_072),
    ]
    revocation = next(row for row in rows if row.purpose == "revocation")
    assert revocation.suspension_list_id in {row.id for row in rows}


def test_2000_allocations_are_unique_and_not_sequential(ctx: IssuerContext) -> None:
    with db.session(ctx.engine) as unit:
        allocations = [
            issuer_status.allocate(unit, ctx.settings, issuer_status.TSL, ctx.clock())
            for _ in range(2000)
        ]
    indices = [allocation.idx for allocation in allocations]
    assert len({(a.list_id, a.idx) for a in allocations}) == 2000
    assert indices != sorted(indices)
    steps = [b - a for a, b in itertools.pairwise(indices)]
    assert sum(1 for step in steps if abs(step) <= 1) < 20  # adjacent draws are rare
    assert max(indices) - min(indices) > 100_000  # drawn from the whole list


def test_taken_index_is_drawn_again(ctx: IssuerContext) -> None:
    draws = iter([7, 7, 7, 9])
    with db.session(ctx.engine) as unit:
        first = issuer_status.allocate(
            unit, ctx.settings, issuer_status.TSL, ctx.clock(), randbelow=lambda n: next(draws)
        )
        second = issuer_status.allocate(
            unit, ctx.settings, issuer_status.TSL, ctx.clock(), randbelow=lambda n: next(draws)
        )
    assert (first.idx, second.idx) == (7, 9)


def test_full_list_rolls_over_to_a_new_list_and_never_reuses(
    database_url: str, tmp_path: Path, engine: sa.Engine, clock: Clock
) -> None:
    from issuer.app import build_context, startup

    settings = make_settings(database_url, tmp_path, status_list_size=16)
    context = build_context(settings, clock=clock, engine=engine)
    startup(context)
    with db.session(engine) as unit:
        allocations = [
            issuer_status.allocate(unit, settings, issuer_status.TSL, clock()) for _ in range(40)
        ]
    assert len({(a.list_id, a.idx) for a in allocations}) == 40
    lists = {a.list_id for a in allocations}
    assert len(lists) >= 3
    with db.session(engine, write=False) as unit:
        full = unit.scalars(
            sa.select(models.StatusListRow.id).where(models.StatusListRow.full.is_(True))  # type: ignore[attr-defined]
        ).all()
    assert len(full) >= 2


def test_concurrent_allocation_has_no_duplicates(ctx: IssuerContext) -> None:
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(10):
                with db.session(ctx.engine) as unit:
                    a = issuer_status.allocate(unit, ctx.settings, issuer_status.TSL, ctx.clock())
                results.append((a.list_id, a.idx))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 200 and len(set(results)) == 200
    with db.session(ctx.engine, write=False) as unit:
        assert unit.scalar(sa.select(sa.func.count()).select_from(models.StatusEntry)) == 200


def test_status_references(ctx: IssuerContext) -> None:
    tsl = issuer_status.Allocation(issuer_status.TSL, 1, 412)
    assert issuer_status.status_claim(ctx.settings, tsl) == {
        "status_list": {"idx": 412, "uri": f"{ISSUER_URL}/statuslists/1"}
    }
    bitstring = issuer_status.Allocation(issuer_status.BITSTRING, 3, 94567, 2)
    entries = issuer_status.credential_status(ctx.settings, bitstring)
    assert [e["statusPurpose"] for e in entries] == ["revocation", "suspension"]
    assert entries[0]["statusListCredential"] == f"{ISSUER_URL}/status/3"
    assert entries[1]["statusListCredential"] == f"{ISSUER_URL}/status/2"
    for entry in entries:
        parsed = core_status.parse_bitstring_status_entry(entry)
        assert parsed.index == 94567
    with pytest.raises(ValueError, match="Token Status List"):
        issuer_status.status_claim(ctx.settings, bitstring)
    with pytest.raises(ValueError, match="Bitstring"):
        issuer_status.credential_status(ctx.settings, tsl)


def test_duplicate_proof_never_mints_twice(ctx: IssuerContext) -> None:
    person = _person_id(ctx)
    now = ctx.clock()

    def mint() -> None:
        with db.session(ctx.engine) as unit:
            allocation = issuer_status.allocate(unit, ctx.settings, issuer_status.TSL, now)
            records.record_issuance(
                unit,
                person_id=person,
                record_id=None,
                configuration_id="RegistrationCertificate_dc+sd-jwt",
                credential_format="dc+sd-jwt",
                allocation=allocation,
                kid=ctx.keys.active().kid,
                proof_hash=models.digest("the same proof"),
                issued_at=now,
                expires_at=now + 60,
            )

    mint()
    with pytest.raises(sa.exc.IntegrityError):
        mint()
    with db.session(ctx.engine, write=False) as unit:
        assert unit.scalar(sa.select(sa.func.count()).select_from(models.Issuance)) == 1
        # the retried request's status entry rolled back with it
        assert unit.scalar(sa.select(sa.func.count()).select_from(models.StatusEntry)) == 1


# -- status changes ------------------------------------------------------------------------


def test_revoke_shows_in_the_served_token_list(ctx: IssuerContext, client: TestClient) -> None:
    person = _person_id(ctx)
    issuance_id = _issue(ctx, issuer_status.TSL, person)
    other_id = _issue(ctx, issuer_status.TSL, person)
    issuance = _issuance(ctx, issuance_id)
    url = f"/statuslists/{issuance.status_list_id}"
    before = client.get(url)
    assert before.status_code == 200
    assert before.headers["content-type"] == "application/statuslist+jwt"
    assert before.headers["cache-control"] == "public, max-age=5"
    assert _tsl_status(ctx, before.text, issuance) == core_status.VALID
    _set(ctx, issuance_id, issuer_status.INVALID)
    after = client.get(url)  # same second: the version change beats the cache
    assert _tsl_status(ctx, after.text, issuance) == core_status.INVALID
    assert _tsl_status(ctx, after.text, _issuance(ctx, other_id)) == core_status.VALID
    claims = jose.parse_jws(after.text).claims()
    assert claims["sub"] == ctx.settings.status_list_url(issuance.status_list_id)
    assert claims["ttl"] == 5 and claims["exp"] > claims["iat"] and claims["iss"] == ISSUER_URL
    assert _issuance(ctx, issuance_id).status == "revoked"


def test_unchanged_list_is_served_from_cache_for_at_most_ttl(ctx: IssuerContext) -> None:
    clock: Clock = ctx.clock  # type: ignore[assignment]
    list_id = _issuance(ctx, _issue(ctx, issuer_status.TSL, _person_id(ctx))).status_list_id
    first = ctx.publisher.token(list_id)
    assert ctx.publisher.token(list_id) is first
    clock.advance(ctx.settings.status_ttl_seconds)
    fresh = ctx.publisher.token(list_id)
    assert fresh is not first and fresh.generated_at == clock.now


def test_suspend_then_unsuspend(ctx: IssuerContext) -> None:
    issuance_id = _issue(ctx, issuer_status.TSL, _person_id(ctx))
    issuance = _issuance(ctx, issuance_id)
    _set(ctx, issuance_id, issuer_status.SUSPENDED)
    token = ctx.publisher.token(issuance.status_list_id).body
    assert _tsl_status(ctx, token, issuance) == core_status.SUSPENDED
    assert _issuance(ctx, issuance_id).status == "suspended"
    _set(ctx, issuance_id, issuer_status.VALID)
    token = ctx.publisher.token(issuance.status_list_id).body
    assert _tsl_status(ctx, token, issuance) == core_status.VALID
    assert _issuance(ctx, issuance_id).status == "valid"


@pytest.mark.parametrize("value", [issuer_status.VALID, issuer_status.SUSPENDED])
def test_revocation_cannot_be_undone(ctx: IssuerContext, value: int) -> None:
    issuance_id = _issue(ctx, issuer_status.TSL, _person_id(ctx))
    _set(ctx, issuance_id, issuer_status.INVALID)
    with pytest.raises(issuer_status.StatusManagementError, match="stays revoked"):
        _set(ctx, issuance_id, value)
    issuance = _issuance(ctx, issuance_id)
    token = ctx.publisher.token(issuance.status_list_id).body
    assert _tsl_status(ctx, token, issuance) == core_status.INVALID


def test_unknown_status_value_is_refused(ctx: IssuerContext) -> None:
    issuance_id = _issue(ctx, issuer_status.TSL, _person_id(ctx))
    with pytest.raises(issuer_status.StatusManagementError, match="VALID, INVALID or SUSPENDED"):
        _set(ctx, issuance_id, 3)


def test_unknown_issuance_is_refused(ctx: IssuerContext) -> None:
    with pytest.raises(issuer_status.StatusManagementError, match="not found"):
        _set(ctx, "00000000-0000-4000-8000-000000000000", issuer_status.INVALID)


def test_bitstring_revocation_and_suspension_lists(ctx: IssuerContext, client: TestClient) -> None:
    issuance_id = _issue(ctx, issuer_status.BITSTRING, _person_id(ctx))
    issuance = _issuance(ctx, issuance_id)
    with db.session(ctx.engine, write=False) as unit:
        revocation = unit.get(models.StatusListRow, issuance.status_list_id)
        assert revocation is not None and revocation.suspension_list_id is not None
        suspension_id = revocation.suspension_list_id

    def bits() -> tuple[int, int]:
        responses = [client.get(f"/status/{i}") for i in (revocation.id, suspension_id)]
        for response in responses:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/vc+jwt"
            assert response.headers["cache-control"] == "public, max-age=5"
        return (
            _bitstring_bit(ctx, responses[0].text, issuance.status_idx),
            _bitstring_bit(ctx, responses[1].text, issuance.status_idx),
        )

    assert bits() == (0, 0)
    _set(ctx, issuance_id, issuer_status.SUSPENDED)
    assert bits() == (0, 1)
    _set(ctx, issuance_id, issuer_status.VALID)
    assert bits() == (0, 0)
    _set(ctx, issuance_id, issuer_status.INVALID)
    assert bits() == (1, 0)
    claims = jose.parse_jws(client.get(f"/status/{revocation.id}").text).claims()
    assert claims["id"] == ctx.settings.bitstring_list_url(revocation.id)  # type: ignore[arg-type]
    assert claims["credentialSubject"]["statusPurpose"] == "revocation"
    assert claims["credentialSubject"]["ttl"] == 5000
    assert claims["issuer"] == ISSUER_URL


# -- the app -------------------------------------------------------------------------------


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_published_key_documents(client: TestClient) -> None:
    jwks = client.get("/jwks.json")
    assert jwks.status_code == 200
    assert jwks.headers["content-type"] == "application/jwk-set+json"
    metadata = client.get("/.well-known/jwt-vc-issuer").json()
    assert metadata["issuer"] == ISSUER_URL and metadata["jwks"] == jwks.json()
    assert client.get("/.well-known/jwt-vc-issuer/other").status_code == 404


def test_wrong_kind_or_unknown_list_is_404(client: TestClient, ctx: IssuerContext) -> None:
    with db.session(ctx.engine, write=False) as unit:
        tsl_id = unit.scalar(
            sa.select(models.StatusListRow.id).where(models.StatusListRow.kind == "tsl")
        )
    assert client.get(f"/statuslists/{tsl_id}").status_code == 200
    response = client.get(f"/status/{tsl_id}")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert client.get("/statuslists/999").status_code == 404
    assert client.get("/statuslists/abc").status_code == 400


def test_oversize_body_is_refused(client: TestClient) -> None:
    response = client.post("/healthz", content=b"x" * (256 * 1024 + 1))
    assert response.status_code == 413


def test_identifier_with_path_serves_metadata_under_it(
    database_url: str, tmp_path: Path, engine: sa.Engine, clock: Clock
) -> None:
    settings = make_settings(database_url, tmp_path, public_base_url="https://agency.test/af")
    with TestClient(create_app(settings, clock=clock, engine=engine)) as client:
        assert client.get("/.well-known/jwt-vc-issuer").status_code == 404
        metadata = client.get("/.well-known/jwt-vc-issuer/af").json()
    assert metadata["issuer"] == "https://agency.test/af"


# -- a real server ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, IssuerSettings]]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(database_url, tmp_path, public_base_url=base, dev_sample_data=True)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield base, settings
    finally:
        uvicorn_server.should_exit = True
        thread.join(10)


def test_real_server_publishes_keys_and_lists(server: tuple[str, IssuerSettings]) -> None:
    base, settings = server
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/readyz").json() == {"status": "ready"}
        jwks = http.get("/jwks.json").json()
        metadata = http.get("/.well-known/jwt-vc-issuer").json()
        assert metadata == {"issuer": base, "jwks": jwks}
        (jwk,) = jwks["keys"]
        key = jose.key_from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y")})
        engine = db.create_engine(settings.sqlalchemy_url())
        try:
            with db.session(engine, write=False) as unit:
                tsl_id = unit.scalar(
                    sa.select(models.StatusListRow.id).where(models.StatusListRow.kind == "tsl")
                )
        finally:
            engine.dispose()
        response = http.get(
            f"/statuslists/{tsl_id}", headers={"Accept": "application/statuslist+jwt"}
        )
        assert response.status_code == 200
        token = core_status.verify_status_list_token(
            response.text, key, uri=f"{base}/statuslists/{tsl_id}"
        )
        assert token.ttl == 5 and len(token.status_list) == 131_072
        assert jose.parse_jws(response.text).header["x5c"] == jwk["x5c"]


def test_real_server_shows_a_revocation_within_ttl(
    server: tuple[str, IssuerSettings], clock: Clock
) -> None:
    base, settings = server
    engine = db.create_engine(settings.sqlalchemy_url())
    try:
        from issuer.app import build_context

        # A second replica on the same database revokes; the server must show it.
        replica = build_context(settings, engine=engine)
        with db.session(engine) as unit:
            replica.vault = records.PersonVault(
                replica.store, records.load_lookup_secret(unit, replica.store, clock())
            )
        issuance_id = _issue(replica, issuer_status.TSL, _person_id(replica))
        issuance = _issuance(replica, issuance_id)
        url = f"{base}/statuslists/{issuance.status_list_id}"
        with httpx.Client(timeout=10) as http:
            assert _tsl_status(replica, http.get(url).text, issuance) == core_status.VALID
            _set(replica, issuance_id, issuer_status.INVALID)
            revoked_at = time.monotonic()
            while _tsl_status(replica, http.get(url).text, issuance) != core_status.INVALID:
                assert time.monotonic() - revoked_at < settings.status_ttl_seconds
                time.sleep(0.2)
    finally:
        engine.dispose()


def test_issuance_rows_keep_no_credential_or_holder_key() -> None:
    columns = set(models.Issuance.__table__.columns.keys())  # type: ignore[attr-defined]
    assert not columns & {"credential", "holder_jwk", "cnf", "jwk", "signature"}
    assert models.Issuance.__table__.columns["proof_hash"].unique  # type: ignore[attr-defined]


def test_dates_round_trip(ctx: IssuerContext) -> None:
    person = _person_id(ctx)
    with db.session(ctx.engine) as unit:
        unit.add(
            models.AFRegistration(
                person_id=person,
                registered=True,
                registered_since=datetime.date(2026, 1, 12),
                category_code="11",
                category_label="Öppet arbetslös",
                created_at=1,
                updated_at=1,
            )
        )
    with db.session(ctx.engine, write=False) as unit:
        row = unit.scalars(sa.select(models.AFRegistration)).one()
    assert row.registered_since == datetime.date(2026, 1, 12)
