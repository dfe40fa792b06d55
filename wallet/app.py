"""The wallet application: ``create_app(settings)`` wires state, start-up and routers.

Start-up (FastAPI lifespan, so every replica does it): migrate the database, load or
generate the wallet provider key (wallet/keys.py) and read the configured trust anchors.
Feature modules add an ``APIRouter`` listed in :data:`ROUTERS` and reach the shared state
through :func:`get_context` (the issuer's pattern, issuer/app.py).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from cryptography.x509 import Certificate
from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy.engine import Engine

from intyg import x509
from intyg.fetch import FetchResponse
from intyg.web.bodies import BodyLimitMiddleware
from intyg.web.crypto_store import CryptoStore
from intyg.web.db import install_database_error_handlers
from intyg.web.errors import install_error_handlers
from intyg.web.operations import ReadinessCheck, configure_process, database_check, tune_collector
from intyg.web.operations import install as install_operations
from intyg.web.outbound import OutboundClient

from .db import make_engine, migrate
from .keys import ProviderKeys
from .settings import WalletSettings

__all__ = [
    "ROUTERS",
    "Context",
    "Outbound",
    "WalletContext",
    "build_context",
    "create_app",
    "get_context",
    "startup",
    "system_clock",
]

ROUTERS: tuple[str, ...] = (
    "wallet.app:published",
    "wallet.pages:router",
    "wallet.consent_pages:router",
    "wallet.account_pages:router",
    "wallet.issuer_pages:router",
)


def system_clock() -> int:
    """Integer Unix seconds: the one clock of the wallet (tests inject their own)."""
    return int(time.time())


class Outbound(Protocol):
    """What the wallet needs of :class:`intyg.web.outbound.OutboundClient` (tests may give
    a stand-in with the same guarantees switched off)."""

    def fetch(
        self,
        url: str,
        accept: str = ...,
        *,
        max_redirects: int | None = ...,
        max_bytes: int | None = ...,
    ) -> FetchResponse: ...

    def post_form(
        self, url: str, data: Any, *, accept: str = ..., headers: Any = ...
    ) -> FetchResponse: ...

    def post_json(
        self, url: str, payload: Any, *, accept: str = ..., headers: Any = ...
    ) -> FetchResponse: ...


def _load_anchors(paths: Sequence[Any]) -> tuple[Certificate, ...]:
    anchors: list[Certificate] = []
    for path in paths:
        anchors.extend(x509.certs_from_pem(path.read_bytes()))
    return tuple(anchors)


@dataclass
class WalletContext:
    """Everything a request handler needs; ``app.state.wallet``."""

    settings: WalletSettings
    engine: Engine
    store: CryptoStore
    keys: ProviderKeys
    outbound: Outbound
    clock: Callable[[], int]
    issuer_anchors: tuple[Certificate, ...] = ()
    verifier_anchors: tuple[Certificate, ...] = ()
    ready: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


def get_context(request: Request) -> WalletContext:
    """FastAPI dependency: the wallet's shared state."""
    return request.app.state.wallet  # type: ignore[no-any-return]


Context = Annotated[WalletContext, Depends(get_context)]


def build_context(
    settings: WalletSettings,
    *,
    clock: Callable[[], int] = system_clock,
    engine: Engine | None = None,
    outbound: Outbound | None = None,
) -> WalletContext:
    engine = engine or make_engine(settings)
    store = settings.crypto_store()
    return WalletContext(
        settings=settings,
        engine=engine,
        store=store,
        keys=ProviderKeys(engine, settings, store, clock),
        outbound=outbound or OutboundClient(settings.outbound_policy()),
        clock=clock,
    )


def startup(ctx: WalletContext) -> None:
    """Migrate, provider keys, trust anchors, the verifier registry, interrupted issuances."""
    migrate(ctx.engine)
    ctx.keys.ensure()
    ctx.issuer_anchors = _load_anchors(ctx.settings.issuer_trust_anchors)
    ctx.verifier_anchors = _load_anchors(ctx.settings.verifier_trust_anchors)
    from .issuance import recover_interrupted  # issuance and verifiers import this module
    from .verifiers import load_registry

    load_registry(ctx)
    recover_interrupted(ctx)
    ctx.ready = True


def _include(app: FastAPI, specs: Sequence[str]) -> None:
    for spec in specs:
        module_name, _, attribute = spec.partition(":")
        router = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(router, APIRouter):
            raise TypeError(f"{spec} is not an APIRouter")
        app.include_router(router)


class _BodyLimits:
    """The body limit per request: ``max_import_bytes`` for the backup import (a file of
    credentials), ``max_body_bytes`` everywhere else."""

    def __init__(self, app: Any, max_body_bytes: int, import_bytes: int) -> None:
        self.default = BodyLimitMiddleware(app, max_body_bytes=max_body_bytes)
        self.imports = BodyLimitMiddleware(app, max_body_bytes=import_bytes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        chosen = self.imports if scope.get("path") == IMPORT_PATH else self.default
        await chosen(scope, receive, send)


IMPORT_PATH = "/settings/import"


def create_app(
    settings: WalletSettings,
    *,
    clock: Callable[[], int] = system_clock,
    engine: Engine | None = None,
    outbound: Outbound | None = None,
    routers: Sequence[str] = ROUTERS,
) -> FastAPI:
    """The wallet FastAPI app."""
    ctx = build_context(settings, clock=clock, engine=engine, outbound=outbound)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        startup(ctx)
        try:
            yield
        finally:
            ctx.ready = False
            if engine is None:
                ctx.engine.dispose()

    app = FastAPI(
        title="intyg wallet",
        lifespan=lifespan,
        docs_url=None,  # /docs and /openapi.json: intyg.web.operations
        redoc_url=None,
        openapi_url=None,
    )
    app.state.wallet = ctx
    install_error_handlers(app)
    install_database_error_handlers(app)
    app.add_middleware(
        _BodyLimits, max_body_bytes=settings.max_body_bytes, import_bytes=settings.max_import_bytes
    )
    _include(app, routers)
    from .pages import install  # pages import this module: no cycle at import time

    install(app)
    install_operations(app, checks=readiness_checks(ctx), development=settings.is_development)
    return app


def readiness_checks(ctx: WalletContext) -> list[ReadinessCheck]:
    """``/readyz``: start-up finished, the database answers, the provider key is loaded."""
    return [
        ReadinessCheck("started", lambda: ctx.ready, "the wallet is starting"),
        database_check(ctx.engine),
        ReadinessCheck(
            "keys", lambda: ctx.keys._signer is not None, "the wallet provider key is not loaded"
        ),
    ]


#: Public documents of the wallet (none yet; /healthz and /readyz: intyg.web.operations).
published = APIRouter(include_in_schema=False)


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``uvicorn wallet.app:create_app_from_env --factory``): settings from the
    environment (``INTYG_WALLET_*``), as ``intyg up`` and docker-compose start the service;
    logging from ``INTYG_LOG_*`` (intyg.web.operations)."""
    settings = WalletSettings()
    configure_process("wallet", development=settings.is_development)
    app = create_app(settings)
    tune_collector()
    return app
