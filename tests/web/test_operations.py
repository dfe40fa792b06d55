"""/healthz, /readyz, /metrics, the API docs and the operations settings
(intyg.web.operations, docs/running.md "Operations"), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from intyg.web import db, operations
from intyg.web.crypto_store import generate_master_key
from intyg.web.errors import install_error_handlers
from intyg.web.operations import (
    OperationsSettings,
    ReadinessCheck,
    database_check,
    install,
)

ROOT = Path(__file__).resolve().parents[2]


def make_app(
    checks: list[ReadinessCheck],
    *,
    development: bool = True,
    **settings: Any,
) -> TestClient:
    app = FastAPI(title="test service", openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)

    @app.get("/api/things/{thing_id}", summary="A thing")
    def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    install(app, checks=checks, development=development, settings=OperationsSettings(**settings))
    return TestClient(app)


def migrated(engine: sa.Engine) -> sa.Engine:
    """What a service's migrations leave behind that readiness looks at."""
    with db.session(engine) as unit:
        unit.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        unit.execute(sa.text("INSERT INTO alembic_version VALUES ('0001')"))
    return engine


# -- liveness and readiness -------------------------------------------------------------------


def test_ready_when_every_check_holds(engine: sa.Engine) -> None:
    client = make_app(
        [ReadinessCheck("started", lambda: True, "starting"), database_check(migrated(engine))]
    )
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}
    assert response.headers["cache-control"] == "no-store"


def test_database_without_schema_is_not_ready(engine: sa.Engine) -> None:
    client = make_app([database_check(engine)])  # connects, but nothing is migrated
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "check": "database",
        "reason": "the database does not answer",
    }
    assert response.headers["retry-after"] == "5"
    assert client.get("/healthz").status_code == 200  # liveness never touches the database


def test_unreachable_database_is_not_ready(caplog: pytest.LogCaptureFixture) -> None:
    engine = db.create_engine("postgresql://intyg:secret-password@127.0.0.1:1/nothing")
    client = make_app([database_check(engine)])
    with caplog.at_level(logging.WARNING, logger="intyg.web.operations"):
        response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["check"] == "database"
    assert "secret-password" not in response.text and "127.0.0.1" not in response.text
    (record,) = caplog.records
    assert record.getMessage() == "readiness check database failed (ServiceUnavailable)"


def test_checks_run_in_order_and_the_first_failure_is_named(engine: sa.Engine) -> None:
    state: dict[str, Any] = {"started": False, "key_error": None}

    def keys() -> None:
        if state["key_error"] is not None:
            raise state["key_error"]

    client = make_app(
        [
            ReadinessCheck("started", lambda: state["started"], "the service is starting"),
            database_check(migrated(engine)),
            ReadinessCheck("keys", keys, "the signing key is not loaded"),
        ]
    )
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["check"] == "started"
    state["started"] = True
    assert client.get("/readyz").status_code == 200
    state["key_error"] = LookupError("no active key with kid=secret-kid")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "the signing key is not loaded"
    assert "secret-kid" not in response.text


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_open_in_development() -> None:
    client = make_app([])
    client.get("/api/things/7")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'intyg_http_requests_total{method="GET",route="/api/things/{thing_id}",status="2xx"}'
        in (response.text)
    )


def test_metrics_not_served_in_production_without_a_token() -> None:
    client = make_app([], development=False)
    assert client.get("/metrics").status_code == 404


def test_metrics_open_when_configured_for_a_private_network() -> None:
    client = make_app([], development=False, metrics_open=True)
    assert client.get("/metrics").status_code == 200


def test_metrics_token() -> None:
    client = make_app([], development=False, metrics_token="scrape-token-0123456789")
    bare = client.get("/metrics")
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == 'Bearer realm="metrics"'
    wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_token"
    basic = client.get("/metrics", headers={"Authorization": "Basic c2NyYXBlOng="})
    assert basic.status_code == 401
    good = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert good.status_code == 200 and "intyg_http_requests_total" in good.text


def test_multiprocess_workers_are_aggregated(tmp_path: Path) -> None:
    """``uvicorn --workers N``: with PROMETHEUS_MULTIPROC_DIR every worker's counts show."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker = (
        "from intyg.web import metrics; "
        "metrics.ISSUANCES.labels('registration_certificate_sd_jwt', 'dc+sd-jwt').inc(2)"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, cwd=ROOT, check=True)
    scrape = "from intyg.web import metrics; print(metrics.exposition()[0].decode())"
    output = subprocess.run(
        [sys.executable, "-c", scrape],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = (
        'intyg_issuances_total{configuration="registration_certificate_sd_jwt",format="dc+sd-jwt"}'
    )
    assert f"{line} 4.0" in output


# -- API docs ---------------------------------------------------------------------------------


def test_api_docs_served_with_operations_documented() -> None:
    client = make_app([])
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "test service"
    assert set(schema["paths"]) == {"/api/things/{thing_id}", "/healthz", "/readyz", "/metrics"}
    readyz = schema["paths"]["/readyz"]["get"]
    assert readyz["tags"] == ["operations"] and "503" in readyz["responses"]
    page = client.get("/docs")
    assert page.status_code == 200 and "openapi.json" in page.text


def test_api_docs_can_be_switched_off() -> None:
    client = make_app([], api_docs=False)
    assert client.get("/openapi.json").status_code == 404
    assert client.get("/docs").status_code == 404


# -- settings ---------------------------------------------------------------------------------


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INTYG_LOG_LEVEL", "debug")
    monkeypatch.setenv("INTYG_LOG_FORMAT", "JSON")
    monkeypatch.setenv("INTYG_ACCESS_LOG", "false")
    token_file = tmp_path / "metrics-token"
    token_file.write_text("from-a-file-0123456789\n")
    monkeypatch.setenv("INTYG_METRICS_TOKEN_FILE", str(token_file))
    settings = OperationsSettings()
    assert settings.log_level == "DEBUG" and settings.log_format == "json"
    assert settings.access_log is False
    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == "from-a-file-0123456789"
    monkeypatch.setenv("INTYG_METRICS_TOKEN", "also-in-the-environment")
    with pytest.raises(ValueError, match="both set"):
        OperationsSettings()


def test_log_format_follows_the_environment_unless_set() -> None:
    assert OperationsSettings().json_logs(development=False) is True
    assert OperationsSettings().json_logs(development=True) is False
    assert OperationsSettings(log_format="json").json_logs(development=True) is True
    assert OperationsSettings(log_format="text").json_logs(development=False) is False


def test_bad_log_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        OperationsSettings(log_format="xml")
    with pytest.raises(ValidationError):
        OperationsSettings(log_level="LOUD")


# -- the garbage collector of a service process -----------------------------------------------

_COLLECTOR_PROBE = """
import gc, json, sys
from {module} import create_app_from_env
before = (gc.get_threshold()[0], gc.get_freeze_count())
create_app_from_env()
json.dump([before, (gc.get_threshold()[0], gc.get_freeze_count())], sys.stdout)
"""


@pytest.mark.parametrize("module", ["eid.app", "issuer.app", "verifier.app", "wallet.app"])
def test_service_factories_tune_the_collector(module: str, tmp_path: Path) -> None:
    """Each uvicorn factory freezes what it built and collects the youngest generation less
    often (intyg.web.operations.tune_collector); run in a child process, as uvicorn would,
    so this test process keeps its own collector."""
    master_key = tmp_path / "master.key"
    master_key.write_text(generate_master_key())
    env = dict(os.environ)
    for prefix in ("INTYG_EID_", "INTYG_ISSUER_", "INTYG_VERIFIER_", "INTYG_WALLET_"):
        env[f"{prefix}ENVIRONMENT"] = "development"
        env[f"{prefix}PUBLIC_BASE_URL"] = "http://127.0.0.1:9"
        env[f"{prefix}DATA_DIR"] = str(tmp_path)
        if prefix != "INTYG_EID_":
            env[f"{prefix}MASTER_KEY_FILE"] = str(master_key)
    done = subprocess.run(
        [sys.executable, "-c", _COLLECTOR_PROBE.format(module=module)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (threshold_before, frozen_before), (threshold, frozen) = json.loads(done.stdout)
    assert (threshold_before, frozen_before) == (700, 0)
    assert threshold == operations.YOUNG_COLLECTION_THRESHOLD and frozen > 10_000
