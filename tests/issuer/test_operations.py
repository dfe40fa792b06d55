"""The issuer's operations endpoints (docs/running.md "Operations"): readiness follows start-up,
the database and the signing key; issuances are counted once per credential; personal numbers
in back-office paths never reach the logs. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from intyg.web import db
from issuer.app import create_app
from issuer.models import SigningKey
from tests.issuer.conftest import ISSUER_URL, Clock, make_settings
from tests.issuer.test_backoffice import ANNA, PREFIX, bearer, make_client, registration
from tests.issuer.test_oid4vci_flow import make_harness
from tests.web.logcapture import access_lines, captured


def issuances(configuration: str, credential_format: str) -> float:
    labels = {"configuration": configuration, "format": credential_format}
    return REGISTRY.get_sample_value("intyg_issuances_total", labels) or 0.0


def test_issuances_are_counted_per_credential(
    database_url: str, tmp_path: Path, clock: Clock
) -> None:
    with make_harness(database_url, tmp_path, clock) as harness:
        sd_jwt = issuances(harness.sd_jwt_id, "dc+sd-jwt")
        vcdm = issuances(harness.vcdm_id, "jwt_vc_json")
        wallet = harness.wallet()
        token = wallet.pre_authorized_token(wallet.resolve_offer(harness.offer().link))
        wallet.request_credentials(token, configuration_id=harness.sd_jwt_id, count=3)
        wallet.request_credentials(token, configuration_id=harness.vcdm_id)
        refused = harness.client.post("/credential", json={"credential_configuration_id": "x"})
        assert refused.status_code in (400, 401)
        assert issuances(harness.sd_jwt_id, "dc+sd-jwt") == sd_jwt + 3
        assert issuances(harness.vcdm_id, "jwt_vc_json") == vcdm + 1
        metrics = harness.client.get("/metrics").text
    assert f'intyg_issuances_total{{configuration="{harness.sd_jwt_id}"' in metrics


def _set_keys_active(engine: sa.Engine, active: bool) -> None:
    with db.session(engine) as unit:
        unit.execute(
            sa.update(SigningKey).where(SigningKey.purpose == "issuer").values(active=active)
        )


def test_readiness_follows_start_up_database_and_keys(
    database_url: str, tmp_path: Path, clock: Clock, engine: sa.Engine
) -> None:
    settings = make_settings(database_url, tmp_path, key_cache_seconds=0)
    app = create_app(settings, clock=clock, engine=engine)
    not_started = TestClient(app, base_url=ISSUER_URL).get("/readyz")
    assert not_started.status_code == 503 and not_started.json()["check"] == "started"
    with TestClient(app, base_url=ISSUER_URL) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        _set_keys_active(engine, False)
        no_key = client.get("/readyz")
        assert no_key.status_code == 503 and no_key.json()["check"] == "keys"
        _set_keys_active(engine, True)
        assert client.get("/readyz").status_code == 200
        with db.session(engine) as unit:
            unit.execute(sa.text("ALTER TABLE alembic_version RENAME TO alembic_version_moved"))
        no_schema = client.get("/readyz")
        assert no_schema.status_code == 503 and no_schema.json()["check"] == "database"
        assert client.get("/healthz").json() == {"status": "ok"}
        with db.session(engine) as unit:
            unit.execute(sa.text("ALTER TABLE alembic_version_moved RENAME TO alembic_version"))


def test_personal_number_in_a_back_office_path_is_not_logged(
    database_url: str, tmp_path: Path, clock: Clock
) -> None:
    for client in make_client(database_url, tmp_path, clock):
        headers = bearer(client)
        with captured() as stream:
            put = client.put(f"{PREFIX}/registrations", json=registration(), headers=headers)
            # The path takes a person reference; a client sending the number gets a 404.
            got = client.get(f"{PREFIX}/registrations/{ANNA}", headers=headers)
            hyphen = client.get(f"{PREFIX}/registrations/{ANNA[:8]}-{ANNA[8:]}", headers=headers)
        assert put.status_code == 200 and got.status_code == hyphen.status_code == 404
        output = stream.getvalue()
        assert ANNA not in output and ANNA[2:] not in output and ANNA[:8] not in output
        paths = {line["path"] for line in access_lines(stream)}
        assert paths == {f"{PREFIX}/registrations", f"{PREFIX}/registrations/{{person}}"}
