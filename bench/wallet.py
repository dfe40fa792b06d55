"""Wallet list page: server time of ``GET /`` for a person with 1,000 credentials.

Issue 4 "Must show": a listing of 1,000 credentials of one person renders in < 50 ms server
time. The request is handled in-process by the wallet's ASGI app (routing, the session
cookie, the authorization dependency, the list query, the template, the response) — no
network or client in the figure. Another person's 1,000 credentials are in the table too,
so the index has to do its work. Runs on SQLite (a file) and on PostgreSQL (a fresh schema,
dropped afterwards; skipped with ``--no-postgres``).

    .venv/bin/python bench/wallet.py --runs 200

Prints median / p95 / max of the request and of the list query alone, per backend.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.responses import Response

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intyg.web import db  # noqa: E402
from intyg.web.crypto_store import generate_master_key  # noqa: E402
from wallet import credentials  # noqa: E402
from wallet.accounts import account_for, account_keyer, page_sessions  # noqa: E402
from wallet.app import WalletContext, create_app, startup  # noqa: E402
from wallet.issuance import card_names  # noqa: E402
from wallet.models import WalletCredential  # noqa: E402
from wallet.settings import WalletSettings  # noqa: E402

CARDS = 1000
TARGET_MS = 50.0
ISSUERS = (
    (
        "https://af.intyg.example",
        {"sv": {"name": "Arbetsförmedlingen"}, "en": {"name": "Public Employment Service"}},
        "https://intyg.example/vct/af-inskrivningsintyg/1",
        {
            "sv": {"name": "Inskrivningsintyg", "description": "Inskriven som arbetssökande"},
            "en": {"name": "Registration certificate", "description": "Registered jobseeker"},
        },
    ),
    (
        "https://myh.intyg.example",
        {
            "sv": {"name": "Myndigheten för yrkeshögskolan"},
            "en": {"name": "Swedish National Agency for Higher Vocational Education"},
        },
        "https://intyg.example/vct/myh-kvalifikation/1",
        {
            "sv": {"name": "Kvalifikationsintyg", "description": "En kvalifikation i SeQF"},
            "en": {"name": "Qualification attestation", "description": "A SeQF qualification"},
        },
    ),
)


def fill(ctx: WalletContext, account_id: int, count: int) -> None:
    now = ctx.clock()
    rows = []
    for index in range(count):
        issuer, issuer_display, vct, display = ISSUERS[index % 2]
        fmt = "dc+sd-jwt" if index % 3 else "jwt_vc_json"
        rows.append(
            WalletCredential(
                account_id=account_id,
                format=fmt,
                vct=vct,
                configuration_id="RegistrationCertificate_dc+sd-jwt",
                credential_issuer=issuer,
                issuer_display=issuer_display,
                display=display,
                **card_names(display, issuer_display, fmt, issuer),
                received_at=now - index * 60,
                expires_at=now + 365 * 86400 if index % 7 else now - 1,
                status="valid" if index % 11 else "revoked",
                instance_count=3,
            )
        )
    with db.session(ctx.engine) as unit:
        unit.add_all(rows)


def cookie_for(ctx: WalletContext, person: str) -> tuple[int, str]:
    """An account for a synthetic personal number and a session cookie for it."""
    key = account_keyer(ctx)(person)
    account_id = account_for(ctx, key)
    response = Response()
    page_sessions(ctx).issue(
        response,
        key,
        {"account": account_id, "name": "Bench", "masked": "19xxxx-xxxx"},
        now=ctx.clock(),
    )
    cookie = response.headers["set-cookie"].split(";", 1)[0]
    return account_id, cookie


async def request_once(app: Any, cookie: str) -> tuple[int, int, float, float]:
    """One ``GET /`` through the ASGI app; status, body bytes, wall seconds, CPU seconds
    (the process's: the machine may be shared, CPU time is what the request costs)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8200"), (b"cookie", cookie.encode("latin-1"))],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8200),
        "state": {},
    }
    status = 0
    size = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    started, cpu = time.perf_counter(), time.process_time()
    await app(scope, receive, send)
    return status, size, time.perf_counter() - started, time.process_time() - cpu


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"median {statistics.median(ms):6.2f} ms  p95 {p95:6.2f} ms  max {ms[-1]:6.2f} ms"


def measure(name: str, url: str, runs: int, data_dir: Path) -> tuple[float, float]:
    settings = WalletSettings(
        environment="development",
        public_base_url="http://127.0.0.1:8200",
        master_key=generate_master_key(),
        database_url=url,
        data_dir=data_dir,
    )
    engine = db.create_engine(url)
    try:
        app = create_app(settings, engine=engine)
        ctx: WalletContext = app.state.wallet
        startup(ctx)
        person, cookie = cookie_for(ctx, "198112189884")
        other, _ = cookie_for(ctx, "198503152376")
        fill(ctx, other, CARDS)
        fill(ctx, person, CARDS)

        async def run() -> list[tuple[int, int, float, float]]:
            status, size, _, _ = await request_once(app, cookie)
            assert status == 200 and size > 100_000, (status, size)
            for _ in range(20):  # warm up: templates, statement cache, connection pool
                await request_once(app, cookie)
            return [await request_once(app, cookie) for _ in range(runs)]

        results = asyncio.run(run())
        pages = [r[2] for r in results]
        cpu = [r[3] for r in results]
        queries = []
        for _ in range(runs):
            started = time.perf_counter()
            items = credentials.list_credentials(ctx, person)
            queries.append(time.perf_counter() - started)
        assert len(items) == CARDS
        print(f"{name:10s} GET / (1,000 cards)   {summary(pages)}")
        print(f"{name:10s} GET / CPU time         {summary(cpu)}")
        print(f"{name:10s} list query alone       {summary(queries)}")
        return statistics.median(pages) * 1000, statistics.median(cpu) * 1000
    finally:
        engine.dispose()


@contextmanager
def postgres_schema(admin_url: str) -> Iterator[str]:
    schema = f"intyg_wallet_bench_{secrets.token_hex(4)}"
    admin = db.create_engine(admin_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in admin_url else "?"
    try:
        yield f"{admin_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "INTYG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite"] = measure(
            "SQLite", f"sqlite:///{Path(tmp) / 'wallet.sqlite3'}", args.runs, Path(tmp)
        )
        if not args.no_postgres:
            with postgres_schema(args.postgres) as url:
                results["PostgreSQL"] = measure("PostgreSQL", url, args.runs, Path(tmp))
    for name, (wall, cpu) in results.items():
        verdict = "OK" if wall < TARGET_MS else "OVER"
        print(
            f"{name}: median {wall:.1f} ms wall, {cpu:.1f} ms CPU -> {verdict} "
            f"(target < {TARGET_MS:.0f} ms; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs)"
        )


if __name__ == "__main__":
    main()
