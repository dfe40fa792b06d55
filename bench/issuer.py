"""Issuer throughput: full OpenID4VCI issuances per second over HTTP on loopback.

Each issuance is what a wallet does after scanning an offer: token request (pre-authorized
code, DPoP) -> nonce -> credential request (one ``jwt`` proof) -> SD-JWT VC. Offers are
created beforehand with the back-office function :func:`issuer.offers.create_offer` (in the
database, as the agency's systems would), then N simulated wallets (asyncio + httpx, the
wallet from ``tests/issuer/wallet_sim.py``) redeem them concurrently against uvicorn +
PostgreSQL. A fresh database is created for every run and dropped afterwards.

    .venv/bin/python bench/issuer.py --issuances 3000 --wallets 48 --workers 2

Prints issuances/s, latency p50/p95/p99 of whole issuances, errors, and the CPU time spent
per issuance by uvicorn, by the database's PostgreSQL backends and by this load generator
(throughput depends on whatever else runs on the machine; CPU per issuance much less).
Target (issue 3): >= 300 issuances/s on the 2-core machine.
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
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intyg import jose  # noqa: E402
from intyg.web import db  # noqa: E402
from intyg.web.crypto_store import generate_master_key  # noqa: E402
from issuer import offers, records  # noqa: E402
from issuer.app import build_context, create_app, startup  # noqa: E402
from issuer.models import Person  # noqa: E402
from issuer.settings import IssuerSettings  # noqa: E402
from tests.issuer.wallet_sim import AsyncWallet  # noqa: E402

CONFIGURATION_ID = "RegistrationCertificate_dc+sd-jwt"

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore asks "import sniffio" on every request; without the package each failed import
    # walks sys.path (0.5 ms a time, the load generator's biggest cost). Answer for it.
    _stub = types.ModuleType("sniffio")
    _stub.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
    sys.modules["sniffio"] = _stub


def make_app():  # type: ignore[no-untyped-def]
    """uvicorn factory: settings from ``INTYG_ISSUER_*`` (set by :func:`main`)."""
    return create_app(IssuerSettings())


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


def prepare(settings: IssuerSettings, count: int) -> list[str]:
    """Migrate, keys, lists, sample records; then ``count`` offers -> pre-authorized codes."""
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
    ctx.engine.dispose()
    return codes


async def run(base: str, codes: list[str], wallets: int) -> tuple[list[float], list[str], float]:
    """``wallets`` concurrent wallets, each with its own keep-alive connection (as separate
    phones would have; one shared pool makes httpcore scan every connection per request)."""
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
    return latencies, errors, elapsed


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


def server_cpu(root: int, database: str) -> dict[str, float]:
    """CPU seconds used so far by the uvicorn tree and by the benchmark database's
    PostgreSQL backends (their command line names the database)."""
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(_children(pid))
    postgres = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if database in (entry / "cmdline").read_text():
                    postgres += _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return {
        "uvicorn": sum(_cpu_seconds(p) for p in tree),
        "uvicorn_system": sum(_cpu_seconds(p, (12,)) for p in tree),
        "postgres": postgres,
    }


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
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--wallets", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--no-dpop", action="store_true", help="HAIP off: Bearer tokens")
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
        codes = prepare(settings, args.warmup + args.issuances)
        offer_seconds = time.perf_counter() - started
        server = subprocess.Popen(
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
        wait_ready(base)
        asyncio.run(run(base, codes[: args.warmup], args.wallets))
        cpu_before = server_cpu(server.pid, name)
        client_before = time.process_time()
        latencies, errors, elapsed = asyncio.run(run(base, codes[args.warmup :], args.wallets))
        client_cpu = time.process_time() - client_before
        cpu_after = server_cpu(server.pid, name)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
        drop_database(args.postgres, name)
    done = len(latencies)
    print(f"offers prepared: {len(codes)} in {offer_seconds:.1f} s (back-office function)")
    print(
        f"issuer: uvicorn --workers {args.workers}, PostgreSQL, DPoP {not args.no_dpop}; "
        f"{args.wallets} concurrent wallets"
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
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    if done:
        # CPU per issuance tells changes apart even when other work shares the machine.
        used = {k: (cpu_after[k] - cpu_before[k]) * 1000 / done for k in cpu_after}
        print(
            f"CPU per issuance: uvicorn {used['uvicorn']:.1f} ms "
            f"({used['uvicorn_system']:.1f} in the kernel), "
            f"PostgreSQL {used['postgres']:.1f} ms, "
            f"load generator {client_cpu * 1000 / done:.1f} ms"
        )


if __name__ == "__main__":
    main()
