"""Request ids, structured logs, the access line and request metrics (intyg.web.observability,
docs/running.md "Operations"; security.md T084, T111, T117)."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from intyg.web.bodies import read_form
from intyg.web.errors import install_error_handlers
from intyg.web.observability import (
    WITHHELD,
    ObservabilityMiddleware,
    configure_logging,
    current_request_id,
    sane_request_id,
)

from .logcapture import access_lines, captured, records

PERSONAL_NUMBER = "198112189884"  # Anna Andersson, a test person (eid/persons.py)
ROOT = Path(__file__).resolve().parents[2]

app_logger = logging.getLogger("tests.observability")


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/people/{number}")
    def person(number: str) -> dict[str, str]:
        app_logger.info("looked up a person")  # sync: runs in the thread pool
        return {"request_id": current_request_id() or ""}

    @app.post("/forms")
    async def form(request: Request) -> dict[str, str]:
        fields = await read_form(request)
        app_logger.info("form received: %s", fields)  # careless on purpose
        return {"request_id": current_request_id() or ""}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"lookup failed for {PERSONAL_NUMBER}")

    app.add_middleware(ObservabilityMiddleware)
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app(), raise_server_exceptions=False)


# -- request ids ------------------------------------------------------------------------------


def test_sane_incoming_request_id_is_kept_and_echoed(client: TestClient) -> None:
    with captured() as stream:
        response = client.get("/people/x", headers={"X-Request-ID": "trace-0123456789"})
    assert response.headers["x-request-id"] == "trace-0123456789"
    assert response.json() == {"request_id": "trace-0123456789"}
    lookup = next(r for r in records(stream) if r["message"] == "looked up a person")
    assert lookup["request_id"] == "trace-0123456789"  # through the thread pool
    assert lookup["service"] == "test-service"
    (access,) = access_lines(stream)
    assert access["request_id"] == "trace-0123456789"


@pytest.mark.parametrize(
    "incoming",
    [
        b"short",  # fewer than 8 characters
        b"x" * 129,
        b"has space inside",
        b'quote"injection-here',
        b"line\r\nbreak-00000",
        b"\x1b[31mred-0000000",
        PERSONAL_NUMBER.encode(),  # would put a personal number in every record
        f"req-{PERSONAL_NUMBER[:8]}-{PERSONAL_NUMBER[8:]}".encode(),
    ],
)
def test_insane_request_id_is_replaced(incoming: bytes) -> None:
    assert sane_request_id(incoming) is None


def test_insane_request_id_gets_a_fresh_one(client: TestClient) -> None:
    response = client.get("/people/x", headers={"X-Request-ID": PERSONAL_NUMBER})
    generated = response.headers["x-request-id"]
    assert generated != PERSONAL_NUMBER and len(generated) == 16
    assert response.json() == {"request_id": generated}


def test_every_request_gets_its_own_id(client: TestClient) -> None:
    ids = {client.get("/people/x").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    assert current_request_id() is None  # nothing leaks out of a request


def test_500_names_the_request_id_of_its_log_records(client: TestClient) -> None:
    with captured() as stream:
        response = client.get("/boom", headers={"X-Request-ID": "boom-request-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-request-1"
    assert "boom-request-1" in response.json()["error_description"]
    logged = records(stream)
    error = next(r for r in logged if r["logger"] == "intyg.web.errors")
    assert error["request_id"] == "boom-request-1"
    # The exception message held a personal number: the traceback is withheld, the type kept.
    assert error["exception"] == f"RuntimeError: {WITHHELD}"
    (access,) = access_lines(stream)
    assert access["status"] == 500 and access["request_id"] == "boom-request-1"
    assert PERSONAL_NUMBER not in stream.getvalue()


# -- the access line and personal numbers -----------------------------------------------------


def test_access_line_names_the_route_template_never_path_or_query(client: TestClient) -> None:
    with captured() as stream:
        client.get(f"/people/{PERSONAL_NUMBER}", params={"pnr": PERSONAL_NUMBER, "token": "s3"})
    (access,) = access_lines(stream)
    assert access["message"].startswith("GET /people/{number} 200 ")
    assert access["method"] == "GET" and access["path"] == "/people/{number}"
    assert access["status"] == 200 and isinstance(access["duration_ms"], float)
    assert PERSONAL_NUMBER not in stream.getvalue() and "s3" not in stream.getvalue()


def test_personal_number_in_a_form_is_not_logged(client: TestClient) -> None:
    with captured() as stream:
        response = client.post("/forms", data={"personal_identity_number": PERSONAL_NUMBER})
    assert response.status_code == 200
    careless = next(r for r in records(stream) if r["logger"] == "tests.observability")
    assert careless["message"] == WITHHELD
    assert PERSONAL_NUMBER not in stream.getvalue()
    assert PERSONAL_NUMBER[:8] + "-" + PERSONAL_NUMBER[8:] not in stream.getvalue()


def test_personal_number_in_extra_fields_is_withheld() -> None:
    with captured() as stream:
        app_logger.info(
            "lookup", extra={"subject": f"person {PERSONAL_NUMBER}", "count": 3, "level": "x"}
        )
    (record,) = records(stream)
    assert record["subject"] == WITHHELD and record["count"] == 3
    assert record["level"] == "INFO"  # an extra field never replaces the record's own


def test_unmatched_requests_are_one_label(client: TestClient) -> None:
    with captured() as stream:
        client.get(f"/no/such/{PERSONAL_NUMBER}")
    (access,) = access_lines(stream)
    assert access["path"] == "unmatched" and access["status"] == 404


def test_probes_are_logged_at_debug() -> None:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(ObservabilityMiddleware)
    with captured() as stream:
        TestClient(app).get("/healthz")
    (access,) = access_lines(stream)
    assert access["level"] == "DEBUG"


def test_access_log_can_be_switched_off() -> None:
    app = FastAPI()
    app.add_api_route("/x", lambda: {}, methods=["GET"])
    app.add_middleware(ObservabilityMiddleware, access_log=False)
    with captured() as stream:
        response = TestClient(app).get("/x")
    assert response.headers["x-request-id"] and access_lines(stream) == []


# -- formatters -------------------------------------------------------------------------------


def test_json_lines_stay_one_record_per_line() -> None:
    with captured() as stream:
        app_logger.warning("state=%s", "a\r\nb\x1b[2J", extra={"agent": "x\ny"})
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "state=a\r\nb\x1b[2J" and record["agent"] == "x\ny"
    assert set(record) >= {"time", "level", "logger", "message", "request_id", "service"}
    assert record["time"].endswith("Z") and record["request_id"] is None


def test_text_lines_escape_control_characters() -> None:
    with captured(json_format=False) as stream:
        app_logger.warning("state=%s", "a\r\nFAKE 00:00 INFO forged\x1b[2J", extra={"k": "v\n"})
    (line,) = stream.getvalue().splitlines()
    assert "a\\x0d\\x0aFAKE" in line and "\\x1b[2J" in line and "k=v\\x0a" in line
    assert "[test-service]" in line and "tests.observability: state=" in line


def test_text_access_line_is_readable(client: TestClient) -> None:
    with captured(json_format=False) as stream:
        client.get("/people/x", headers={"X-Request-ID": "readable-0001"})
    line = next(x for x in stream.getvalue().splitlines() if "intyg.access" in x)
    assert "[test-service readable-0001] intyg.access: GET /people/{number} 200 " in line
    assert line.endswith(" ms")


def test_configure_logging_routes_uvicorn_and_quiets_url_loggers() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    saved_loggers = {
        name: (lg.handlers[:], lg.propagate, lg.disabled, lg.level)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore")
        for lg in [logging.getLogger(name)]
    }
    flags = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    stream = io.StringIO()
    try:
        logging.getLogger("uvicorn.error").setLevel(logging.INFO)  # as uvicorn sets it
        configure_logging("svc", json_format=True, stream=stream)
        colour = {"color_message": "Started server process [\x1b[36m%d\x1b[0m]"}
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 7, extra=colour)
        logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /x?pnr=1 HTTP/1.1" 200')
        logging.getLogger("httpx").info("HTTP Request: GET https://x/offers/secret")
        (line,) = stream.getvalue().splitlines()
        record = json.loads(line)
        assert record["message"] == "Started server process [7]" and record["service"] == "svc"
        assert "color_message" not in record
        assert not logging.getLogger("uvicorn.access").hasHandlers()  # uvicorn skips it
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.logThreads, logging.logProcesses, logging.logMultiprocessing = flags
        for name, (handlers, propagate, disabled, level) in saved_loggers.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate, logger.disabled = propagate, disabled
            logger.setLevel(level)


# -- request metrics --------------------------------------------------------------------------


def _requests(route: str, status: str, method: str = "GET") -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("intyg_http_requests_total", labels) or 0.0


def test_requests_are_counted_by_template_method_and_status_class(client: TestClient) -> None:
    before = _requests("/people/{number}", "2xx")
    before_404 = _requests("unmatched", "4xx")
    before_500 = _requests("/boom", "5xx")
    before_count = (
        REGISTRY.get_sample_value(
            "intyg_http_request_duration_seconds_count",
            {"method": "GET", "route": "/people/{number}"},
        )
        or 0.0
    )
    for number in ("1", "2", "3"):
        client.get(f"/people/{number}")
    client.get("/nowhere")
    client.get("/boom")
    assert _requests("/people/{number}", "2xx") == before + 3
    assert _requests("unmatched", "4xx") == before_404 + 1
    assert _requests("/boom", "5xx") == before_500 + 1
    count = REGISTRY.get_sample_value(
        "intyg_http_request_duration_seconds_count",
        {"method": "GET", "route": "/people/{number}"},
    )
    assert count == before_count + 3
    # Raw paths never become label values (bounded cardinality).
    names = {
        sample.labels.get("route")
        for metric in REGISTRY.collect()
        if metric.name == "intyg_http_requests"
        for sample in metric.samples
    }
    assert "/people/1" not in names


def test_unknown_methods_share_one_label(client: TestClient) -> None:
    before = _requests("unmatched", "4xx", method="OTHER")
    client.request("FROBNICATE", "/nowhere")
    assert _requests("unmatched", "4xx", method="OTHER") == before + 1


# -- a real service process: the uvicorn factory configures JSON logs -------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def eid_process(log_format: str | None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "INTYG_EID_ENVIRONMENT": "development",
        "INTYG_EID_PUBLIC_BASE_URL": base,
    }
    env.pop("INTYG_LOG_FORMAT", None)
    if log_format:
        env["INTYG_LOG_FORMAT"] = log_format
    command = [
        sys.executable, "-m", "uvicorn", "eid.app:create_app_from_env", "--factory",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the eID did not start"
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(10)


def test_service_process_writes_json_records_with_request_ids() -> None:
    with eid_process("json") as (base, process):
        response = httpx.get(
            f"{base}/jwks",
            params={"login_hint": PERSONAL_NUMBER},
            headers={"X-Request-ID": "process-test-01"},
        )
        assert response.headers["x-request-id"] == "process-test-01"
        process.terminate()
        output, _ = process.communicate(timeout=10)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all(line["service"] == "eid" for line in lines)
    (access,) = [r for r in lines if r["logger"] == "intyg.access"]
    assert access["request_id"] == "process-test-01" and access["path"] == "/jwks"
    assert any(r["logger"] == "uvicorn.error" for r in lines)  # uvicorn's own, as JSON
    assert PERSONAL_NUMBER not in output and "login_hint" not in output


def test_development_process_writes_readable_lines_by_default() -> None:
    with eid_process(None) as (base, process):
        httpx.get(f"{base}/jwks")
        process.terminate()
        output, _ = process.communicate(timeout=10)
    access = next(line for line in output.splitlines() if "intyg.access" in line)
    assert "[eid " in access and "GET /jwks 200" in access
    assert not output.lstrip().startswith("{")
