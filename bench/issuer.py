"""Issuer throughput: full OpenID4VCI issuances per second over HTTP on loopback.

Each issuance is what a wallet does after scanning an offer: token request (pre-authorized
code, DPoP) -> nonce -> credential request (one ``jwt`` proof) -> SD-JWT VC, with the
embedded default's HAIP profile (DPoP required). Offers are created beforehand with the
back-office function :func:`issuer.offers.create_offer` (in the database, as the agency's
systems would), then N wallets redeem them concurrently against uvicorn + PostgreSQL, each on
its own keep-alive connection. A fresh database is created for every run and dropped
afterwards.

The wallets are ``bench/lean_wallet.py`` (raw HTTP/1.1 + httptools on uvloop, messages from
intyg's core; every credential checked structurally as it arrives, a sample verified fully
after the timed part); ``--client httpx`` runs ``tests/issuer/wallet_sim.py`` instead (the
same flow over httpx, several times the load generator's CPU).

    .venv/bin/python bench/issuer.py --issuances 3000 --wallets 96 --workers 2

Prints issuances/s, latency p50/p95/p99 of whole issuances, errors, and the CPU time spent
per issuance by uvicorn, by the database's PostgreSQL backends and by this load generator
(throughput depends on whatever else runs on the machine; CPU per issuance much less).
Target (issue 3): >= 300 issuances/s on the 2-core machine. The default, 96 concurrent
wallets, stands for many phones at once: the issuer's group commit writes the statements of
concurrent requests together, so its database cost per issuance falls as concurrency rises
(docs/issuer.md "Performance" has the figures at 48 to 192 wallets).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import lean_wallet  # noqa: E402
from intyg import jose, schemas  # noqa: E402
from intyg.web import db  # noqa: E402
from intyg.web.crypto_store import generate_master_key  # noqa: E402
from intyg.web.operations import tune_collector  # noqa: E402
from issuer import offers, records  # noqa: E402
from issuer.app import build_context, create_app, startup  # noqa: E402
from issuer.models import Person  # noqa: E402
from issuer.settings import IssuerSettings  # noqa: E402
from tests.issuer.wallet_sim import AsyncWallet  # noqa: E402

CONFIGURATION_TYPE = "RegistrationCertificate"
CONFIGURATION_ID = f"{CONFIGURATION_TYPE}_dc+sd-jwt"

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore asks "import sniffio" on every request; without the package each failed import
    # walks sys.path (0.5 ms a time, the load generator's biggest cost). Answer for it.
    _stub = types.ModuleType("sniffio")
    _stub.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
    sys.modules["sniffio"] = _stub


def make_app():  # type: ignore[no-untyped-def]
    """uvicorn factory: settings from ``INTYG_ISSUER_*`` (set by :func:`main`); the
    collector tuned as :func:`issuer.app.create_app_from_env` does."""
    app = create_app(IssuerSettings())
    tune_collector()
    return app


def create_database(admin_url: str) -> tuple[str, str]:
    name = f"intyg_bench_{secrets.token_hex(4)}"
    engine = db.create_engine(admin_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    base = sa.make_url(admin_url).set(database=name)
    return name, base.render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    engine = db.create_engine(admin_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def prepare(settings: IssuerSettings, count: int) -> tuple[list[str], str]:
    """Migrate, keys, lists, sample records; then ``count`` offers -> pre-authorized codes
    (and the issuer's CA certificate, to verify credentials with)."""
    ctx = build_context(settings)
    startup(ctx)
    codes = []
    with db.session(ctx.engine) as unit:
        person = unit.scalars(sa.select(Person).order_by(Person.id)).first()
        assert person is not None and person.id is not None
        registration = records.find_registration(unit, person.id)
        assert registration is not None and registration.id is not None
        for _ in range(count):
            created = offers.create_offer(
                unit, ctx, person, registration.id, [CONFIGURATION_ID], tx_code=False, ttl=3600
            )
            codes.append(offers.pre_authorized_code(ctx, created.offer_id))
    anchor = ctx.keys.trust_anchor_pem()
    assert anchor is not None
    ctx.engine.dispose()
    return codes, anchor


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: (credential, holder key) pairs kept for full verification after timing.
    sample: list[tuple[str, jose.Key]] = field(default_factory=list)
    elapsed: float = 0.0


async def run_lean(
    base: str, tickets: list[lean_wallet.Ticket], wallets: int, verify_every: int
) -> Outcome:
    """``wallets`` lean wallets, each on its own keep-alive connection (as phones would be)."""
    parts = urlsplit(base)
    outcome = Outcome()
    queue = iter(enumerate(tickets))
    vct = schemas.CREDENTIAL_TYPES[CONFIGURATION_TYPE]

    async def wallet_loop() -> None:
        http = await lean_wallet.HttpConnection.open(parts.hostname or "", parts.port or 80)
        wallet = lean_wallet.LeanWallet(http, base, CONFIGURATION_ID, vct)
        try:
            for number, ticket in queue:
                started = time.perf_counter()
                try:
                    credential = await wallet.issue(ticket)
                except Exception as exc:
                    outcome.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    if isinstance(exc, ConnectionError):
                        return
                    continue
                outcome.latencies.append(time.perf_counter() - started)
                if number % verify_every == 0:
                    outcome.sample.append((credential, ticket.holder))
        finally:
            http.close()

    started = time.perf_counter()
    await asyncio.gather(*(wallet_loop() for _ in range(wallets)))
    outcome.elapsed = time.perf_counter() - started
    return outcome


async def run_httpx(base: str, codes: list[str], wallets: int) -> Outcome:
    """The same with ``tests/issuer/wallet_sim.py`` over httpx, each wallet with its own
    keep-alive connection (one shared pool makes httpcore scan every connection per
    request)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for code in codes:
        queue.put_nowait(code)
    # Holder keys are fresh per credential; making them is the wallet's work, not timed here.
    holder_keys = iter([jose.generate_key("ES256") for _ in codes])
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(timeout=30, limits=limits) for _ in range(wallets)]
    agents = [AsyncWallet(http, base, holder_keys=holder_keys) for http in clients]

    async def wallet_loop(wallet: AsyncWallet) -> None:
        while True:
            try:
                code = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            try:
                await wallet.issue(code, CONFIGURATION_ID)
            except Exception as exc:
                errors.append(str(exc)[:200])
            else:
                latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(wallet_loop(agent) for agent in agents))
        elapsed = time.perf_counter() - started
    finally:
        for http in clients:
            await http.aclose()
    return Outcome(latencies, errors, [], elapsed)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _cpu_seconds(pid: int, fields_wanted: tuple[int, ...] = (11, 12)) -> float:
    """utime + stime (or the /proc stat fields asked for) of one process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in fields_wanted) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        found = []
        for task in tasks:
            found.extend(int(c) for c in (task / "children").read_text().split())
    except OSError:
        return []
    return found


def server_cpu(root: int, database: str) -> dict[str, dict[int, float]]:
    """CPU seconds used so far, per process: the uvicorn tree (and its kernel part) and the
    benchmark database's PostgreSQL backends (their command line names the database)."""
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(_children(pid))
    postgres = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if database in (entry / "cmdline").read_text():
                    postgres[int(entry.name)] = _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return {
        "uvicorn": {p: _cpu_seconds(p) for p in tree},
        "uvicorn_system": {p: _cpu_seconds(p, (12,)) for p in tree},
        "postgres": postgres,
    }


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """Seconds used between two samples by the processes alive at the second (a backend
    that ended in between is lost, one that started counts from zero)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def wait_ready(base: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("issuer did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "INTYG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--issuances", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--wallets", type=int, default=96)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--client", choices=("lean", "httpx"), default="lean")
    parser.add_argument(
        "--verify-every", type=int, default=50, help="verify every Nth credential fully"
    )
    parser.add_argument(
        "--no-dpop", action="store_true", help="HAIP off, lean wallets use Bearer tokens"
    )
    args = parser.parse_args()

    name, url = create_database(args.postgres)
    base = f"http://127.0.0.1:{args.port}"
    env = {
        **os.environ,
        "INTYG_ISSUER_ENVIRONMENT": "development",
        "INTYG_ISSUER_PUBLIC_BASE_URL": base,
        "INTYG_ISSUER_MASTER_KEY": generate_master_key(),
        "INTYG_ISSUER_DATABASE_URL": url,
        "INTYG_ISSUER_AGENCY": "af",
        "INTYG_ISSUER_HAIP": "false" if args.no_dpop else "true",
    }
    server = None
    try:
        os.environ.update(env)
        settings = IssuerSettings(dev_sample_data=True)
        started = time.perf_counter()
        codes, anchor = prepare(settings, args.warmup + args.issuances)
        offer_seconds = time.perf_counter() - started
        server = start_server(args, env)
        wait_ready(base)
        if args.client == "lean":
            tickets = lean_wallet.make_tickets(base, codes, use_dpop=not args.no_dpop)
            uvloop.run(run_lean(base, tickets[: args.warmup], args.wallets, args.verify_every))
            cpu_before = server_cpu(server.pid, name)
            client_before = time.process_time()
            outcome = uvloop.run(
                run_lean(base, tickets[args.warmup :], args.wallets, args.verify_every)
            )
        else:
            asyncio.run(run_httpx(base, codes[: args.warmup], args.wallets))
            cpu_before = server_cpu(server.pid, name)
            client_before = time.process_time()
            outcome = asyncio.run(run_httpx(base, codes[args.warmup :], args.wallets))
        client_cpu = time.process_time() - client_before
        cpu_after = server_cpu(server.pid, name)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
        drop_database(args.postgres, name)
    verified = lean_wallet.verify_sample(outcome.sample, anchor, base)
    report(args, outcome, offer_seconds, len(codes), verified, cpu_before, cpu_after, client_cpu)


def start_server(args: argparse.Namespace, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.issuer:make_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


def report(
    args: argparse.Namespace,
    outcome: Outcome,
    offer_seconds: float,
    offers_made: int,
    verified: int,
    cpu_before: dict[str, dict[int, float]],
    cpu_after: dict[str, dict[int, float]],
    client_cpu: float,
) -> None:
    done, elapsed, latencies = len(outcome.latencies), outcome.elapsed, outcome.latencies
    print(f"offers prepared: {offers_made} in {offer_seconds:.1f} s (back-office function)")
    print(
        f"issuer: uvicorn --workers {args.workers}, PostgreSQL, DPoP {not args.no_dpop}; "
        f"{args.wallets} concurrent wallets ({args.client})"
    )
    print(
        f"issuances: {done} in {elapsed:.2f} s = {done / elapsed:.1f} issuances/s "
        f"({3 * done / elapsed:.0f} HTTP requests/s)"
    )
    print(
        f"latency per issuance: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
        f"p95 {percentile(latencies, 95) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.1f} ms"
    )
    errors = outcome.errors
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    if args.client == "lean":
        print(
            f"credentials checked: {done} structurally (typ, iss, vct, cnf = holder key, "
            f"status), {verified} fully with intyg core (x5c, signature, key binding)"
        )
    if done:
        # CPU per issuance tells changes apart even when other work shares the machine.
        used = {k: cpu_used(cpu_before[k], cpu_after[k]) * 1000 / done for k in cpu_after}
        total = used["uvicorn"] + used["postgres"] + client_cpu * 1000 / done
        print(
            f"CPU per issuance: uvicorn {used['uvicorn']:.2f} ms "
            f"({used['uvicorn_system']:.2f} in the kernel), "
            f"PostgreSQL {used['postgres']:.2f} ms ({len(cpu_after['postgres'])} backends), "
            f"load generator {client_cpu * 1000 / done:.2f} ms; "
            f"total {total:.2f} ms = {2000 / total:.0f} issuances/s on 2 idle cores"
        )


if __name__ == "__main__":
    main()
