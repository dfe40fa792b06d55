"""The verifier application: ``create_app(settings)`` wires state, start-up and routers.

Start-up (FastAPI lifespan, so every replica does it): migrate the database, load or
generate the request-signing key, create the development employer when configured, purge
disclosed claims past their retention, then start the background tasks.

Feature modules add an ``APIRouter`` listed in :data:`ROUTERS` as ``"module:attribute"``
(the employer pages go here: ``"verifier.pages:router"``) and a background coroutine
``async def task(ctx)`` listed in :data:`BACKGROUND_TASKS` (the webhook sender goes here:
``"verifier.webhooks:sender_loop"``); they reach the shared state through
:func:`get_context`. Listing by name lets those modules import this one without a cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.engine import Engine

from intyg.fetch import Fetch, deferrable
from intyg.web import fastlane
from intyg.web.bodies import BodyLimitMiddleware
from intyg.web.crypto_store import CryptoStore
from intyg.web.db import install_database_error_handlers
from intyg.web.errors import install_error_handlers
from intyg.web.operations import ReadinessCheck, configure_process, database_check, tune_collector
from intyg.web.operations import install as install_operations
from intyg.web.outbound import OutboundClient

from . import employers, retention
from .db import make_engine, migrate
from .keys import VerifierKeys
from .pipeline import Pipeline
from .settings import VerifierSettings
from .status import StatusChecker
from .trust import TrustList, dev_trust_list, load_trust_list

__all__ = [
    "BACKGROUND_TASKS",
    "ROUTERS",
    "Context",
    "VerifierContext",
    "build_context",
    "create_app",
    "get_context",
    "published",
    "startup",
    "system_clock",
]

#: Routers create_app includes, in order. The employer pages will be appended here.
ROUTERS: tuple[str, ...] = (
    "verifier.app:published",
    "verifier.oid4vp:router",
    "verifier.api:router",
    "verifier.pages:router",
)
#: Background coroutines ``async def task(ctx)`` run for the app's lifetime. The webhook
#: sender will be appended here.
BACKGROUND_TASKS: tuple[str, ...] = (
    "verifier.retention:purge_loop",
    "verifier.webhooks:sender_loop",
)


def system_clock() -> int:
    """Integer Unix seconds: the one clock of the verifier (tests inject their own)."""
    return int(time.time())


@dataclass
class VerifierContext:
    """Everything a request handler needs; ``app.state.verifier``."""

    settings: VerifierSettings
    engine: Engine
    store: CryptoStore
    keys: VerifierKeys
    trust: TrustList
    status_checker: StatusChecker
    pipeline: Pipeline
    clock: Callable[[], int]
    fetch: Fetch
    ready: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


async def get_context(request: Request) -> VerifierContext:
    """FastAPI dependency: the verifier's shared state (``async``: FastAPI would run a plain
    function in its thread pool, one thread hop per request for a dictionary lookup)."""
    return request.app.state.verifier  # type: ignore[no-any-return]


Context = Annotated[VerifierContext, Depends(get_context)]


def _trust_list(settings: VerifierSettings) -> TrustList:
    if settings.trust_list_file is not None:
        return load_trust_list(settings.trust_list_file)
    return dev_trust_list(settings.dev_trust_anchor_dir or settings.data_dir / "trust")


def build_context(
    settings: VerifierSettings,
    *,
    clock: Callable[[], int] = system_clock,
    engine: Engine | None = None,
    fetch: Fetch | None = None,
    trust: TrustList | None = None,
) -> VerifierContext:
    """The shared state; ``fetch`` replaces the guarded client (tests), ``trust`` the file."""
    engine = engine or make_engine(settings)
    store = settings.crypto_store()
    if fetch is None:
        client = OutboundClient(
            settings.outbound_policy(
                total_timeout=settings.outbound_total_timeout,
                max_response_bytes=settings.outbound_max_response_bytes,
            )
        )
        fetch = client.fetch
    fetch = deferrable(fetch)  # the response endpoint tries the pipeline on the event loop
    trust = (trust or _trust_list(settings)).with_fetch(fetch)
    checker = StatusChecker(
        trust,
        fetch,
        clock,
        min_cache_seconds=settings.status_cache_min_seconds,
        max_cache_seconds=settings.status_cache_max_seconds,
        leeway=settings.clock_skew_seconds,
    )
    return VerifierContext(
        settings=settings,
        engine=engine,
        store=store,
        keys=VerifierKeys(engine, settings, store, clock),
        trust=trust,
        status_checker=checker,
        pipeline=Pipeline(
            trust,
            checker,
            clock,
            leeway=settings.clock_skew_seconds,
            kb_max_age=settings.kb_max_age_seconds,
        ),
        clock=clock,
        fetch=fetch,
    )


def startup(ctx: VerifierContext) -> None:
    """Migrate, keys, development employer, a first purge."""
    migrate(ctx.engine)
    ctx.keys.ensure()
    ctx.keys.signer()
    if ctx.settings.dev_api_client_secret is not None:
        employers.ensure_dev_employer(ctx)
    retention.purge(ctx)
    ctx.ready = True


def _load(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def create_app(
    settings: VerifierSettings,
    *,
    clock: Callable[[], int] = system_clock,
    engine: Engine | None = None,
    fetch: Fetch | None = None,
    trust: TrustList | None = None,
    routers: Sequence[str] = ROUTERS,
    background_tasks: Sequence[str] = BACKGROUND_TASKS,
) -> FastAPI:
    """The verifier FastAPI app for ``settings``."""
    ctx = build_context(settings, clock=clock, engine=engine, fetch=fetch, trust=trust)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        startup(ctx)
        tasks = [asyncio.create_task(_load(spec)(ctx)) for spec in background_tasks]
        try:
            yield
        finally:
            ctx.ready = False
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if engine is None:
                ctx.engine.dispose()

    app = FastAPI(
        title="intyg verifier",
        lifespan=lifespan,
        docs_url=None,  # /docs and /openapi.json: intyg.web.operations
        redoc_url=None,
        openapi_url=None,
    )
    app.state.verifier = ctx
    install_error_handlers(app)
    install_database_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    for spec in routers:
        router = _load(spec)
        if not isinstance(router, APIRouter):
            raise TypeError(f"{spec} is not an APIRouter")
        app.include_router(router)
    fastlane.install(app)
    install_operations(app, checks=readiness_checks(ctx), development=settings.is_development)
    return app


def readiness_checks(ctx: VerifierContext) -> list[ReadinessCheck]:
    """``/readyz``: start-up finished, the database answers, the request-signing key opens."""
    return [
        ReadinessCheck("started", lambda: ctx.ready, "the verifier is starting"),
        database_check(ctx.engine),
        ReadinessCheck("keys", ctx.keys.signer, "the request-signing key is not loaded"),
    ]


# -- published endpoints -------------------------------------------------------------------

published = APIRouter()


@published.get("/.well-known/did.json")
def did_document(ctx: Context) -> JSONResponse:
    """The ``did:web`` document (client identifier prefix ``decentralized_identifier``)."""
    if ctx.settings.client_id_prefix != "decentralized_identifier":
        raise HTTPException(404)
    return JSONResponse(ctx.keys.did_document(), media_type="application/did+json")


@published.get("/dev/trust-anchor.pem", include_in_schema=False)
def dev_trust_anchor(ctx: Context) -> PlainTextResponse:
    """Development: the verifier's dev CA, for wallets to validate request objects."""
    pem = ctx.keys.trust_anchor_pem() if ctx.settings.is_development else None
    if pem is None:
        raise HTTPException(404)
    return PlainTextResponse(pem, media_type="application/x-pem-file")


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``uvicorn verifier.app:create_app_from_env --factory``): settings from the
    environment (``INTYG_VERIFIER_*``), as ``intyg up`` and docker-compose start the service;
    logging from ``INTYG_LOG_*`` (intyg.web.operations)."""
    settings = VerifierSettings()
    configure_process("verifier", development=settings.is_development)
    app = create_app(settings)
    tune_collector()
    return app
