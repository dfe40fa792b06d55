"""OAuth-style error responses for the services (RFC 6749 §5.2, RFC 6750 §3, security.md
conventions, T111, T119).

Every refusal a service sends is ``{"error": ..., "error_description": ...}`` with
``Cache-Control: no-store``. ``error_description`` is cut to the characters RFC 6749 allows
(%x20-21 / %x23-5B / %x5D-7E), so no quote, backslash, control character or non-ASCII text
can reach a client or a ``WWW-Authenticate`` header. Unexpected exceptions become a generic
500 carrying only a request id; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from intyg.web.observability import current_request_id

__all__ = [
    "BearerTokenError",
    "ProtocolError",
    "ServiceUnavailable",
    "error_response",
    "install_error_handlers",
    "sanitize_description",
]

logger = logging.getLogger("intyg.web.errors")

MAX_DESCRIPTION_LENGTH = 300
REQUEST_ID_HEADER = "X-Request-ID"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Characters outside RFC 6749 §5.2's NQSCHAR set (%x20-21 / %x23-5B / %x5D-7E).
_NOT_NQSCHAR = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")

#: Error codes for framework statuses without a protocol-specific code.
_STATUS_ERRORS = {
    400: "invalid_request",
    401: "invalid_token",
    403: "access_denied",
    404: "not_found",
    405: "invalid_request",
    406: "invalid_request",
    409: "invalid_request",
    413: "invalid_request",
    415: "invalid_request",
    429: "slow_down",
    503: "temporarily_unavailable",
}
_STATUS_DESCRIPTIONS = {
    404: "not found",
    405: "method not allowed",
    406: "not acceptable",
    413: "request body too large",
    415: "unsupported media type",
}


def sanitize_description(text: str) -> str:
    """RFC 6749 §5.2: keep only NQSCHAR characters, and keep it short."""
    return _NOT_NQSCHAR.sub("?", text)[:MAX_DESCRIPTION_LENGTH]


class ProtocolError(Exception):
    """A refusal with a protocol error code (``invalid_request``, ``invalid_proof``, ...).

    Raise it anywhere in a request; the installed handler turns it into the JSON body.
    """

    def __init__(
        self,
        error: str,
        error_description: str | None = None,
        status_code: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not _ERROR_CODE.fullmatch(error):
            raise ValueError("error code outside RFC 6749 §5.2 character set")
        self.error = error
        self.error_description = (
            sanitize_description(error_description) if error_description else None
        )
        self.status_code = status_code
        self.headers = dict(headers or {})
        super().__init__(f"{error}: {self.error_description or ''}")

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.error_description:
            body["error_description"] = self.error_description
        return body


class BearerTokenError(ProtocolError):
    """RFC 6750 §3 errors with their ``WWW-Authenticate: Bearer`` challenge.

    ``error=None`` is a request without credentials: a bare challenge and no error code
    (RFC 6750 §3.1). Status codes follow §3.1: 400, 401 or 403 by error.
    """

    _STATUS: ClassVar[dict[str, int]] = {
        "invalid_request": 400,
        "invalid_token": 401,
        "insufficient_scope": 403,
    }

    def __init__(
        self,
        error: str | None = "invalid_token",
        error_description: str | None = None,
        *,
        realm: str | None = None,
        scheme: str = "Bearer",
    ) -> None:
        status = self._STATUS.get(error or "", 401)
        super().__init__(error or "invalid_token", error_description, status)
        self.bare = error is None
        params = []
        if realm:
            params.append(f'realm="{sanitize_description(realm)}"')
        if not self.bare:
            params.append(f'error="{self.error}"')
            if self.error_description:
                params.append(f'error_description="{self.error_description}"')
        self.headers["WWW-Authenticate"] = f"{scheme} {', '.join(params)}".strip()

    def body(self) -> dict[str, str]:
        return {} if self.bare else super().body()


class ServiceUnavailable(ProtocolError):
    """A retriable failure (database busy, disk full, dependency down): 503 + Retry-After."""

    def __init__(self, error_description: str = "try again later", retry_after: int = 1) -> None:
        super().__init__(
            "temporarily_unavailable",
            error_description,
            503,
            {"Retry-After": str(retry_after)},
        )


def error_response(
    status_code: int, body: Mapping[str, str], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one place error responses are built: JSON, never cached."""
    return JSONResponse(
        dict(body), status_code=status_code, headers={**(headers or {}), **NO_STORE}
    )


def _request_id() -> str:
    # The id ObservabilityMiddleware gave the request, so the 500, its log record and the
    # access line agree; a fresh one for apps without that middleware.
    return current_request_id() or secrets.token_hex(8)


async def _protocol_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProtocolError)
    return error_response(exc.status_code, exc.body(), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # Name the first offending parameter; never echo its value (T111).
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    where = ".".join(str(part) for part in errors[0].get("loc", ())) if errors else ""
    description = f"invalid or missing parameter {where}".strip() if where else "invalid request"
    return error_response(400, ProtocolError("invalid_request", description).body())


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    error = _STATUS_ERRORS.get(status, "invalid_request" if status < 500 else "server_error")
    description = _STATUS_DESCRIPTIONS.get(status)
    if description is None and isinstance(exc.detail, str) and status < 500:
        description = exc.detail
    return error_response(status, ProtocolError(error, description).body(), dict(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = _request_id()
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": request_id, "path": request.url.path},
    )
    body = {
        "error": "server_error",
        "error_description": f"internal error, request id {request_id}",
    }
    return error_response(500, body, {REQUEST_ID_HEADER: request_id})


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on a FastAPI app; call once when building the app."""
    app.add_exception_handler(ProtocolError, _protocol_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
