"""Verifier throughput: OpenID4VP ``direct_post`` verifications per second over HTTP on loopback.

A verification is one wallet response to ``POST /response`` that the verifier checks in
full (locate the transaction by ``state`` or JWE ``kid``, decrypt, consume the nonce once,
trust list + x5c chain, issuer signature, disclosures, validity, KB-JWT, requested claims,
status list (cached), schema) and records (result, sealed claims, audit) in PostgreSQL.

Everything a wallet would do is done **before** the timed section: N transactions are
created with :func:`verifier.transactions.create_transaction` (as the employer API does),
N registration certificates are issued with :func:`intyg.sdjwt_vc.issue_vc` by a test CA that
is in the trust list, and each gets a KB-JWT with its transaction's ``nonce`` and the full
``client_id``; the forms are encoded for ``direct_post`` and ``direct_post.jwt`` (ECDH-ES,
A256GCM to the transaction's key). Then:

1. closed loop: C concurrent connections (asyncio + httpx) fire the responses as fast as the
   verifier answers, for each response mode;
2. the same presentations against a **bare** FastAPI endpoint that does only the two
   signature checks (issuer JWT ES256 + KB-JWT ES256) — the floor of any verifier;
3. open loop at a fixed rate (default 1,000/s): requests start on schedule whether or not
   earlier ones finished, latency counted from the scheduled start (no coordinated omission).

A fresh PostgreSQL database is created for the run and dropped afterwards.

    .venv/bin/python bench/verifier.py --verifications 3000 --connections 64 --workers 2

Targets (issue 5): >= 1,500 verifications/s; p99 < 50 ms at 1,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.issuer import (  # noqa: E402
    create_database,
    drop_database,
    percentile,
    server_cpu,
)
from intyg import jose, jwe, sdjwt, status  # noqa: E402
from intyg.web import db  # noqa: E402
from intyg.web.crypto_store import generate_master_key  # noqa: E402
from tests.verifier.helpers import (  # noqa: E402
    REGISTRATION_DISCLOSE,
    Pki,
    StatusServer,
    issue,
    registration_payload,
)
from verifier import templates, transactions  # noqa: E402
from verifier.app import build_context, create_app, startup  # noqa: E402
from verifier.employers import DEV_EMPLOYER  # noqa: E402
from verifier.models import Employer  # noqa: E402
from verifier.settings import VerifierSettings  # noqa: E402

if "sniffio" not in sys.modules:
    try:
        import sniffio  # noqa: F401
    except ImportError:  # see bench/issuer.py: a failed import per request is costly
        _stub = types.ModuleType("sniffio")
        _stub.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
        sys.modules["sniffio"] = _stub

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# -- the two servers (uvicorn factories) -----------------------------------------------------------


def make_app():  # type: ignore[no-untyped-def]
    """The verifier, settings from ``INTYG_VERIFIER_*`` (set by :func:`main`); no background
    tasks (the purge and webhook loops are not part of a verification)."""
    app = create_app(VerifierSettings(), background_tasks=())
    threads = int(os.environ.get("INTYG_BENCH_THREADS", "0"))
    if threads:
        # The endpoints run in anyio's thread pool (40 threads by default); more threads than
        # database connections (pool 10 + overflow 10) means waiting for, and churning,
        # connections. Cap the pool at ``--threads``.
        import contextlib

        import anyio.to_thread

        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(app):  # type: ignore[no-untyped-def]
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
            async with inner(app) as state:
                yield state

        app.router.lifespan_context = lifespan
    return app


def make_bare_app():  # type: ignore[no-untyped-def]
    """Only the two signature checks on the same ``direct_post`` form: the issuer JWT with
    the issuer's key, the KB-JWT with the key in the issuer JWT's ``cnf``."""
    issuer_key = jose.key_from_jwk(json.loads(os.environ["INTYG_BENCH_ISSUER_JWK"]))
    app = FastAPI()

    @app.post("/response")
    async def bare(request: Request) -> JSONResponse:
        form = await request.form()
        presentation = json.loads(str(form["vp_token"]))["registration"][0]
        parts = presentation.split("~")
        issuer_jws = jose.parse_jws(parts[0])
        jose.verify_signature(issuer_jws, issuer_key)
        holder = jose.key_from_jwk(issuer_jws.claims()["cnf"]["jwk"])
        jose.verify_signature(jose.parse_jws(parts[-1]), holder)
        return JSONResponse({})

    return app


# -- preparation (not timed) -----------------------------------------------------------------------


@dataclass
class Prepared:
    direct_post: list[bytes]  # form bodies, one transaction each
    direct_post_jwt: list[bytes]
    bare: list[bytes]  # plain forms of the same presentations (for the bare endpoint)
    issuer_jwk: dict[str, Any]


def prepare(settings: VerifierSettings, counts: dict[str, int], status_uri: str, af) -> Prepared:
    """Transactions, credentials and encoded responses for every run."""
    ctx = build_context(settings)
    startup(ctx)
    with db.session(ctx.engine, write=False) as unit:
        employer = unit.scalars(
            sa.select(Employer).where(Employer.org_number == DEV_EMPLOYER[1])
        ).one()
    forms: dict[str, list[bytes]] = {"direct_post": [], "direct_post.jwt": [], "bare": []}
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
            claims = jose.parse_jws(transactions.request_object(ctx, transaction.id)).claims()
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
            plain = urlencode({"vp_token": json.dumps(vp_token), "state": claims["state"]})
            forms["bare"].append(plain.encode("ascii"))
            if mode == "direct_post":
                forms["direct_post"].append(plain.encode("ascii"))
            else:
                jwk = claims["client_metadata"]["jwks"]["keys"][0]
                response = jwe.encrypt(
                    {"vp_token": vp_token, "state": claims["state"]}, jwk, enc="A256GCM"
                )
                forms["direct_post.jwt"].append(urlencode({"response": response}).encode())
    ctx.engine.dispose()
    return Prepared(
        forms["direct_post"], forms["direct_post.jwt"], forms["bare"], af.key.public_jwk()
    )


# -- load generators -------------------------------------------------------------------------------


@dataclass
class Outcome:
    latencies: list[float]
    errors: list[str]
    elapsed: float


async def _post(client: httpx.AsyncClient, body: bytes) -> str | None:
    response = await client.post("/response", content=body, headers=FORM)
    if response.status_code != 200:
        return f"{response.status_code} {response.text[:160]}"
    return None


async def closed_loop(base: str, bodies: list[bytes], connections: int) -> Outcome:
    """``connections`` clients, each sending the next body as soon as its last one returned."""
    queue = list(reversed(bodies))
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(base_url=base, timeout=60, limits=limits) for _ in range(connections)
    ]

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            body = queue.pop()
            started = time.perf_counter()
            try:
                error = await _post(client, body)
            except httpx.HTTPError as exc:
                error = repr(exc)
            if error:
                errors.append(error)
            else:
                latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in clients))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return Outcome(latencies, errors, elapsed)


async def open_loop(base: str, bodies: list[bytes], rate: float, connections: int) -> Outcome:
    """Request i starts at ``t0 + i / rate``; latency counts from that scheduled time."""
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
    clients = [
        httpx.AsyncClient(base_url=base, timeout=60, limits=limits) for _ in range(connections)
    ]
    for client in clients:
        pool.put_nowait(client)

    async def one(body: bytes, scheduled: float) -> None:
        client = await pool.get()
        try:
            error = await _post(client, body)
        except httpx.HTTPError as exc:
            error = repr(exc)
        finally:
            pool.put_nowait(client)
        if error:
            errors.append(error)
        else:
            latencies.append(time.perf_counter() - scheduled)

    tasks = []
    try:
        started = time.perf_counter()
        for index, body in enumerate(bodies):
            scheduled = started + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return Outcome(latencies, errors, elapsed)


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


def _wait(base: str, path: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} did not become ready")


def _line(label: str, outcome: Outcome, cpu: dict[str, float] | None = None) -> str:
    done = len(outcome.latencies)
    rate = done / outcome.elapsed if outcome.elapsed else 0.0
    text = (
        f"{label:<34} {done:>6} ok in {outcome.elapsed:6.2f} s = {rate:8.1f}/s   "
        f"p50 {percentile(outcome.latencies, 50) * 1000:7.1f} ms   "
        f"p99 {percentile(outcome.latencies, 99) * 1000:7.1f} ms   "
        f"errors {len(outcome.errors)}"
    )
    if outcome.errors:
        text += f" (first: {outcome.errors[0]})"
    if cpu and done:
        text += (
            f"\n{'':<34} CPU per verification: uvicorn {cpu['uvicorn'] * 1000 / done:.2f} ms, "
            f"PostgreSQL {cpu['postgres'] * 1000 / done:.2f} ms"
        )
    return text


def _rate(outcome: Outcome) -> float:
    return len(outcome.latencies) / outcome.elapsed if outcome.elapsed else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "INTYG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--verifications", type=int, default=3000, help="per closed-loop run")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop requests/s")
    parser.add_argument("--open-seconds", type=float, default=5.0)
    parser.add_argument("--open-mode", default="direct_post.jwt")
    parser.add_argument("--threads", type=int, default=10, help="worker threads per process")
    parser.add_argument("--port", type=int, default=8775)
    parser.add_argument("--bare-port", type=int, default=8776)
    args = parser.parse_args()

    n, warm = args.verifications, args.warmup
    n_open = int(args.rate * args.open_seconds)
    counts = {
        "direct_post": warm + n + (n_open if args.open_mode == "direct_post" else 0),
        "direct_post.jwt": warm + n + (n_open if args.open_mode == "direct_post.jwt" else 0),
    }
    name, url = create_database(args.postgres)
    base, bare_base = f"http://127.0.0.1:{args.port}", f"http://127.0.0.1:{args.bare_port}"
    status_server = StatusServer()
    pki = Pki()  # test CAs for AF and MYH, both in the trust list
    af = pki.af
    status_uri = status_server.publish(
        "bench-af", status.StatusList.create(64, bits=2), af, ttl=3600
    )
    scratch = tempfile.TemporaryDirectory(prefix="intyg-bench-verifier-")
    trust_file = Path(scratch.name) / "trust.json"
    trust_file.write_text(json.dumps(pki.trust_list()), encoding="utf-8")
    env = {
        **os.environ,
        "INTYG_VERIFIER_ENVIRONMENT": "development",
        "INTYG_VERIFIER_PUBLIC_BASE_URL": base,
        "INTYG_VERIFIER_MASTER_KEY": generate_master_key(),
        "INTYG_VERIFIER_DATABASE_URL": url,
        "INTYG_VERIFIER_DATA_DIR": scratch.name,
        "INTYG_VERIFIER_TRUST_LIST_FILE": str(trust_file),
        "INTYG_VERIFIER_DEV_API_CLIENT_SECRET": "bench-secret",
        "INTYG_VERIFIER_STATUS_CACHE_MIN_SECONDS": "300",
        "INTYG_VERIFIER_TRANSACTION_TTL": "3600",
        "INTYG_BENCH_THREADS": str(args.threads),
    }
    server = bare = None
    results: dict[str, Outcome] = {}
    cpu: dict[str, dict[str, float]] = {}
    try:
        os.environ.update(env)
        started = time.perf_counter()
        prepared = prepare(VerifierSettings(), counts, status_uri, af)
        prepare_seconds = time.perf_counter() - started
        env["INTYG_BENCH_ISSUER_JWK"] = json.dumps(prepared.issuer_jwk)
        server = _uvicorn("bench.verifier:make_app", args.port, args.workers, env)
        bare = _uvicorn("bench.verifier:make_bare_app", args.bare_port, args.workers, env)
        _wait(base, "/readyz")
        _wait(bare_base, "/docs")
        for label, bodies in (
            ("direct_post", prepared.direct_post),
            ("direct_post.jwt", prepared.direct_post_jwt),
        ):
            asyncio.run(closed_loop(base, bodies[:warm], args.connections))
            before = server_cpu(server.pid, name)
            results[label] = asyncio.run(
                closed_loop(base, bodies[warm : warm + n], args.connections)
            )
            after = server_cpu(server.pid, name)
            cpu[label] = {k: after[k] - before[k] for k in after}
        asyncio.run(closed_loop(bare_base, prepared.bare[:warm], args.connections))
        results["bare"] = asyncio.run(
            closed_loop(bare_base, prepared.bare[warm : warm + n], args.connections)
        )
        _stop(bare)
        bare = None
        open_bodies = (
            prepared.direct_post if args.open_mode == "direct_post" else prepared.direct_post_jwt
        )[warm + n :]
        results["open"] = asyncio.run(
            open_loop(base, open_bodies, args.rate, max(args.connections, 256))
        )
    finally:
        _stop(bare)
        _stop(server)
        status_server.close()
        drop_database(args.postgres, name)
        scratch.cleanup()

    print(
        f"prepared {sum(counts.values())} transactions + presentations in "
        f"{prepare_seconds:.1f} s (not timed)"
    )
    print(
        f"verifier: uvicorn --workers {args.workers} x {args.threads} threads, PostgreSQL, "
        f"{os.cpu_count()} CPUs, "
        f"{args.connections} concurrent connections (asyncio + httpx, same machine)"
    )
    print(_line("verifier direct_post", results["direct_post"], cpu["direct_post"]))
    print(_line("verifier direct_post.jwt", results["direct_post.jwt"], cpu["direct_post.jwt"]))
    print(_line("bare: 2 ES256 signature checks", results["bare"]))
    bare_rate = _rate(results["bare"])
    for label in ("direct_post", "direct_post.jwt"):
        ratio = _rate(results[label]) / bare_rate if bare_rate else float("nan")
        print(f"ratio verifier {label} / bare: {ratio:.2f}")
    print(_line(f"open loop {args.rate:.0f}/s ({args.open_mode})", results["open"]))
    open_p99 = percentile(results["open"].latencies, 99) * 1000
    best = max(_rate(results["direct_post"]), _rate(results["direct_post.jwt"]))
    print(
        f"targets: >= 1500 verifications/s: {'met' if best >= 1500 else 'NOT met'} "
        f"({best:.0f}/s); p99 < 50 ms at {args.rate:.0f}/s: "
        f"{'met' if open_p99 < 50 else 'NOT met'} ({open_p99:.1f} ms)"
    )


if __name__ == "__main__":
    main()
