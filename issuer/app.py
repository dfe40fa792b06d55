"""The issuer application: ``create_app(settings)`` wires state, start-up and routers.

Start-up (FastAPI lifespan, so every replica does it): migrate the database, load or
generate the signing keys, make sure the status lists exist, load the person-lookup key
and, in development with ``dev_sample_data``, the sample catalogue and records.

Feature modules (OpenID4VCI, back office, pages) add an ``APIRouter`` and are listed in
:data:`ROUTERS` as ``"module:attribute"``; they reach the shared state through the
:func:`get_context` dependency. Listing by name lets those modules import this one without
an import cycle.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from intyg.web import db as web_db
from intyg.web import fastlane
from intyg.web.bodies import BodyLimitMiddleware
from intyg.web.crypto_store import CryptoStore
from intyg.web.db import install_database_error_handlers
from intyg.web.errors import ServiceUnavailable, install_error_handlers
from intyg.web.operations import ReadinessCheck, configure_process, database_check, tune_collector
from intyg.web.operations import install as install_operations

from . import agencies, records
from . import status as issuer_status
from .db import make_engine, migrate
from .keys import KeyRing
from .settings import IssuerSettings

__all__ = [
    "ROUTERS",
    "IssuerContext",
    "create_app",
    "get_context",
    "hot_threads",
    "published",
    "startup",
    "system_clock",
]

#: Routers create_app includes, in order. Feature modules are appended here.
ROUTERS: tuple[str, ...] = (
    "issuer.oid4vci:router",  # first: routes are matched in order, these carry the load
    "issuer.app:published",
    "issuer.backoffice:router",
    "issuer.pages:router",
)
JWKS_MEDIA_TYPE = "application/jwk-set+json"
#: Key documents change only on rotation; old keys stay published long after.
KEY_DOCUMENT_MAX_AGE = 60


def system_clock() -> int:
    """Integer Unix seconds: the one clock of the issuer (tests inject their own)."""
    return int(time.time())


@dataclass
class IssuerContext:
    """Everything a request handler needs; ``app.state.issuer``."""

    settings: IssuerSettings
    agency: agencies.Agency
    engine: Engine
    store: CryptoStore
    keys: KeyRing
    publisher: issuer_status.StatusPublisher
    clock: Callable[[], int]
    vault: records.PersonVault | None = None
    ready: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def person_vault(self) -> records.PersonVault:
        if self.vault is None:
            raise ServiceUnavailable("the issuer is starting")
        return self.vault


async def get_context(request: Request) -> IssuerContext:
    """FastAPI dependency: the issuer's shared state (``async``: no threadpool hop)."""
    return request.app.state.issuer  # type: ignore[no-any-return]


Context = Annotated[IssuerContext, Depends(get_context)]


def build_context(
    settings: IssuerSettings,
    *,
    clock: Callable[[], int] = system_clock,
    engine: Engine | None = None,
) -> IssuerContext:
    engine = engine or make_engine(settings)
    store = settings.crypto_store()
    keys = KeyRing(engine, settings, store, clock)
    return IssuerContext(
        settings=settings,
        agency=agencies.agency(settings.agency),
        engine=engine,
        store=store,
        keys=keys,
        publisher=issuer_status.StatusPublisher(engine, settings, keys, clock),
        clock=clock,
    )


def startup(ctx: IssuerContext) -> None:
    """Migrate, keys, status lists, person lookup key, development sample data."""
    migrate(ctx.engine)
    ctx.keys.ensure()
    now = ctx.clock()
    with web_db.session(ctx.engine) as unit:
        issuer_status.ensure_lists(unit, ctx.settings, now)
        ctx.vault = records.PersonVault(ctx.store, records.load_lookup_secret(unit, ctx.store, now))
    if ctx.settings.dev_sample_data:
        with web_db.session(ctx.engine) as unit:
            records.load_sample_data(unit, ctx.vault, ctx.settings.agency, now)
    ctx.ready = True


def _limit_request_threads(engine: Engine) -> None:
    """One worker thread for sync endpoints per pooled database connection (anyio's default
    is 40): more threads only queue for connections and, past the pool's overflow, open and
    close a database connection per request, which costs more than the request."""
    size = getattr(engine.pool, "size", None)
    if callable(size):
        anyio.to_thread.current_default_thread_limiter().total_tokens = max(size(), 8)


def hot_threads(ctx: IssuerContext) -> ThreadPoolExecutor:
    """The threads the fast-lane endpoints (``/token``, ``/credential``) run on: one per
    pooled database connection, like anyio's for the other sync endpoints, handed work
    directly (a plain executor costs a fraction of ``anyio.to_thread.run_sync`` per call)."""
    executor = ctx.extras.get("hot_threads")
    if executor is None:
        size = getattr(ctx.engine.pool, "size", None)
        workers = max(size() if callable(size) else 0, 8)
        executor = ctx.extras["hot_threads"] = ThreadPoolExecutor(
            workers, thread_name_prefix="issuer-hot"
        )
    return executor  # type: ignore[no-any-return]


def _include(app: FastAPI, specs: Sequence[str]) -> None:
    for spec in specs:
        module_name, _, attribute = spec.partition(":")
        router = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(router, APIRouter):
            raise TypeError(f"{spec} is not an APIRouter")
        app.include_router(router)


def create_app(
    settings: IssuerSettings,
    *,
    clock: Callable[[], int] = system_clock,
    engine: Engine | None = None,
    routers: Sequence[str] = ROUTERS,
) -> FastAPI:
    """The issuer FastAPI app for ``settings`` (one agency)."""
    ctx = build_context(settings, clock=clock, engine=engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _limit_request_threads(ctx.engine)
        startup(ctx)
        try:
            yield
        finally:
            ctx.ready = False
            executor = ctx.extras.pop("hot_threads", None)
            if executor is not None:
                executor.shutdown(wait=False)
            if engine is None:
                ctx.engine.dispose()

    app = FastAPI(
        title=f"intyg issuer: {ctx.agency.name['en']}",
        lifespan=lifespan,
        docs_url=None,  # /docs and /openapi.json: intyg.web.operations
        redoc_url=None,
        openapi_url=None,
    )
    app.state.issuer = ctx
    install_error_handlers(app)
    install_database_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    _include(app, routers)
    fastlane.install(app)  # /token and /credential (issuer/oid4vci.py)
    install_operations(app, checks=readiness_checks(ctx), development=settings.is_development)
    return app


def readiness_checks(ctx: IssuerContext) -> list[ReadinessCheck]:
    """``/readyz``: start-up finished, the database answers, the signing key opens."""
    return [
        ReadinessCheck("started", lambda: ctx.ready, "the issuer is starting"),
        database_check(ctx.engine),
        ReadinessCheck("keys", ctx.keys.active, "the signing key is not loaded"),
    ]


# -- published endpoints -------------------------------------------------------------------

published = APIRouter()


def _cached(max_age: int) -> dict[str, str]:
    return {"Cache-Control": f"public, max-age={max_age}"}


@published.get("/jwks.json")
def jwks(ctx: Context) -> JSONResponse:
    """The issuer's public signing keys (RFC 7517 §5), old keys until retired."""
    return JSONResponse(
        ctx.keys.jwks(), media_type=JWKS_MEDIA_TYPE, headers=_cached(KEY_DOCUMENT_MAX_AGE)
    )


def _jwt_vc_issuer(ctx: IssuerContext, suffix: str) -> JSONResponse:
    # SD-JWT VC §5: the well-known segment goes between host and the identifier's path.
    if suffix != urlsplit(ctx.settings.issuer_identifier).path.rstrip("/"):
        raise HTTPException(404)
    return JSONResponse(ctx.keys.jwt_vc_issuer_metadata(), headers=_cached(KEY_DOCUMENT_MAX_AGE))


@published.get("/.well-known/jwt-vc-issuer")
def jwt_vc_issuer(ctx: Context) -> JSONResponse:
    """JWT VC Issuer Metadata (SD-JWT VC draft -18 §5) for an identifier without a path."""
    return _jwt_vc_issuer(ctx, "")


@published.get("/.well-known/jwt-vc-issuer/{suffix:path}")
def jwt_vc_issuer_with_path(suffix: str, ctx: Context) -> JSONResponse:
    """The same for an identifier with a path (``/.well-known/jwt-vc-issuer/<path>``)."""
    return _jwt_vc_issuer(ctx, "/" + suffix)


def _serve(published_list: issuer_status.Published) -> Response:
    return Response(
        published_list.body,
        media_type=published_list.media_type,
        headers=_cached(published_list.max_age),
    )


@published.get("/statuslists/{list_id}")
def status_list_token(list_id: int, ctx: Context) -> Response:
    """IETF Token Status List token (``application/statuslist+jwt``)."""
    try:
        return _serve(ctx.publisher.token(list_id))
    except LookupError:
        raise HTTPException(404) from None


@published.get("/status/{list_id}")
def bitstring_status_list(list_id: int, ctx: Context) -> Response:
    """W3C BitstringStatusListCredential secured as ``vc+jwt``."""
    try:
        return _serve(ctx.publisher.bitstring_credential(list_id))
    except LookupError:
        raise HTTPException(404) from None


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``uvicorn issuer.app:create_app_from_env --factory``): settings from the
    environment (``INTYG_ISSUER_*``), as ``intyg up`` and docker-compose start the service;
    logging from ``INTYG_LOG_*`` (intyg.web.operations)."""
    settings = IssuerSettings()
    configure_process(f"issuer-{settings.agency}", development=settings.is_development)
    app = create_app(settings)
    tune_collector()
    return app
