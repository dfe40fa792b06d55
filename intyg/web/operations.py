"""What every service offers its operators, installed by one call (docs/running.md
"Operations"):

- ``GET /healthz``: liveness, the process answers (no dependency is touched).
- ``GET /readyz``: readiness; each :class:`ReadinessCheck` of the app in order (start-up
  finished, the database answers a real query, signing keys loaded). 200
  ``{"status": "ready"}`` or 503 ``{"status": "unavailable", "check": ..., "reason": ...}``.
- ``GET /metrics``: Prometheus exposition (:mod:`intyg.web.metrics`), see
  :class:`OperationsSettings` for who may read it.
- ``GET /openapi.json`` and ``GET /docs`` (Swagger UI) unless ``INTYG_API_DOCS=false``.
- :class:`~intyg.web.observability.ObservabilityMiddleware` (request ids, access line,
  request metrics) as the outermost middleware.

:func:`configure_process` is for the uvicorn factories (``create_app_from_env``): it sets up
process-wide logging. Apps built in tests leave logging alone.
"""

from __future__ import annotations

import gc
import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import Engine

from intyg.web import db, metrics
from intyg.web.errors import BearerTokenError
from intyg.web.observability import ObservabilityMiddleware, configure_logging
from intyg.web.settings import SecretFileSettings

__all__ = [
    "OperationsSettings",
    "ReadinessCheck",
    "configure_process",
    "database_check",
    "install",
    "tune_collector",
]

logger = logging.getLogger("intyg.web.operations")

NO_STORE = {"Cache-Control": "no-store"}
READY_RETRY_AFTER_SECONDS = 5
TAG = "operations"


class OperationsSettings(SecretFileSettings):
    """Process-wide operations settings (``INTYG_*``, the same for every service);
    ``metrics_token`` may come from ``INTYG_METRICS_TOKEN_FILE``."""

    model_config = SettingsConfigDict(env_prefix="INTYG_")

    #: Log format: ``json`` (one object per line) or ``text`` (one readable line).
    #: Unset: ``text`` when the service's environment is development, ``json`` otherwise.
    log_format: Literal["json", "text"] | None = None
    #: Lowest level logged: DEBUG, INFO, WARNING, ERROR.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: One access line per request (method, route template, status, duration, request id).
    access_log: bool = True
    #: Bearer token a scraper must send to read ``/metrics``.
    metrics_token: SecretStr | None = None
    #: Serve ``/metrics`` without a token outside development (a private scrape network).
    #: Unset token and ``false``: ``/metrics`` is served only in development.
    metrics_open: bool = False
    #: Serve ``/openapi.json`` and ``/docs`` (Swagger UI, loaded from its CDN).
    api_docs: bool = True

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def json_logs(self, development: bool) -> bool:
        return self.log_format == "json" if self.log_format else not development

    def serve_metrics(self, development: bool) -> bool:
        return self.metrics_token is not None or self.metrics_open or development


def configure_process(service: str, *, development: bool) -> OperationsSettings:
    """Logging for a service process, from ``INTYG_LOG_*`` (call in the uvicorn factory)."""
    settings = OperationsSettings()
    configure_logging(
        service, json_format=settings.json_logs(development), level=settings.log_level
    )
    return settings


#: Allocations between two collections of the youngest generation (CPython's default: 700).
YOUNG_COLLECTION_THRESHOLD = 20_000


def tune_collector() -> None:
    """Keep the cyclic garbage collector off the service's long-lived objects (call in the
    uvicorn factory, once the app is built): what exists now (modules, the app, its routes)
    is frozen out of collections (``gc.freeze``), and the youngest generation is collected
    every 20,000 allocations instead of 700. A request allocates thousands of short-lived
    objects, which reference counting frees; frequent young collections cost a few per cent
    of a hot endpoint's CPU (docs/issuer.md "Performance")."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


# -- readiness --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadinessCheck:
    """One condition of readiness: ``probe`` raises or returns False when it does not hold;
    ``reason`` is what the 503 says (fixed text, never the exception's)."""

    name: str
    probe: Callable[[], Any]
    reason: str

    def holds(self) -> bool:
        try:
            result = self.probe()
        except Exception as exc:
            logger.warning("readiness check %s failed (%s)", self.name, type(exc).__name__)
            return False
        return result is not False


def database_check(engine: Engine) -> ReadinessCheck:
    """The database answers a query on a migrated table (Alembic's version table)."""

    def probe() -> None:
        with db.session(engine, write=False) as unit:
            unit.execute(sa.text("SELECT version_num FROM alembic_version")).one()

    return ReadinessCheck("database", probe, "the database does not answer")


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


class NotReady(BaseModel):
    status: Literal["unavailable"]
    #: The first check that failed.
    check: str
    reason: str


def _health_router(checks: Sequence[ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=[TAG])

    @router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    @router.get(
        "/readyz",
        summary="Readiness: started, database answers, signing keys loaded",
        response_model=Ready,
        responses={503: {"model": NotReady, "description": "Not ready"}},
    )
    def readyz() -> JSONResponse:
        for check in checks:
            if not check.holds():
                body = {"status": "unavailable", "check": check.name, "reason": check.reason}
                headers = {**NO_STORE, "Retry-After": str(READY_RETRY_AFTER_SECONDS)}
                return JSONResponse(body, status_code=503, headers=headers)
        return JSONResponse({"status": "ready"}, headers=NO_STORE)

    return router


# -- metrics and API docs ---------------------------------------------------------------------


def _metrics_router(token: SecretStr | None) -> APIRouter:
    router = APIRouter(tags=[TAG])
    expected = token.get_secret_value().encode("utf-8") if token is not None else None

    @router.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format)",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}, 401: {"description": "Token needed"}},
    )
    def scrape(request: Request) -> Response:
        if expected is not None:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not presented:
                raise BearerTokenError(None, realm="metrics")
            if not hmac.compare_digest(presented.strip().encode("utf-8"), expected):
                raise BearerTokenError("invalid_token", "wrong metrics token", realm="metrics")
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type, headers=NO_STORE)

    return router


def _docs_router(title: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    def openapi(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @router.get("/docs")
    def docs() -> HTMLResponse:
        # Relative: the schema is found next to the page behind a path-prefixing proxy too.
        return get_swagger_ui_html(openapi_url="openapi.json", title=f"{title} API")

    return router


def install(
    app: FastAPI,
    *,
    checks: Sequence[ReadinessCheck],
    development: bool,
    settings: OperationsSettings | None = None,
) -> None:
    """Health, readiness, metrics and API docs routes, and the observability middleware.

    Call after the app's other middleware so that ours is the outermost (it then sees
    413s and 500s too). Build the app with ``openapi_url=None, docs_url=None``: the docs
    are served here, by this one rule.
    """
    settings = settings or OperationsSettings()
    app.include_router(_health_router(checks))
    if settings.serve_metrics(development):
        app.include_router(_metrics_router(settings.metrics_token))
    if settings.api_docs:
        app.include_router(_docs_router(app.title))
    app.add_middleware(ObservabilityMiddleware, access_log=settings.access_log)
