"""Fixtures of the security suite: one ``intyg up`` per backend for the whole session
(SQLite always; PostgreSQL when ``intyg up`` can use it and ``INTYG_TEST_POSTGRES_URL`` is
set), a loopback server per test, and the count of cases tried printed at the end."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from intyg.web import db
from tests.system import SERVICE_NAMES, Up, free_ports
from tests.system.postgres import postgres_prefix_url

from .actors import ERIK, Issuing, WalletPerson
from .fakes import Loopback
from .live import DATABASES, Live

POSTGRES_URL = os.environ.get("INTYG_TEST_POSTGRES_URL")
_TRIED: Counter[str] = Counter()
_CATALOGUE_IDS: dict[str, set[str]] = {}


def _backends() -> list[str]:
    """SQLite always; PostgreSQL when INTYG_TEST_POSTGRES_URL is set (the summary says so
    when it is not, rather than listing a skip per case)."""
    return ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


def _sqlite_urls(data: Path) -> dict[str, str]:
    return {
        service: f"sqlite:///{data / service / f'{name}.sqlite3'}"
        for service, name in DATABASES.items()
    }


def _postgres_urls(prefix_url: str) -> dict[str, str]:
    """``PREFIX_issuer_af`` ... (tests/system/postgres.py, helper-notes/live-harness.md)."""
    url = db.normalise_url(prefix_url)
    return {
        service: url.set(database=f"{url.database}_{service.replace('-', '_')}").render_as_string(
            hide_password=False
        )
        for service in DATABASES
    }


@contextmanager
def _running(backend: str, data: Path) -> Iterator[Live]:
    ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
    with ExitStack() as stack:
        if backend == "postgresql":
            prefix_url = stack.enter_context(postgres_prefix_url())
            up = Up(data, ports, settings={"INTYG_UP_POSTGRES_URL": prefix_url})
            urls = _postgres_urls(prefix_url)
        else:
            up, urls = Up(data, ports), _sqlite_urls(data)
        running = Live(up, data, backend, urls)
        try:
            up.wait_ready(timeout=120)
            yield running
        finally:
            running.dispose()
            code = up.stop()
            assert code == 0, up.output


@pytest.fixture(scope="session", params=_backends())
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """``intyg up`` on free loopback ports with a fresh data folder, for the session."""
    data = tmp_path_factory.mktemp(f"security-{request.param}") / "data"
    with _running(request.param, data) as running:
        yield running


@pytest.fixture(scope="session")
def af(live: Live) -> Issuing:
    """Anna's AF registration and offers for it (session-wide)."""
    return Issuing.start(live, "issuer-af")


@pytest.fixture(scope="session")
def myh(live: Live) -> Issuing:
    return Issuing.start(live, "issuer-myh")


@pytest.fixture(scope="module")
def anna(live: Live, af: Issuing) -> WalletPerson:
    """Anna logged in to the wallet with her AF registration certificate (5 instances)."""
    person = WalletPerson(live, "anna")
    created = af.offer(tx_code=True, configuration_ids=[af.sd_jwt_id])
    person.credential_id = person.receive(created["link"], created["tx_code"])
    return person


@pytest.fixture(scope="module")
def erik(live: Live) -> WalletPerson:
    erik_af = Issuing.start(live, "issuer-af", ERIK)
    person = WalletPerson(live, "erik")
    created = erik_af.offer(tx_code=True, configuration_ids=[erik_af.sd_jwt_id])
    person.credential_id = person.receive(created["link"], created["tx_code"])
    return person


@pytest.fixture
def server() -> Iterator[Loopback]:
    loopback = Loopback()
    yield loopback
    loopback.close()


# -- the count of cases tried ---------------------------------------------------------------

_BACKEND = re.compile(r"\[(sqlite|postgresql)[\]-]")
_CASE_ID = re.compile(r"(?<![A-Za-z0-9])(t\d{3})(?![0-9])", re.IGNORECASE)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or "tests/security/" not in report.nodeid.replace("\\", "/"):
        return
    found = _BACKEND.search(report.nodeid)
    backend = found[1] if found else "sqlite"
    _TRIED[backend] += 1
    _CATALOGUE_IDS.setdefault(backend, set()).update(
        m.upper() for m in _CASE_ID.findall(report.nodeid)
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TRIED and not POSTGRES_URL:
        terminalreporter.write_line(
            "security: PostgreSQL not run (set INTYG_TEST_POSTGRES_URL to run every case there)"
        )
    for backend, tried in sorted(_TRIED.items()):
        ids = len(_CATALOGUE_IDS.get(backend, ()))
        terminalreporter.write_line(
            f"security: {tried} cases tried against live services ({backend}), "
            f"covering {ids} catalogue ids"
        )
