"""Every service documents its API at /openapi.json and /docs (intyg.web.operations): the
protocol and back-office endpoints are listed, HTML pages are not, operation ids are unique."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eid.app import create_app as create_eid
from eid.settings import EidSettings
from intyg.web.crypto_store import generate_master_key
from issuer.app import create_app as create_issuer
from issuer.settings import IssuerSettings
from verifier.app import create_app as create_verifier
from verifier.settings import VerifierSettings
from wallet.app import create_app as create_wallet
from wallet.settings import WalletSettings

OPERATIONS = {"/healthz", "/readyz", "/metrics"}


def _common(tmp_path: Path, name: str, port: int) -> dict[str, Any]:
    return {
        "environment": "development",
        "master_key": generate_master_key(),
        "public_base_url": f"http://127.0.0.1:{port}",
        "data_dir": tmp_path / name,
    }


def build(service: str, tmp_path: Path) -> FastAPI:
    if service == "issuer":
        return create_issuer(IssuerSettings(**_common(tmp_path, "issuer", 1)))
    if service == "wallet":
        return create_wallet(WalletSettings(**_common(tmp_path, "wallet", 2)))
    if service == "verifier":
        return create_verifier(VerifierSettings(**_common(tmp_path, "verifier", 3)))
    return create_eid(EidSettings(environment="development", public_base_url="http://127.0.0.1:4"))


@pytest.fixture(params=["issuer", "wallet", "verifier", "eid"])
def schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict]]:
    client = TestClient(build(request.param, tmp_path))  # routes only; no start-up needed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. FastAPI's "Duplicate Operation ID"
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert client.get("/docs").status_code == 200
    yield request.param, response.json()


#: API paths each service must document (method, path).
EXPECTED = {
    "issuer": {
        ("get", "/.well-known/openid-credential-issuer"),
        ("post", "/nonce"),
        ("post", "/token"),
        ("post", "/credential"),
        ("post", "/notification"),
        ("get", "/offers/{offer_id}"),
        ("get", "/statuslists/{list_id}"),
        ("post", "/backoffice/v1/token"),
        ("post", "/backoffice/v1/offers"),
        ("put", "/backoffice/v1/registrations"),
        ("post", "/backoffice/v1/issuances/{issuance_id}/revoke"),
    },
    "wallet": set(),  # the wallet is pages only: operations are its whole API
    "verifier": {
        ("post", "/api/v1/token"),
        ("post", "/api/v1/transactions"),
        ("get", "/api/v1/transactions/{transaction_id}"),
        ("get", "/request/{transaction_id}"),
        ("post", "/response"),
        ("post", "/deletion"),
    },
    "eid": {
        ("get", "/.well-known/openid-configuration"),
        ("get", "/jwks"),
        ("post", "/token"),
        ("get", "/userinfo"),
        ("post", "/userinfo"),
    },
}
#: HTML pages, never in the schema.
PAGES = {
    "issuer": {"/", "/login", "/login/callback"},
    "wallet": {"/", "/login", "/consents", "/presentations/{public_id}"},
    "verifier": {"/", "/login", "/requests/{tid}"},
    "eid": {"/authorize"},
}


def operations(schema: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, item in schema["paths"].items() for method in item}


def test_api_paths_are_documented(schema: tuple[str, dict]) -> None:
    service, document = schema
    listed = operations(document)
    assert EXPECTED[service] <= listed, EXPECTED[service] - listed
    assert {("get", path) for path in OPERATIONS} <= listed


def test_pages_are_not_in_the_schema(schema: tuple[str, dict]) -> None:
    service, document = schema
    assert not PAGES[service] & set(document["paths"])


def test_every_operation_has_a_summary_and_a_unique_id(schema: tuple[str, dict]) -> None:
    _, document = schema
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert all(op.get("summary") for item in document["paths"].values() for op in item.values())


def test_production_serves_docs_unless_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def production_issuer() -> TestClient:
        settings = IssuerSettings(
            master_key=generate_master_key(),
            public_base_url="https://issuer.example",
            data_dir=tmp_path,
        )
        return TestClient(create_issuer(settings))

    assert "/credential" in production_issuer().get("/openapi.json").json()["paths"]
    monkeypatch.setenv("INTYG_API_DOCS", "false")
    hidden = production_issuer()
    assert hidden.get("/openapi.json").status_code == 404
    assert hidden.get("/docs").status_code == 404
