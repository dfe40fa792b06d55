"""Verifier throughput: OpenID4VP ``direct_post`` verifications per second over HTTP on loopback.

A verification is one wallet response to ``POST /response`` that the verifier checks in
full (locate the transaction by ``state`` or JWE ``kid``, decrypt, trust list + x5c chain,
issuer signature, disclosures, validity, KB-JWT, nonce once, requested claims, values,
status list (cached), schema) and records (result, sealed claims, audit, outbox) in
PostgreSQL before it answers 200.

Everything a wallet would do is done **before** the timed section: transactions are
created with :func:`verifier.transactions.create_transaction` (as the employer API does),
registration certificates issued with :func:`intyg.sdjwt_vc.issue_vc` by a test CA in the
trust list, each with a KB-JWT for its transaction's ``nonce`` and full ``client_id``; the
forms are encoded for ``direct_post`` and ``direct_post.jwt`` (ECDH-ES, A256GCM to the
transaction's key). Each body is sent exactly once (a second send would be a replay). Then:

1. closed loop per response mode: C keep-alive connections, each sending its next body when
   the last was answered (``wrk`` with bench/verifier_wrk.lua, or the asyncio client);
2. the same presentations against a **bare** FastAPI endpoint that does only the two
   signature checks (issuer JWT ES256 + KB-JWT ES256) — the floor of any verifier;
3. open loop at a fixed rate (default 1,000/s) with the asyncio client: requests start on
   schedule whether or not earlier ones finished, latency counted from the scheduled start.

CPU time per verification is reported for the uvicorn processes, the benchmark database's
PostgreSQL backends and the load generator, with the rest of the machine's load at the time
(the machine may be shared: CPU per verification is the figure to compare). Afterwards the
database must hold exactly as many verified transactions as there were 200 answers, none
rejected, and a sample of results read through the employer API must be ``verified`` with
every check named. A fresh PostgreSQL database is created and dropped.

    .venv/bin/python bench/verifier.py --verifications 5000 --connections 32 --workers 2

A quick comparison of one response mode: ``--modes direct_post --no-bare --open-seconds 0``.

Targets (issue 5): >= 1,500 verifications/s; p99 < 50 ms at 1,000/s (open loop).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import verifier_load as load  # noqa: E402
from bench.issuer import cpu_used, create_database, drop_database, server_cpu  # noqa: E402
from intyg import jose, jwe, sdjwt, status  # noqa: E402
from intyg.web import db  # noqa: E402
from intyg.web.bodies import parse_form  # noqa: E402
from intyg.web.crypto_store import generate_master_key  # noqa: E402
from intyg.web.operations import tune_collector  # noqa: E402
from tests.verifier.helpers import (  # noqa: E402
    REGISTRATION_DISCLOSE,
    Pki,
    StatusServer,
    issue,
    registration_payload,
)
from verifier import pipeline, templates, transactions  # noqa: E402
from verifier.app import build_context, create_app, startup  # noqa: E402
from verifier.employers import DEV_CLIENT_ID, DEV_EMPLOYER  # noqa: E402
from verifier.models import Employer, Transaction  # noqa: E402
from verifier.settings import VerifierSettings  # noqa: E402

if "sniffio" not in sys.modules:
    try:
        import sniffio  # noqa: F401
    except ImportError:  # see bench/issuer.py: a failed import per request is costly
        _stub = types.ModuleType("sniffio")
        _stub.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
        sys.modules["sniffio"] = _stub

MODES = ("direct_post", "direct_post.jwt")
API_SECRET = "bench-secret"  # the development API client of a throwaway database


# -- the two servers (uvicorn factories) -----------------------------------------------------------


def make_app():  # type: ignore[no-untyped-def]
    """The verifier, settings from ``INTYG_VERIFIER_*`` (set by :func:`main`); no background
    tasks (the purge and webhook loops are not part of a verification)."""
    app = create_app(VerifierSettings(), background_tasks=())
    threads = int(os.environ.get("INTYG_BENCH_THREADS", "0"))
    if threads:
        # Blocking work runs in anyio's thread pool (40 threads by default); more threads
        # than database connections means waiting for, and churning, connections.
        import contextlib

        import anyio.to_thread

        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(app):  # type: ignore[no-untyped-def]
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
            async with inner(app) as state:
                yield state

        app.router.lifespan_context = lifespan
    tune_collector()  # as verifier.app.create_app_from_env does
    return app


def make_bare_app():  # type: ignore[no-untyped-def]
    """Only the two signature checks on the same ``direct_post`` form: the issuer JWT with
    the issuer's key, the KB-JWT with the key in the issuer JWT's ``cnf``."""
    issuer_key = jose.key_from_jwk(json.loads(os.environ["INTYG_BENCH_ISSUER_JWK"]))
    app = FastAPI()

    @app.post("/response")
    async def bare(request: Request) -> JSONResponse:
        form = parse_form(await request.body())
        presentation = json.loads(form["vp_token"])["registration"][0]
        parts = presentation.split("~")
        issuer_jws = jose.parse_jws(parts[0])
        jose.verify_signature(issuer_jws, issuer_key)
        holder = jose.key_from_jwk(issuer_jws.claims()["cnf"]["jwk"])
        jose.verify_signature(jose.parse_jws(parts[-1]), holder)
        return JSONResponse({})

    tune_collector()  # the same process settings as the verifier's
    return app


# -- preparation (not timed) -----------------------------------------------------------------------


@dataclass
class Prepared:
    bodies: dict[str, list[bytes]]  # per response mode, one transaction each
    transaction_ids: dict[str, list[str]]
    bare: list[bytes]  # plain forms of the direct_post.jwt presentations
    issuer_jwk: dict[str, Any]


def prepare(settings: VerifierSettings, counts: dict[str, int], status_uri: str, af) -> Prepared:
    """Transactions, credentials and encoded responses for every run."""
    ctx = build_context(settings)
    startup(ctx)
    with db.session(ctx.engine, write=False) as unit:
        employer = unit.scalars(
            sa.select(Employer).where(Employer.org_number == DEV_EMPLOYER[1])
        ).one()
    bodies: dict[str, list[bytes]] = {mode: [] for mode in MODES}
    ids: dict[str, list[str]] = {mode: [] for mode in MODES}
    bare: list[bytes] = []
    for mode, count in counts.items():
        mode_ctx = build_context(
            settings.model_copy(update={"response_mode": mode}), engine=ctx.engine
        )
        mode_ctx.keys = ctx.keys
        with db.session(ctx.engine) as unit:
            created = [
                transactions.create_transaction(
                    mode_ctx,
                    unit,
                    employer_id=employer.id,
                    client_id=None,
                    template=templates.REGISTRATION_CERTIFICATE,
                )
                for _ in range(count)
            ]
        for index, transaction in enumerate(created):
            claims = transactions.request_claims(ctx, transaction)  # what GET /request signs
            holder = jose.generate_key("ES256")
            issued = issue(registration_payload({"idx": index % 64, "uri": status_uri}), af, holder)
            presentation = sdjwt.present(
                issued,
                [(name,) for name in REGISTRATION_DISCLOSE],
                holder_key=holder,
                aud=claims["client_id"],
                nonce=claims["nonce"],
            )
            vp_token = {"registration": [presentation]}
            plain = form_body({"vp_token": json.dumps(vp_token), "state": claims["state"]})
            ids[mode].append(transaction.id)
            if mode == "direct_post":
                bodies[mode].append(plain)
                continue
            bare.append(plain)
            jwk = claims["client_metadata"]["jwks"]["keys"][0]
            response = jwe.encrypt(
                {"vp_token": vp_token, "state": claims["state"]}, jwk, enc="A256GCM"
            )
            bodies[mode].append(form_body({"response": response}))
    ctx.engine.dispose()
    return Prepared(bodies, ids, bare, af.key.public_jwk())


_UNRESERVED = re.compile(rb"[^A-Za-z0-9_.~-]")


def form_body(fields: dict[str, str]) -> bytes:
    """``application/x-www-form-urlencoded`` (as urlencode, much faster on long values)."""
    return b"&".join(
        name.encode("ascii") + b"=" + _UNRESERVED.sub(lambda m: b"%%%02X" % m[0][0], value.encode())
        for name, value in fields.items()
    )


# -- measuring -------------------------------------------------------------------------------------


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    label: str
    outcome: load.Outcome
    server: float  # CPU seconds of the uvicorn processes
    server_kernel: float  # of which in the kernel (system time)
    postgres: float  # CPU seconds of the benchmark database's backends
    other_cores: float  # the rest of the machine, in busy cores on average
    load_average: float

    def per(self, seconds: float) -> float:
        """Milliseconds per answered request."""
        return seconds * 1000 / self.outcome.total if self.outcome.total else float("nan")


def measure(
    label: str, server_pid: int, database: str, run: Callable[[], load.Outcome]
) -> Measured:
    before, busy = server_cpu(server_pid, database), _machine_busy()
    started = time.perf_counter()
    outcome = run()
    wall = time.perf_counter() - started
    after, busy = server_cpu(server_pid, database), _machine_busy() - busy
    server = cpu_used(before["uvicorn"], after["uvicorn"])
    kernel = cpu_used(before["uvicorn_system"], after["uvicorn_system"])
    postgres = cpu_used(before["postgres"], after["postgres"])
    other = max(0.0, busy - server - postgres - outcome.client_cpu) / wall
    return Measured(label, outcome, server, kernel, postgres, other, os.getloadavg()[0])


def _closed(args: argparse.Namespace, base: str, bodies: list[bytes]) -> load.Outcome:
    if args.generator == "wrk":
        return load.wrk_closed_loop(base, "/response", bodies, args.connections)
    host, _, port = base.removeprefix("http://").partition(":")
    requests = load.render(host, int(port), "/response", bodies)
    return load.closed_loop(host, int(port), requests, args.connections)


# -- correctness -----------------------------------------------------------------------------------


def check_results(
    url: str, base: str, expected_verified: int, sample: list[str]
) -> tuple[bool, str]:
    """The database holds exactly ``expected_verified`` verified transactions and nothing
    rejected; sampled results (employer API) are verified with every check named."""
    engine = db.create_engine(url)
    with engine.connect() as connection:
        counts = dict(
            connection.execute(
                sa.select(Transaction.status, sa.func.count()).group_by(Transaction.status)
            ).all()
        )
    engine.dispose()
    problems = []
    if counts.get("verified", 0) != expected_verified:
        problems.append(f"{counts.get('verified', 0)} verified, expected {expected_verified}")
    for status_name in ("rejected", "processing", "error"):
        if counts.get(status_name):
            problems.append(f"{counts[status_name]} {status_name}")
    headers = {"X-API-Key": f"{DEV_CLIENT_ID}:{API_SECRET}"}
    expected_names = set(pipeline.CHECK_NAMES)
    for transaction_id in sample:
        view = httpx.get(f"{base}/api/v1/transactions/{transaction_id}", headers=headers).json()
        result = view.get("result") or {}
        names = {check["name"] for check in result.get("checks", [])}
        failed = [c["name"] for c in result.get("checks", []) if c["status"] == "failed"]
        if view.get("status") != "verified" or failed or names != expected_names:
            problems.append(f"{transaction_id}: {view.get('status')}, failed {failed}")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if problems:
        return False, f"NOT OK: {'; '.join(problems)} (database: {summary})"
    return True, (
        f"OK: {expected_verified} answers 200 = {counts.get('verified', 0)} verified in the "
        f"database, 0 rejected ({summary}); {len(sample)} sampled results verified, all "
        f"{len(expected_names)} checks named"
    )


# -- running ---------------------------------------------------------------------------------------


def _uvicorn(factory: str, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


def _stop(server: subprocess.Popen | None) -> None:
    if server is not None and server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)


def _wait(base: str, path: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} did not become ready")


def _line(measured: Measured, *, verifications: bool = True) -> str:
    outcome = measured.outcome
    p = outcome.percentiles
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(outcome.statuses.items()))
    text = (
        f"{measured.label:<32} {outcome.ok:>6} x 200 in {outcome.elapsed:6.2f} s "
        f"= {outcome.rate:7.1f}/s   p50 {p[50] * 1000:6.1f}  p95 {p[95] * 1000:6.1f}  "
        f"p99 {p[99] * 1000:6.1f} ms   [{statuses}]"
    )
    what = "verification" if verifications else "request"
    text += (
        f"\n{'':<32} CPU per {what}: uvicorn {measured.per(measured.server):.2f} ms "
        f"({measured.per(measured.server_kernel):.2f} in the kernel), "
        f"PostgreSQL {measured.per(measured.postgres):.2f} ms, load generator "
        f"{measured.per(outcome.client_cpu):.2f} ms ({outcome.generator}); "
        f"rest of the machine {measured.other_cores:.2f} cores busy, "
        f"load {measured.load_average:.1f}"
    )
    for error in outcome.errors:
        text += f"\n{'':<32} error: {error}"
    return text


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "INTYG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--verifications", type=int, default=5000, help="per closed-loop run")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process")
    parser.add_argument(
        "--modes", default=",".join(MODES), help="closed-loop response modes, comma-separated"
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare endpoint")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop requests/s")
    parser.add_argument("--open-seconds", type=float, default=5.0, help="0: no open loop")
    parser.add_argument("--open-mode", choices=MODES, default="direct_post.jwt")
    parser.add_argument("--open-connections", type=int, default=128)
    parser.add_argument(
        "--generator",
        choices=("wrk", "asyncio"),
        default="wrk" if load.wrk_available() else "asyncio",
        help="closed-loop load generator",
    )
    parser.add_argument("--port", type=int, default=8775)
    parser.add_argument("--bare-port", type=int, default=8776)
    args = parser.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    if not set(args.modes) <= set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    return args


def _environment(args: argparse.Namespace, url: str, scratch: Path, pki: Pki) -> dict[str, str]:
    trust_file = scratch / "trust.json"
    trust_file.write_text(json.dumps(pki.trust_list()), encoding="utf-8")
    return {
        **os.environ,
        "INTYG_VERIFIER_ENVIRONMENT": "development",
        "INTYG_VERIFIER_PUBLIC_BASE_URL": f"http://127.0.0.1:{args.port}",
        "INTYG_VERIFIER_MASTER_KEY": generate_master_key(),
        "INTYG_VERIFIER_DATABASE_URL": url,
        "INTYG_VERIFIER_DATA_DIR": str(scratch),
        "INTYG_VERIFIER_TRUST_LIST_FILE": str(trust_file),
        "INTYG_VERIFIER_DEV_API_CLIENT_SECRET": API_SECRET,
        "INTYG_VERIFIER_STATUS_CACHE_MIN_SECONDS": "300",
        "INTYG_VERIFIER_TRANSACTION_TTL": "3600",
        "INTYG_BENCH_THREADS": str(args.threads),
    }


def _runs(
    args: argparse.Namespace, prepared: Prepared, env: dict[str, str], database: str, url: str
) -> tuple[dict[str, Measured], bool, str]:
    """Every timed run against servers started here, then the correctness check."""
    n, warm = args.verifications, args.warmup
    base, bare_base = f"http://127.0.0.1:{args.port}", f"http://127.0.0.1:{args.bare_port}"
    results: dict[str, Measured] = {}
    verified = 0
    server = _uvicorn("bench.verifier:make_app", args.port, args.workers, env)
    bare = None
    try:
        _wait(base, "/readyz")
        for mode in args.modes:
            bodies = prepared.bodies[mode]
            verified += _closed(args, base, bodies[:warm]).ok
            timed = bodies[warm : warm + n]
            results[mode] = measure(
                f"verifier {mode}", server.pid, database, lambda b=timed: _closed(args, base, b)
            )
            verified += results[mode].outcome.ok
        if not args.no_bare:
            bare = _uvicorn("bench.verifier:make_bare_app", args.bare_port, args.workers, env)
            _wait(bare_base, "/docs")
            _closed(args, bare_base, prepared.bare[:warm])
            results["bare"] = measure(
                "bare: 2 ES256 signature checks",
                bare.pid,
                database,
                lambda: _closed(args, bare_base, prepared.bare[warm : warm + n]),
            )
            _stop(bare)
        if args.open_seconds > 0:
            n_open = int(args.rate * args.open_seconds)
            open_bodies = prepared.bodies[args.open_mode][-n_open:]
            open_requests = load.render("127.0.0.1", args.port, "/response", open_bodies)
            results["open"] = measure(
                f"open loop {args.rate:.0f}/s {args.open_mode}",
                server.pid,
                database,
                lambda: load.open_loop(
                    "127.0.0.1", args.port, open_requests, args.rate, args.open_connections
                ),
            )
            verified += results["open"].outcome.ok
        sample = [
            prepared.transaction_ids[m][warm + i * n // 3] for m in args.modes for i in (1, 2)
        ]
        correct, verdict = check_results(url, base, verified, sample)
    finally:
        _stop(bare)
        _stop(server)
    return results, correct, verdict


def _report(
    args: argparse.Namespace, results: dict[str, Measured], prepared_note: str, verdict: str
) -> None:
    print(prepared_note)
    print(
        f"verifier: uvicorn --workers {args.workers} (uvloop, httptools) x {args.threads} "
        f"threads, PostgreSQL; {os.cpu_count()} CPUs shared by server, database and load "
        f"generator; closed loop: {args.connections} connections ({args.generator})"
    )
    for mode in args.modes:
        print(_line(results[mode]))
    bare = results.get("bare")
    if bare is not None:
        print(_line(bare, verifications=False))
    for mode in args.modes:
        measured = results[mode]
        total = measured.per(measured.server + measured.postgres + measured.outcome.client_cpu)
        text = (
            f"{mode}: total CPU per verification {total:.2f} ms "
            f"-> {2000 / total:.0f}/s on 2 idle cores"
        )
        if bare is not None and bare.outcome.rate:
            text += (
                f"; ratio to bare: {measured.outcome.rate / bare.outcome.rate:.2f} (throughput), "
                f"{bare.per(bare.server) / measured.per(measured.server):.2f} (server CPU)"
            )
        print(text)
    if "open" in results:
        print(_line(results["open"]))
    print(f"correctness: {verdict}")
    best = max(results[mode].outcome.rate for mode in args.modes) if args.modes else 0.0
    targets = (
        f"targets: >= 1500 verifications/s: {'met' if best >= 1500 else 'NOT met'} ({best:.0f}/s)"
    )
    if "open" in results:
        p99 = results["open"].outcome.percentiles[99] * 1000
        targets += (
            f"; p99 < 50 ms at {args.rate:.0f}/s: {'met' if p99 < 50 else 'NOT met'} ({p99:.1f} ms)"
        )
    print(targets)


def main() -> None:
    args = _arguments()
    n, warm = args.verifications, args.warmup
    n_open = int(args.rate * args.open_seconds)
    # The bare endpoint takes the plain forms of direct_post.jwt presentations.
    closed = set(args.modes) | (set() if args.no_bare else {"direct_post.jwt"})
    counts = {
        mode: (warm + n if mode in closed else 0) + (n_open if mode == args.open_mode else 0)
        for mode in MODES
    }
    name, url = create_database(args.postgres)
    status_server = StatusServer()
    pki = Pki()  # test CAs for AF and MYH, both in the trust list
    status_uri = status_server.publish(
        "bench-af", status.StatusList.create(64, bits=2), pki.af, ttl=3600
    )
    scratch = tempfile.TemporaryDirectory(prefix="intyg-bench-verifier-")
    try:
        env = _environment(args, url, Path(scratch.name), pki)
        os.environ.update(env)
        started = time.perf_counter()
        prepared = prepare(VerifierSettings(), counts, status_uri, pki.af)
        note = (
            f"prepared {sum(counts.values())} transactions + presentations in "
            f"{time.perf_counter() - started:.1f} s (not timed)"
        )
        env["INTYG_BENCH_ISSUER_JWK"] = json.dumps(prepared.issuer_jwk)
        results, correct, verdict = _runs(args, prepared, env, name, url)
    finally:
        status_server.close()
        drop_database(args.postgres, name)
        scratch.cleanup()
    _report(args, results, note, verdict)
    if not correct:
        sys.exit(1)


if __name__ == "__main__":
    main()
