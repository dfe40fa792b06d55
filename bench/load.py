"""Load: simulated people running full issuance and presentation flows at once (issue 7
item 3; security.md L01, L04).

Every simulated wallet is a person with a browser-like client on the cloud wallet's pages,
exactly as ``intyg demo`` drives it (eID picker, offer page with tx_code, consent screen),
while the agency's back office makes the offers and the employer's HR system asks through
the verifier API. A wallet loops until the time is up:

1. **issuance**: AF back office makes an offer (tx_code) -> the person pastes the link in the
   wallet, sees the offer, accepts with the tx_code (the wallet runs OpenID4VCI: token,
   nonce, credential, both formats in batches, verifies and stores them);
2. **presentation**: the employer creates a ``registration_certificate`` request -> the
   person opens it in the wallet and consents (OpenID4VP ``direct_post.jwt``) -> the employer
   reads the result, which must be ``verified``.

Each person is a distinct eID login: the development eID is started with
``INTYG_EID_DEV_LOAD_PERSONS=<wallets>`` (synthetic persons ``load-00001`` ..., eid/persons.py)
and each gets an AF registration through the back office first.

A 503 with ``Retry-After`` is counted apart and retried after the delay (it is the
services' retriable answer to contention); any other 5xx, an unexpected status, a transport
error or a result other than ``verified`` is an error. Afterwards the services are stopped
and the invariant checker (``intyg check``) runs over their databases.

    .venv/bin/python bench/load.py                         # SQLite, 200 wallets, 60 s
    .venv/bin/python bench/load.py --backend postgresql    # INTYG_TEST_POSTGRES_URL's server
    .venv/bin/python bench/load.py --wallets 20 --seconds 10

Prints throughput, latency p50/p95/p99 of whole flows and of single requests, errors, the
503s, CPU seconds per flow of the services, the invariant counts, and the row for
docs/reliability.md. Exit code 1 on any error or invariant violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eid.persons import TestPerson, load_person  # noqa: E402
from intyg.demo import form_with, page_text  # noqa: E402
from intyg.web.invariants import Report  # noqa: E402
from tests.reliability.system import System  # noqa: E402
from wallet.texts import CONSENT_TEXT  # noqa: E402

TIMEOUT = 180.0
MAX_RETRIES = 30
MAX_RETRY_AFTER = 5.0
SHOWN_ERRORS = 12
#: What the wallet's outcome page says when the verifier took the presentation (Swedish).
SENT_OK = CONSENT_TEXT["sv"]["sent_ok"]
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


# -- what is measured ----------------------------------------------------------------------------


@dataclass
class Stats:
    """Latencies (seconds), outcomes and errors of one run."""

    flows: dict[str, list[float]] = field(
        default_factory=lambda: {"issuance": [], "presentation": []}
    )
    requests: list[float] = field(default_factory=list)
    retried_503: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        self.examples.setdefault(kind, detail[:300])

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 (nearest rank); zeros for no values."""
    if not values:
        return 0.0, 0.0, 0.0
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))]

    return rank(0.50), rank(0.95), rank(0.99)


class FlowFailed(Exception):
    """A step answered something a person could not go on from (already counted)."""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if response.status_code == 503 and value.isdigit() else None


class Client:
    """An httpx client that times every request, retries 503 + Retry-After and counts errors."""

    def __init__(self, stats: Stats, **options: Any) -> None:
        self.stats = stats
        # No connection reuse: a browser repeats a request that meets a kept-alive connection
        # the server is closing just then (uvicorn: after 5 s idle, which on a starved
        # machine can pass before this client even reads the last response); this does not.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        self.http = httpx.AsyncClient(timeout=TIMEOUT, limits=limits, **options)

    async def call(
        self, step: str, method: str, url: str, expected: tuple[int, ...] = (200,), **kw: Any
    ) -> httpx.Response:
        for _ in range(MAX_RETRIES):
            started = time.monotonic()
            try:
                response = await self.http.request(method, url, **kw)
            except httpx.HTTPError as exc:
                self.stats.error(f"{step}: {type(exc).__name__}", str(exc) or repr(exc))
                raise FlowFailed from None
            self.stats.requests.append(time.monotonic() - started)
            self.stats.statuses[response.status_code] += 1
            delay = _retry_after(response)
            if delay is None:
                break
            self.stats.retried_503 += 1
            await asyncio.sleep(min(delay, MAX_RETRY_AFTER))
        if response.status_code not in expected:
            kind = "5xx" if response.status_code >= 500 else "unexpected status"
            self.stats.error(
                f"{step}: {kind} {response.status_code}",
                page_text(response.text).replace("\n", " ")
                if "html" in response.headers.get("content-type", "")
                else response.text,
            )
            raise FlowFailed
        return response

    async def close(self) -> None:
        await self.http.aclose()


# -- the actors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    eid: str
    af: str
    wallet: str
    verifier: str


class BackOffice:
    """Arbetsförmedlingen's back office: registrations and offers (docs/issuer.md)."""

    def __init__(self, client: Client, base: str, secret: str) -> None:
        self.client, self.base, self.secret = client, base, secret
        self.token = ""

    async def authenticate(self) -> None:
        response = await self.client.call(
            "back office token",
            "POST",
            self.base + "/backoffice/v1/token",
            data={"grant_type": "client_credentials"},
            auth=("dev-backoffice", self.secret),
        )
        self.token = response.json()["access_token"]

    async def _json(self, step: str, method: str, path: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        response = await self.client.call(
            step, method, self.base + "/backoffice/v1" + path, (200, 201), json=body,
            headers=headers,
        )  # fmt: skip
        return response.json()

    async def register(self, person: TestPerson) -> tuple[str, int]:
        body = {
            "personal_identity_number": person.number.twelve_digits,
            "given_name": person.given_name, "family_name": person.family_name,
            "registered": True, "registered_since": "2025-09-01",
            "registration_category": {"code": "11", "label": "Öppet arbetslös"},
        }  # fmt: skip
        view = await self._json("back office registration", "PUT", "/registrations", body)
        return view["person"], view["record_id"]

    async def offer(self, person: str, record_id: int) -> dict[str, Any]:
        body = {"person": person, "record_id": record_id, "tx_code": True}
        return dict(await self._json("back office offer", "POST", "/offers", body))


class SimulatedWallet:
    """One person on the wallet's pages (cookies, redirects), as ``intyg demo``'s Anna."""

    def __init__(self, person: TestPerson, endpoints: Endpoints, stats: Stats) -> None:
        self.person, self.endpoints, self.stats = person, endpoints, stats
        self.browser = Client(stats, follow_redirects=True)
        self.record: tuple[str, int] | None = None

    async def log_in(self) -> None:
        picker = await self.browser.call(
            "login: eID picker", "GET", self.endpoints.wallet + "/login", params={"next": "/"}
        )
        form = form_with(picker, r"authorize")
        landed = await self.browser.call(
            "login: eID decision",
            "POST",
            form.action,
            data={**form.fields, "person": self.person.id},
        )
        if not str(landed.url).startswith(self.endpoints.wallet):
            self.stats.error("login", f"ended at {landed.url}")
            raise FlowFailed

    async def receive(self, office: BackOffice) -> None:
        """Issuance: an offer from the back office, accepted in the wallet with its tx_code."""
        assert self.record is not None
        offer = await office.offer(*self.record)
        add = await self.browser.call("wallet: add page", "GET", self.endpoints.wallet + "/add")
        form = form_with(add, r"/add$")
        shown = await self.browser.call(
            "wallet: the offer", "POST", form.action, data={**form.fields, "link": offer["link"]}
        )
        accept = form_with(shown, r"/accept$")
        accept.fields["tx_code"] = offer["tx_code"]
        stored = await self.browser.call(
            "wallet: accept", "POST", accept.action, data=accept.fields
        )
        if "/credentials/" not in stored.url.path and stored.url.path != "/":
            self.stats.error("wallet: accept", f"ended at {stored.url.path}")
            raise FlowFailed

    async def present(self, employer: Client) -> None:
        """Presentation: the employer asks, the person consents, the result is verified."""
        created = await employer.call(
            "verifier: create request", "POST", self.endpoints.verifier + "/api/v1/transactions",
            (201,), json={"template": "registration_certificate"},
        )  # fmt: skip
        transaction = created.json()
        query = urlsplit(transaction["request_link"]).query
        screen = await self.browser.call(
            "wallet: consent screen", "GET", self.endpoints.wallet + "/authorize?" + query
        )
        approve = form_with(screen, r"/approve$")
        outcome = await self.browser.call(
            "wallet: approve", "POST", approve.action, data=approve.fields
        )
        if SENT_OK not in outcome.text:
            self.stats.error("wallet: approve", page_text(outcome.text).replace("\n", " "))
            raise FlowFailed
        view = await employer.call(
            "verifier: result", "GET",
            f"{self.endpoints.verifier}/api/v1/transactions/{transaction['transaction_id']}",
        )  # fmt: skip
        status = view.json().get("status")
        if status != "verified":
            checks = (view.json().get("result") or {}).get("failed_checks")
            self.stats.error("verifier: result", f"status {status}, failed checks {checks}")
            raise FlowFailed


async def _timed(stats: Stats, flow: str, step: Awaitable[None]) -> bool:
    started = time.monotonic()
    try:
        await step
    except FlowFailed:
        return False
    stats.flows[flow].append(time.monotonic() - started)
    return True


async def _wallet_loop(
    wallet: SimulatedWallet, office: BackOffice, employer: Client, deadline: float, delay: float
) -> None:
    await asyncio.sleep(delay)
    while time.monotonic() < deadline:
        if await _timed(wallet.stats, "issuance", wallet.receive(office)):
            await _timed(wallet.stats, "presentation", wallet.present(employer))


async def _prepare(wallets: list[SimulatedWallet], office: BackOffice, limit: int) -> int:
    """Records and eID logins before the clock starts; -> wallets ready."""
    gate = asyncio.Semaphore(limit)

    async def one(wallet: SimulatedWallet) -> bool:
        async with gate:
            try:
                wallet.record = await office.register(wallet.person)
                await wallet.log_in()
            except FlowFailed:
                return False
            return True

    return sum(await asyncio.gather(*(one(w) for w in wallets)))


async def run_load(
    endpoints: Endpoints,
    secrets_: dict[str, Any],
    people: list[TestPerson],
    seconds: float,
    during: Callable[[], Awaitable[None]] | None = None,
    ramp: float = 0.0,
) -> tuple[Stats, float, int]:
    """-> stats, wall seconds of the measured part, wallets that started. The wallets start
    evenly over the first ``ramp`` seconds; ``during`` runs alongside the measured part (a
    fault scenario's harm)."""
    setup = Stats()
    office = BackOffice(Client(setup), endpoints.af, secrets_["backoffice"]["issuer-af"])
    await office.authenticate()
    wallets = [SimulatedWallet(person, endpoints, setup) for person in people]
    ready = await _prepare(wallets, office, limit=20)
    if setup.error_count:
        print("setup errors:", *setup.examples.items(), sep="\n  ")
    stats = Stats()
    office.client.stats = stats
    api = secrets_["employer_api"]
    employer = Client(stats, headers={"X-API-Key": f"{api['client_id']}:{api['secret']}"})
    for wallet in wallets:
        wallet.stats = wallet.browser.stats = stats
    started = time.monotonic()
    harm = asyncio.create_task(during()) if during is not None else None
    running = [wallet for wallet in wallets if wallet.record is not None]
    step = ramp / max(len(running), 1)
    await asyncio.gather(
        *(
            _wallet_loop(wallet, office, employer, started + seconds, n * step)
            for n, wallet in enumerate(running)
        )
    )
    if harm is not None:
        await harm
    elapsed = time.monotonic() - started
    for client in (office.client, employer, *(w.browser for w in wallets)):
        await client.close()
    return stats, elapsed, ready


# -- CPU of the services ---------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes (``/proc/<pid>/stat``), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def alongside() -> str:
    """What else loads the machine: load average and the busiest other processes."""
    mine = os.getpid()
    busy = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == mine:
            continue
        with contextlib.suppress(OSError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            state = fields[0]
            if state == "R":
                name = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:60]
                busy.append(name)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"load average {load}; running now: {len(busy)} process(es)"


# -- one command -----------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_prefix(server_url: str) -> Iterator[str]:
    """A fresh ``INTYG_UP_POSTGRES_URL`` prefix on ``server_url``; databases dropped after."""
    import sqlalchemy as sa

    from intyg.web import db
    from tests.system.postgres import drop_databases

    prefix = f"intyg_load_{secrets.token_hex(4)}"
    admin = sa.create_engine(
        db.normalise_url(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    try:
        yield (
            db.normalise_url(server_url)
            .set(drivername="postgresql", database=prefix)
            .render_as_string(hide_password=False)
        )
    finally:
        drop_databases(admin, prefix)
        admin.dispose()


def report_lines(
    backend: str,
    wallets: int,
    seconds: float,
    stats: Stats,
    elapsed: float,
    cpu: float,
    context: str,
) -> list[str]:
    """The printed report; the last line is the docs/reliability.md table row."""
    done = sum(len(v) for v in stats.flows.values())
    lines = [
        f"backend {backend}: {wallets} concurrent wallets for {seconds:.0f} s "
        f"(last flow ended after {elapsed:.1f} s); {context}",
    ]
    for flow, values in stats.flows.items():
        p50, p95, p99 = percentiles(values)
        lines.append(
            f"  {flow:<12} {len(values):>6} ok  {len(values) / elapsed:6.2f}/s  "
            f"p50 {p50:6.2f} s  p95 {p95:6.2f} s  p99 {p99:6.2f} s"
        )
    p50, p95, p99 = percentiles(stats.requests)
    lines.append(
        f"  HTTP requests {len(stats.requests):>5}       {len(stats.requests) / elapsed:6.1f}/s  "
        f"p50 {p50 * 1000:6.0f} ms p95 {p95 * 1000:6.0f} ms p99 {p99 * 1000:6.0f} ms"
    )
    lines.append(f"  statuses: {dict(sorted(stats.statuses.items()))}")
    lines.append(
        f"  errors {stats.error_count}; 503 with Retry-After (retried) {stats.retried_503}; "
        f"services' CPU {cpu:.0f} s = {cpu / max(done, 1) * 1000:.0f} ms per flow"
    )
    for kind, n in stats.errors.most_common(SHOWN_ERRORS):
        lines.append(f"    {n} x {kind}, e.g. {stats.examples[kind]}")
    return lines


def table_row(
    args: argparse.Namespace,
    ready: int,
    stats: Stats,
    elapsed: float,
    report: Report,
    loads: tuple[float, float],
) -> str:
    """The docs/reliability.md row of this run."""
    done = {flow: len(values) for flow, values in stats.flows.items()}
    p50, p95, p99 = percentiles(stats.flows["issuance"] + stats.flows["presentation"])
    verdict = "clean" if report.ok else f"{report.violation_count} violation(s)"
    checked = " ".join(f"{o.invariant} {o.checked}" for o in report.outcomes.values())
    ramp = "" if args.ramp == 10 else f" --ramp {args.ramp:g}"
    return (
        f"| L01 load, {args.backend} | {ready} wallets x {args.seconds:.0f} s (started over "
        f"{args.ramp:g} s): issuance + presentation, each a distinct eID login | "
        f"{sum(done.values()) / elapsed:.2f} flows/s ({done['issuance']} issuances, "
        f"{done['presentation']} presentations); flow p50/p95/p99 {p50:.1f}/{p95:.1f}/{p99:.1f}"
        f" s; errors {stats.error_count}; 503+Retry-After {stats.retried_503}; machine load "
        f"average {loads[0]:.0f} -> {loads[1]:.0f} | {verdict} "
        f"({checked}) | `.venv/bin/python bench/load.py --backend {args.backend}{ramp}` |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("INTYG_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--wallets", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--ramp", type=float, default=10.0, help="start the wallets evenly over these seconds"
    )
    parser.add_argument("--data-dir", type=Path, help="keep the data folder here")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="SERVICE:NAME=VALUE",
        help="extra environment for one service (repeat)",
    )
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="intyg-load-")) / "data"
    extra: dict[str, dict[str, str]] = {"eid": {"INTYG_EID_DEV_LOAD_PERSONS": str(args.wallets)}}
    for item in args.env:
        service, _, assignment = item.partition(":")
        name, _, value = assignment.partition("=")
        extra.setdefault(service, {})[name] = value
    people = [load_person(n) for n in range(1, args.wallets + 1)]
    with contextlib.ExitStack() as stack:
        postgres = (
            stack.enter_context(postgres_prefix(args.postgres_url))
            if args.backend == "postgresql"
            else None
        )
        print(f"starting the services (data {data_dir}) ...", flush=True)
        system = System(data_dir, postgres_url=postgres, extra_env=extra)
        with system:
            endpoints = Endpoints(
                system.url("eid"), system.url("issuer-af"), system.url("wallet"),
                system.url("verifier"),
            )  # fmt: skip
            pids = {child.service.name: child.process.pid for child in system.supervisor.children}
            context = alongside()
            print(f"running: {context}", flush=True)
            cpu_before = {name: cpu_seconds([pid]) for name, pid in pids.items()}
            load_before = os.getloadavg()[0]
            stats, elapsed, ready = asyncio.run(
                run_load(endpoints, system.secrets, people, args.seconds, ramp=args.ramp)
            )
            per_service = {
                name: cpu_seconds([pid]) - cpu_before[name] for name, pid in pids.items()
            }
            cpu = sum(per_service.values())
            loads = (load_before, os.getloadavg()[0])
            context += f"; after: {alongside()}"
        report = system.check()
    context = f"started over {args.ramp:.0f} s; {context}"
    lines = report_lines(args.backend, ready, args.seconds, stats, elapsed, cpu, context)
    lines.append("  CPU s by service: " + ", ".join(f"{k} {v:.1f}" for k, v in per_service.items()))
    lines += ["invariants:", *("  " + line for line in report.lines()[1:])]
    lines.append(table_row(args, ready, stats, elapsed, report, loads))
    print("\n".join(lines))
    return 0 if report.ok and stats.error_count == 0 and ready == args.wallets else 1


if __name__ == "__main__":
    raise SystemExit(main())
