"""Prometheus metrics of every service (docs/running.md "Operations").

Every label has a bounded set of values: requests are counted by route **template**
(``/offers/{offer_id}``, ``unmatched`` when no route matched), method and status class;
the domain counters by configured names (credential configurations, templates, eID
providers) and fixed outcome words. Each domain event is counted once, where it is
committed:

============================================  ===========================================
metric                                        counted in
============================================  ===========================================
``intyg_http_requests_total``                 :mod:`intyg.web.observability` (every app)
``intyg_http_request_duration_seconds``       the same
``intyg_issuances_total``                     issuer/oid4vci.py, credential endpoint
``intyg_verifications_total``                 verifier/transactions.py, direct_post result
``intyg_consents_total``                      wallet/consents.py, consent record appended
``intyg_eid_logins_total``                    intyg/web/oidc.py, relying-party login result
``intyg_dev_eid_authorizations_total``        eid/app.py, the test-person picker's decision
============================================  ===========================================

With ``uvicorn --workers N`` every worker is its own process: set
``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before start so that :func:`exposition`
aggregates all workers (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = [
    "CONSENTS",
    "DEV_EID_AUTHORIZATIONS",
    "EID_LOGINS",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "ISSUANCES",
    "VERIFICATIONS",
    "exposition",
]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds; the verifier's target is p99 < 50 ms, so the low buckets are fine-grained.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "intyg_http_requests",
    "HTTP requests by method, route template and status class (2xx, 4xx, ...).",
    ("method", "route", "status"),
)
HTTP_REQUEST_DURATION = Histogram(
    "intyg_http_request_duration_seconds",
    "Time from the request to the end of the response, by method and route template.",
    ("method", "route"),
    buckets=LATENCY_BUCKETS,
)
ISSUANCES = Counter(
    "intyg_issuances",
    "Credentials issued (each instance of a batch), by credential configuration and format.",
    ("configuration", "format"),
)
VERIFICATIONS = Counter(
    "intyg_verifications",
    "Presentations answered to a transaction, by journey template and outcome "
    "(verified, rejected, wallet_error; _status_unknown when a status list was unreachable).",
    ("template", "outcome"),
)
CONSENTS = Counter(
    "intyg_consents",
    "Consent records written by the wallet: given, declined, withdrawn.",
    ("event",),
)
EID_LOGINS = Counter(
    "intyg_eid_logins",
    "eID logins at this relying party, by provider and outcome (completed or the refusal reason).",
    ("provider", "outcome"),
)
DEV_EID_AUTHORIZATIONS = Counter(
    "intyg_dev_eid_authorizations",
    "Decisions on the development eID's test-person picker: approved or cancelled.",
    ("outcome",),
)


def exposition() -> tuple[bytes, str]:
    """The text exposition format of this process, or of all workers in multiprocess mode."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
