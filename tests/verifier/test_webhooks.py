"""Signed result webhooks to a real loopback HTTP receiver: the signature verifies, a 500 is
retried with backoff, the sender gives up after N attempts, timestamps, tamper detection,
the idempotency key, and the background loop inside the running app."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from intyg.web import db
from verifier.app import VerifierContext, create_app
from verifier.employers import DEV_EMPLOYER
from verifier.models import Employer, WebhookOutbox
from verifier.webhooks import (
    SIGNATURE_HEADER,
    WebhookError,
    WebhookSignatureError,
    backoff_delay,
    configure_webhook,
    deliver_due,
    sign,
    signature_header,
    verify_signature,
)

from .conftest import VERIFIER_URL, Clock, make_settings
from .flows import post_response, start
from .helpers import REGISTRATION_DISCLOSE, issue, reference_present, registration_payload


class Receiver:
    """An employer's webhook endpoint on a loopback port; answers with ``codes`` in turn
    (the last one repeats)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.codes = [200]
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                code = receiver.codes.pop(0) if len(receiver.codes) > 1 else receiver.codes[0]
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/intyg"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def client(settings, clock: Clock, engine: sa.Engine) -> Iterator[TestClient]:
    """The app without its background tasks: these tests run the sender themselves."""
    app = create_app(settings, clock=clock, engine=engine, background_tasks=())
    with TestClient(app, base_url=VERIFIER_URL) as test_client:
        yield test_client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def dev_employer_id(ctx: VerifierContext) -> int:
    with db.session(ctx.engine, write=False) as unit:
        employer_id = unit.scalar(
            sa.select(Employer.id).where(Employer.org_number == DEV_EMPLOYER[1])
        )
    assert employer_id is not None
    return employer_id


def hook_up(ctx: VerifierContext, url: str) -> str:
    with db.session(ctx.engine) as unit:
        secret = configure_webhook(ctx, unit, dev_employer_id(ctx), url)
    assert secret is not None
    return secret


def verified_transaction(client: TestClient, pki, holder, status_lists) -> str:
    created, request = start(client)
    issued = issue(registration_payload({"idx": 1, "uri": status_lists["af_uri"]}), pki.af, holder)
    presentation = reference_present(
        issued, REGISTRATION_DISCLOSE, nonce=request.nonce, aud=request.client_id, holder=holder
    )
    assert post_response(client, request, {"registration": [presentation]}).status_code == 200
    return created["transaction_id"]


def outbox(ctx: VerifierContext) -> Any:
    with db.session(ctx.engine, write=False) as unit:
        return unit.execute(
            sa.text(
                "SELECT attempts, next_attempt_at, delivered_at, failed_at, last_error "
                "FROM webhook_outbox"
            )
        ).one()


# -- the signature scheme -----------------------------------------------------------------------


def test_signature_round_trip_and_known_value() -> None:
    body = b'{"id":"x"}'
    header = signature_header("whsec_test", 1700000000, body)
    # HMAC-SHA256("whsec_test", "1700000000.{\"id\":\"x\"}"), computed independently:
    import hashlib
    import hmac

    expected = hmac.new(b"whsec_test", b'1700000000.{"id":"x"}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify_signature("whsec_test", header, body, now=1700000100) == 1700000000
    assert verify_signature(b"whsec_test", header, body.decode(), now=1700000000) == 1700000000


def test_tampered_body_is_detected() -> None:
    header = signature_header("s3cret", 1000, '{"outcome":"rejected"}')
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature("s3cret", header, '{"outcome":"verified"}', now=1000)


def test_wrong_secret_is_detected() -> None:
    header = signature_header("s3cret", 1000, "{}")
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature("other", header, "{}", now=1000)


def test_changed_timestamp_is_detected() -> None:
    mac = sign("s3cret", 1000, "{}")
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature("s3cret", f"t=1001,v1={mac}", "{}", now=1001)


@pytest.mark.parametrize("now", [1000 + 301, 1000 - 301])
def test_timestamp_outside_tolerance(now: int) -> None:
    header = signature_header("s3cret", 1000, "{}")
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature("s3cret", header, "{}", 300, now=now)
    assert verify_signature("s3cret", header, "{}", 400, now=now) == 1000


@pytest.mark.parametrize("header", ["", "v1=abc", "t=1000", "t=abc,v1=00", "t=-5,v1=00"])
def test_malformed_header(header: str) -> None:
    with pytest.raises(WebhookSignatureError, match="malformed"):
        verify_signature("s3cret", header, "{}", now=1000)


def test_any_of_several_v1_values_may_match() -> None:
    good = sign("new", 1000, "{}")
    assert verify_signature("new", f"t=1000,v1={'0' * 64},v1={good}", "{}", now=1000) == 1000


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert [backoff_delay(n, 10, 3600, lambda: 1.0) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert [backoff_delay(n, 10, 3600, lambda: 0.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff_delay(30, 10, 3600, lambda: 1.0) == 3600
    assert backoff_delay(1000, 10, 3600, lambda: 0.5) <= 3600


def test_configure_webhook_refuses_bad_urls(ctx: VerifierContext) -> None:
    with db.session(ctx.engine) as unit, pytest.raises(WebhookError):
        configure_webhook(ctx, unit, dev_employer_id(ctx), "ftp://example.com/hook")
    with db.session(ctx.engine) as unit, pytest.raises(WebhookError, match="no such employer"):
        configure_webhook(ctx, unit, 999_999, "https://example.com/hook")


# -- delivery to a real receiver -------------------------------------------------------------------


def test_verified_result_is_delivered_signed(
    client: TestClient,
    ctx: VerifierContext,
    clock: Clock,
    receiver: Receiver,
    pki,
    holder,
    status_lists,
) -> None:
    secret = hook_up(ctx, receiver.url)
    tid = verified_transaction(client, pki, holder, status_lists)
    assert deliver_due(ctx) == 1
    assert len(receiver.received) == 1
    delivery = receiver.received[0]
    assert delivery["headers"]["Content-Type"] == "application/json"
    signed_at = verify_signature(
        secret, delivery["headers"][SIGNATURE_HEADER], delivery["body"], now=clock.now
    )
    assert signed_at == clock.now
    event = json.loads(delivery["body"])
    assert event["id"] == f"verification.completed.{tid}"
    assert delivery["headers"]["Intyg-Event-Id"] == event["id"]
    assert event["type"] == "verification.completed" and event["attempt"] == 1
    result = event["data"]["result"]
    assert event["data"]["status"] == "verified" and result["outcome"] == "verified"
    assert {c["name"] for c in result["checks"]} >= {"issuer_signature", "key_binding", "status"}
    claims = result["claims"]["credentials"]["registration"][0]["claims"]
    assert claims["registered_since"] == "2026-01-12"
    row = outbox(ctx)
    assert row.delivered_at == clock.now and row.attempts == 1 and row.failed_at is None
    assert deliver_due(ctx) == 0 and len(receiver.received) == 1  # delivered once
    # Tampering in transit is detected by the receiver.
    tampered = delivery["body"].replace(b'"verified"', b'"rejected"', 1)
    with pytest.raises(WebhookSignatureError):
        verify_signature(secret, delivery["headers"][SIGNATURE_HEADER], tampered, now=clock.now)


def test_rejected_result_is_delivered_with_reasons(
    client: TestClient,
    ctx: VerifierContext,
    clock: Clock,
    receiver: Receiver,
    pki,
    holder,
    status_lists,
) -> None:
    hook_up(ctx, receiver.url)
    _, request = start(client)
    issued = issue(registration_payload({"idx": 1, "uri": status_lists["af_uri"]}), pki.af, holder)
    wrong = reference_present(
        issued, REGISTRATION_DISCLOSE, nonce="wrong", aud=request.client_id, holder=holder
    )
    assert post_response(client, request, {"registration": [wrong]}).status_code == 400
    assert deliver_due(ctx) == 1
    event = json.loads(receiver.received[0]["body"])
    assert event["data"]["status"] == "rejected"
    assert "key_binding" in event["data"]["result"]["failed_checks"]


def test_retry_after_500_with_backoff(
    client: TestClient,
    ctx: VerifierContext,
    clock: Clock,
    receiver: Receiver,
    pki,
    holder,
    status_lists,
) -> None:
    secret = hook_up(ctx, receiver.url)
    receiver.codes = [500, 200]
    verified_transaction(client, pki, holder, status_lists)
    assert deliver_due(ctx) == 0
    row = outbox(ctx)
    assert row.attempts == 1 and row.delivered_at is None and "500" in row.last_error
    base = ctx.settings.webhook_backoff_seconds
    assert clock.now + base // 2 <= row.next_attempt_at <= clock.now + base
    assert deliver_due(ctx) == 0 and len(receiver.received) == 1  # not due yet
    clock.advance(row.next_attempt_at - clock.now)
    assert deliver_due(ctx) == 1
    assert len(receiver.received) == 2
    first, second = (json.loads(r["body"]) for r in receiver.received)
    assert first["id"] == second["id"]  # the idempotency key survives retries
    assert (first["attempt"], second["attempt"]) == (1, 2)
    header = receiver.received[1]["headers"][SIGNATURE_HEADER]
    assert verify_signature(secret, header, receiver.received[1]["body"], now=clock.now)
    row = outbox(ctx)
    assert row.delivered_at == clock.now and row.attempts == 2 and row.last_error is None


def test_gives_up_after_max_attempts(
    database_url: str,
    tmp_path: Path,
    trust_file: Path,
    engine: sa.Engine,
    receiver: Receiver,
    pki,
    holder,
    status_lists,
) -> None:
    settings = make_settings(database_url, tmp_path, trust_file, webhook_max_attempts=3)
    clock = Clock()
    app = create_app(settings, clock=clock, engine=engine, background_tasks=())
    with TestClient(app, base_url=VERIFIER_URL) as client:
        ctx: VerifierContext = app.state.verifier
        hook_up(ctx, receiver.url)
        receiver.codes = [503]
        verified_transaction(client, pki, holder, status_lists)
        for _ in range(5):
            deliver_due(ctx)
            clock.advance(ctx.settings.webhook_backoff_max_seconds)
        assert len(receiver.received) == 3
        row = outbox(ctx)
        assert row.attempts == 3 and row.delivered_at is None and row.failed_at is not None
        assert row.last_error.startswith("gave up after 3 attempts")


def test_unreachable_receiver_is_retried(
    client: TestClient, ctx: VerifierContext, clock: Clock, pki, holder, status_lists
) -> None:
    receiver = Receiver()
    url = receiver.url
    receiver.close()  # nothing listens on the port any more
    hook_up(ctx, url)
    verified_transaction(client, pki, holder, status_lists)
    assert deliver_due(ctx) == 0
    row = outbox(ctx)
    assert row.attempts == 1 and row.delivered_at is None and row.last_error


def test_no_outbox_row_without_webhook_url(
    client: TestClient, ctx: VerifierContext, pki, holder, status_lists
) -> None:
    verified_transaction(client, pki, holder, status_lists)
    with db.session(ctx.engine, write=False) as unit:
        assert unit.scalar(sa.select(sa.func.count()).select_from(WebhookOutbox)) == 0


def test_the_background_loop_delivers(
    database_url: str,
    tmp_path: Path,
    trust_file: Path,
    engine: sa.Engine,
    receiver: Receiver,
    pki,
    holder,
    status_lists,
) -> None:
    settings = make_settings(database_url, tmp_path, trust_file, webhook_poll_seconds=0.05)
    app = create_app(settings, clock=Clock(), engine=engine)
    with TestClient(app, base_url=VERIFIER_URL) as client:
        ctx: VerifierContext = app.state.verifier
        secret = hook_up(ctx, receiver.url)
        verified_transaction(client, pki, holder, status_lists)
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(receiver.received) == 1
        delivery = receiver.received[0]
        verify_signature(
            secret, delivery["headers"][SIGNATURE_HEADER], delivery["body"], now=ctx.clock()
        )
