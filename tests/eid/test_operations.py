"""The development eID's operations (docs/running.md "Operations"): the picker's decisions
are counted and /readyz asks the code store."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from eid.app import create_app

from .test_eid_app import ISSUER, pick, settings


def decisions(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("intyg_dev_eid_authorizations_total", labels) or 0.0


def test_picker_decisions_are_counted() -> None:
    client = TestClient(create_app(settings()), base_url=ISSUER)
    approved, cancelled = decisions("approved"), decisions("cancelled")
    assert "code" in pick(client, "anna")
    assert pick(client, None)["error"] == "access_denied"
    assert decisions("approved") == approved + 1
    assert decisions("cancelled") == cancelled + 1


def test_readiness_asks_the_code_store() -> None:
    app = create_app(settings())
    client = TestClient(app, base_url=ISSUER)
    assert client.get("/readyz").json() == {"status": "ready"}
    app.state.server.store.close()
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["check"] == "database"
