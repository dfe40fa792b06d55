"""The live harness of the security suite (issue 7 item 1): ``intyg up`` started by
:class:`tests.system.Up` on free loopback ports with a temporary data folder, the service
databases read directly, and the assertions every case shares (security.md "Conventions"):

- :func:`refused`: the exact status and protocol error code, ``Cache-Control: no-store``,
  and :func:`assert_no_leak` on the reply;
- :func:`assert_no_leak`: no stack trace, SQL, secret (master keys, ``dev-secrets.json``,
  the eID signing key) or test person's personal number in the body or the headers;
- :class:`Unchanged`: row counts of the tables that matter, equal before and after.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from eid.persons import TEST_PERSONS
from intyg import jose
from intyg.demo import Agency, Employer, forms_of
from intyg.web.crypto_store import CryptoStore, record_aad
from tests.system import Up

TIMEOUT = 30.0
BACK_OFFICE_TOKEN_REUSE_SECONDS = 120.0
#: The services with a database, and the file name of their SQLite database.
DATABASES = {
    "issuer-af": "issuer",
    "issuer-myh": "issuer",
    "wallet": "wallet",
    "verifier": "verifier",
}
#: What a refused request must not change (security.md conventions), per service.
ISSUER_STATE: tuple[str, ...] = (
    "issuances",
    "status_entries",
    "access_tokens",
    "authorization_codes",
    "c_nonces WHERE used_at IS NOT NULL",
    "credential_offers WHERE used_at IS NOT NULL",
    "audit_log",
)
WALLET_STATE: tuple[str, ...] = (
    "accounts",
    "issuance_sessions",
    "holder_keys",
    "credentials",
    "credential_instances",
    "presentation_sessions",
    "consent_records",
    "consent_keys",
)
VERIFIER_STATE: tuple[str, ...] = (
    "transactions",
    "results",
    "disclosed_claims",
    "rejections",
    "audit_log",
    "webhook_outbox",
)
#: A rejected presentation leaves a rejection record and the transaction used (documented);
#: never a result, disclosed claims or a "verified" transaction.
VERIFIER_RESULTS: tuple[str, ...] = (
    "results",
    "disclosed_claims",
    "transactions WHERE status = 'verified'",
)

#: Text that must never reach a client: stack traces, SQL, driver and exception names.
LEAK_MARKERS = (
    "Traceback",
    'File "/',
    "sqlalchemy",
    "sqlite3",
    "psycopg",
    "SELECT ",
    "INSERT INTO",
    "UPDATE ",
    "DELETE FROM",
    "OperationalError",
    "IntegrityError",
    "RecursionError",
    "KeyError",
    "AttributeError",
    "TypeError(",
    "/work/",
    ".venv",
)


def _number_forms() -> list[str]:
    forms = []
    for person in TEST_PERSONS:
        twelve = person.number.twelve_digits
        forms += [twelve, f"{twelve[:8]}-{twelve[8:]}", person.number.ten_digits()]
        forms.append(twelve[2:8] + twelve[8:])  # 10 digits without separator
    return forms


PERSONAL_NUMBERS = tuple(_number_forms())


@dataclass
class Live:
    """A running ``intyg up`` and what the tests need to reach into it."""

    up: Up
    data: Path
    backend: str
    database_urls: dict[str, str]
    _engines: dict[str, sa.Engine] = field(default_factory=dict)
    _secrets: list[str] | None = None
    _agencies: dict[str, tuple[Agency, float]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return self.up.url(name)

    @property
    def dev_secrets(self) -> dict[str, Any]:
        return dict(json.loads((self.data / "dev-secrets.json").read_text(encoding="utf-8")))

    # -- databases -------------------------------------------------------------------------

    def engine(self, service: str) -> sa.Engine:
        engine = self._engines.get(service)
        if engine is None:  # a small pool: snapshots before/after every case stay cheap
            engine = self._engines[service] = sa.create_engine(
                self.database_urls[service], pool_size=2, max_overflow=2
            )
        return engine

    def rows(self, service: str, sql: str, **params: Any) -> list[sa.Row[Any]]:
        with self.engine(service).connect() as connection:
            return list(connection.execute(sa.text(sql), params))

    def scalar(self, service: str, sql: str, **params: Any) -> Any:
        return self.rows(service, sql, **params)[0][0]

    def count(self, service: str, table_and_condition: str) -> int:
        return int(self.scalar(service, f"SELECT count(*) FROM {table_and_condition}"))

    def counts(self, spec: Mapping[str, Iterable[str]]) -> dict[tuple[str, str], int]:
        """Row counts of ``table [WHERE ...]`` entries, one statement per service."""
        found = {}
        for service, tables in spec.items():
            tables = list(tables)
            columns = ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)
            row = self.rows(service, f"SELECT {columns}")[0]
            found.update({(service, t): int(v) for t, v in zip(tables, row, strict=True)})
        return found

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()

    # -- keys the services keep (to play a trusted party gone bad) -------------------------

    def master_key(self, service: str) -> str:
        return (self.data / service / "master.key").read_text(encoding="ascii").strip()

    def store(self, service: str) -> CryptoStore:
        return CryptoStore.from_config(self.master_key(service))

    def sealed_key(
        self, service: str, table: str, purpose: str, aad_purpose: str
    ) -> tuple[jose.Key, str]:
        """A private key a service keeps sealed in ``table`` (first row of ``purpose``,
        the active one when the table has ``active``) and its PEM certificate chain."""
        order = "ORDER BY active DESC" if table == "signing_keys" else ""
        row = self.rows(
            service,
            f"SELECT kid, sealed_private_jwk, certificate_chain_pem FROM {table} "
            f"WHERE purpose = :purpose {order}",
            purpose=purpose,
        )[0]
        key = self.store(service).open_key(row[1], record_aad(aad_purpose, row[0]))
        return key.with_kid(row[0]), str(row[2])

    # -- what must never leak ----------------------------------------------------------------

    def secrets(self) -> list[str]:
        """Master keys, every development secret, the eID signing key's private part."""
        if self._secrets is None:
            found = [self.master_key(s) for s in DATABASES]
            found += _strings(self.dev_secrets, skip={"client_id", "dev-backoffice"})
            eid_key = json.loads((self.data / "eid" / "signing-key.jwk").read_text())
            found.append(eid_key["d"])
            self._secrets = [s for s in found if len(s) >= 16]
        return self._secrets

    # -- actors --------------------------------------------------------------------------------

    def agency(self, name: str) -> Agency:
        """The back office of ``issuer-af`` or ``issuer-myh`` (client credentials), with a
        token renewed well before its lifetime (300 s) ends."""
        cached = self._agencies.get(name)
        if cached is None or time.monotonic() - cached[1] > BACK_OFFICE_TOKEN_REUSE_SECONDS:
            agency = Agency(self.url(name), self.dev_secrets["backoffice"][name])
            cached = self._agencies[name] = (agency, time.monotonic())
        return cached[0]

    def employer(self) -> Employer:
        api = self.dev_secrets["employer_api"]
        return Employer(self.url("verifier"), api["client_id"], api["secret"])

    def browser(self) -> httpx.Client:
        return httpx.Client(timeout=TIMEOUT)

    def log_in(self, person: str, browser: httpx.Client | None = None) -> httpx.Client:
        """A browser logged in to the wallet as the eID test person ``person``."""
        browser = browser or self.browser()
        landed = eid_login(browser, self.url("wallet") + "/login", person)
        assert landed.status_code == 303, landed.text
        return browser


def _strings(value: Any, skip: set[str]) -> list[str]:
    if isinstance(value, str):
        return [] if value in skip else [value]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() if k not in skip for s in _strings(v, skip)]
    return []


def eid_login(browser: httpx.Client, start: str, person: str) -> httpx.Response:
    """Start at a relying party's login URL, pick ``person`` at the development eID and
    return the relying party's callback response (not followed)."""
    started = browser.get(start)
    assert started.status_code in (302, 303), started.text
    picker = browser.get(started.headers["location"])
    form = next(f for f in forms_of(picker.text) if "authorize" in f.action)
    action = httpx.URL(str(picker.url)).join(form.action)
    decided = browser.post(action, data={**form.fields, "person": person})
    assert decided.status_code in (302, 303), decided.text
    return browser.get(decided.headers["location"])


# -- assertions ----------------------------------------------------------------------------


def assert_no_leak(live: Live, response: httpx.Response, *also: str) -> None:
    """No stack trace, SQL, secret or personal number in the reply (body and headers)."""
    # 502 (an upstream refused) and 503 (retriable) are answers; 500 is an unhandled error.
    assert response.status_code < 500 or response.status_code in (502, 503, 504), (
        f"{response.request.method} {response.request.url.path}: "
        f"HTTP {response.status_code} {response.text[:300]}"
    )
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    text = headers + "\n" + response.content.decode("utf-8", "replace")
    for marker in LEAK_MARKERS:
        assert marker not in text, f"{marker!r} in the reply to {response.request.url.path}"
    for secret in (*live.secrets(), *also):
        assert secret not in text, f"a secret in the reply to {response.request.url.path}"
    for number in PERSONAL_NUMBERS:
        assert number not in text, f"a personal number in the reply to {response.request.url}"


def refused(
    live: Live,
    response: httpx.Response,
    status: int,
    error: str | None = None,
    *,
    description: str | None = None,
) -> dict[str, Any]:
    """The protocol's refusal: exact status, exact ``error``, ``no-store``, nothing leaked."""
    assert_no_leak(live, response)
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: expected {status}, "
        f"got {response.status_code} {response.text[:300]}"
    )
    if error is None:
        return {}
    body = response.json()
    assert body.get("error") == error, body
    if description is not None:
        assert description in body.get("error_description", ""), body
    assert "no-store" in response.headers.get("cache-control", ""), response.headers
    return dict(body)


def refused_page(live: Live, response: httpx.Response, status: int, *text: str) -> str:
    """A page refusal (HTML): the status, no redirect, nothing leaked, the given words."""
    assert_no_leak(live, response)
    assert response.status_code == status, (
        f"{response.request.url.path}: expected {status}, got {response.status_code} "
        f"{response.text[:300]}"
    )
    assert "location" not in response.headers
    for words in text:
        assert words in response.text, (words, response.text[:800])
    return response.text


class Unchanged:
    """``with Unchanged(live, {"issuer-af": ISSUER_STATE}): ...``: equal row counts after."""

    def __init__(self, live: Live, spec: Mapping[str, Sequence[str]]) -> None:
        self.live = live
        self.spec = spec

    def __enter__(self) -> Unchanged:
        self.before = self.live.counts(self.spec)
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            after = self.live.counts(self.spec)
            changed = {k: (self.before[k], after[k]) for k in after if after[k] != self.before[k]}
            assert not changed, f"a refused request changed stored state: {changed}"


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:500]
    return match[1]
