"""Request body limits and strict body parsing (design.md "Every request body has a size
limit"; security.md T112-T116, T119; Starlette CVE-2023-30798, CVE-2024-47874).

- :class:`BodyLimitMiddleware`: a pure ASGI middleware answering 413 as soon as a body is
  known to be too large: at once from ``Content-Length``, or while a chunked body streams
  in, before the rest is read.
- :func:`read_json`: ``application/json`` only (else 415), parsed by
  :mod:`intyg.strict_json` (duplicates, depth, huge numbers, NUL, lone surrogates -> 400).
- :func:`read_form`: ``application/x-www-form-urlencoded`` only (else 415), our own parser
  with a field count and field size limit; repeated parameters are refused (RFC 6749
  §3.1 "MUST NOT be included more than once"); NUL or invalid UTF-8 -> 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intyg import strict_json
from intyg.web.errors import ProtocolError, error_response

__all__ = [
    "BodyLimitMiddleware",
    "PayloadTooLarge",
    "declared_length",
    "form_body",
    "json_body",
    "media_type",
    "parse_form",
    "parse_json",
    "read_form",
    "read_json",
    "require_media_type",
]

DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MAX_FORM_FIELDS = 64
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class PayloadTooLarge(ProtocolError):
    """413: the body is larger than this endpoint accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__("invalid_request", f"request body larger than {limit} bytes", 413)


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, if it has one; malformed -> 400."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            if not value.isdigit():
                raise ProtocolError("invalid_request", "malformed Content-Length")
            return int(value)
    return None


class BodyLimitMiddleware:
    """Cap every HTTP request body at ``max_body_bytes`` (pure ASGI, no buffering)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        try:
            length = declared_length(scope)
            if length is not None and length > limit:
                raise PayloadTooLarge(limit)
        except ProtocolError as exc:
            await _reply(exc, scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge as exc:
            # Normally the app's ProtocolError handler answers; this covers apps without it.
            if started:
                raise
            await _reply(exc, scope, receive, send)


async def _reply(exc: ProtocolError, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(exc.status_code, exc.body(), {**exc.headers, "Connection": "close"})
    await response(scope, receive, send)


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """Split a Content-Type into the lower-cased media type and its parameters."""
    if not content_type:
        return "", {}
    kind, *rest = content_type.split(";")
    parameters = {}
    for item in rest:
        name, _, value = item.partition("=")
        parameters[name.strip().lower()] = value.strip().strip('"').lower()
    return kind.strip().lower(), parameters


def require_media_type(content_type: str | None, expected: str) -> None:
    """T119: a body of another type (per its ``Content-Type``) is 415, whatever it contains."""
    kind, parameters = media_type(content_type)
    if kind != expected or parameters.get("charset", "utf-8") != "utf-8":
        raise ProtocolError("invalid_request", f"Content-Type must be {expected}", 415)


async def _read_body(request: Request, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(max_bytes)
        parts.append(chunk)
    return b"".join(parts)


async def read_json(
    request: Request,
    *,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
    error: str = "invalid_request",
) -> Any:
    """The JSON body, strictly parsed; ``error`` names the endpoint's error code (T114)."""
    require_media_type(request.headers.get("content-type"), JSON)
    return parse_json(await _read_body(request, max_bytes), max_bytes=max_bytes, error=error)


def parse_json(
    body: bytes, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES, error: str = "invalid_request"
) -> Any:
    """A JSON body already read, strictly parsed; ``error`` names the endpoint's error code."""
    try:
        return strict_json.loads(body, max_bytes=max_bytes)
    except strict_json.StrictJSONError as exc:
        raise ProtocolError(error, f"malformed JSON body: {exc}") from None


def _decode(raw: bytes, error: str) -> str:
    try:
        text = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(error, "form field is not valid UTF-8") from None
    if "\x00" in text:
        raise ProtocolError(error, "NUL character in a form field")
    return text


def parse_form(
    body: bytes,
    *,
    max_fields: int = DEFAULT_MAX_FORM_FIELDS,
    max_field_bytes: int = DEFAULT_MAX_BODY_BYTES,
    error: str = "invalid_request",
) -> dict[str, str]:
    """Parse an urlencoded body (WHATWG URL "application/x-www-form-urlencoded parsing")."""
    fields: dict[str, str] = {}
    for count, part in enumerate(p for p in body.split(b"&") if p):
        if count >= max_fields:
            raise ProtocolError(error, f"more than {max_fields} form fields")
        if len(part) > max_field_bytes:
            raise ProtocolError(error, f"form field larger than {max_field_bytes} bytes")
        raw_name, _, raw_value = part.partition(b"=")
        name = _decode(raw_name, error)
        if not name:
            raise ProtocolError(error, "form field without a name")
        if name in fields:
            raise ProtocolError(error, f"parameter {name[:40]} repeated")
        fields[name] = _decode(raw_value, error)
    return fields


async def read_form(
    request: Request,
    *,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_fields: int = DEFAULT_MAX_FORM_FIELDS,
    max_field_bytes: int | None = None,
    error: str = "invalid_request",
) -> dict[str, str]:
    """The urlencoded body as a dict (OpenID4VP ``direct_post``, token requests)."""
    require_media_type(request.headers.get("content-type"), FORM)
    body = await _read_body(request, max_bytes)
    return parse_form(
        body,
        max_fields=max_fields,
        max_field_bytes=max_bytes if max_field_bytes is None else max_field_bytes,
        error=error,
    )


def json_body(
    *, max_bytes: int = DEFAULT_MAX_BODY_BYTES, error: str = "invalid_request"
) -> Callable[[Request], Awaitable[Any]]:
    """A FastAPI dependency for a JSON body.

    ``body: Annotated[Any, Depends(json_body(error="invalid_credential_request"))]``
    """

    async def dependency(request: Request) -> Any:
        return await read_json(request, max_bytes=max_bytes, error=error)

    return dependency


def form_body(
    *,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_fields: int = DEFAULT_MAX_FORM_FIELDS,
    max_field_bytes: int | None = None,
    error: str = "invalid_request",
) -> Callable[[Request], Awaitable[dict[str, str]]]:
    """A FastAPI dependency returning the parsed form (see :func:`read_form`)."""

    async def dependency(request: Request) -> dict[str, str]:
        return await read_form(
            request,
            max_bytes=max_bytes,
            max_fields=max_fields,
            max_field_bytes=max_field_bytes,
            error=error,
        )

    return dependency
