"""Hot protocol endpoints served without the framework's per-request machinery.

Ready for use: a wallet-facing endpoint that runs hundreds of times a second (the
verifier's OpenID4VP Response Endpoint, the issuer's token, nonce and credential endpoints)
is a :class:`FastRoute`. :class:`FastLaneMiddleware` answers those routes itself, right
inside :class:`~intyg.web.observability.ObservabilityMiddleware`, so a request skips
Starlette's routing, FastAPI's dependency resolution, the request and response objects and
the inner middleware, which together cost about as much as the endpoint's own work.

What stays the same as on any other route (and is tested on the fast route):

- the request id header, the access line and the request metrics (the route template is
  the route's path; ``scope["route"]`` carries it for the observability middleware);
- the body limit: ``Content-Length`` above the route's limit is 413 before anything is
  read, a chunked body is cut off at the limit (design.md "Every request body has a size
  limit"; security.md T112);
- the media type: a body of another type is 415 (T119);
- refusals: :class:`~intyg.web.errors.ProtocolError` becomes the same JSON error body and
  headers as :func:`intyg.web.errors.error_response`; anything else propagates to the
  app's 500 handler outside (request id in the body, logged);
- the route is declared on an ``APIRouter`` like any other, with :func:`endpoint`: it
  appears in the OpenAPI document, and an app without the middleware still serves it;
  :func:`install` (after the routers are included, before
  :func:`intyg.web.operations.install_operations`) puts the middleware in front of the
  routes declared so.

The handler is an ``async`` callable taking a :class:`FastRequest` and returning a
:class:`FastReply`; blocking work belongs in a thread (:func:`anyio.to_thread.run_sync`)
as anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intyg.web.bodies import (
    FORM,
    PayloadTooLarge,
    declared_length,
    require_media_type,
)
from intyg.web.errors import NO_STORE, ProtocolError

__all__ = ["FastLaneMiddleware", "FastReply", "FastRequest", "FastRoute", "endpoint", "install"]

JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class FastRequest:
    """The parts of an HTTP request a protocol endpoint reads."""

    scope: Scope
    body: bytes

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), decoded as Latin-1."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.scope["headers"]:
            if key == wanted:
                return value.decode("latin-1")
        return None


@dataclass(frozen=True)
class FastReply:
    """A JSON answer (``body`` a mapping) or raw bytes with their ``media_type``."""

    body: Mapping[str, Any] | bytes
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=lambda: NO_STORE)
    media_type: str = JSON_MEDIA_TYPE

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


Handler = Callable[[FastRequest], Awaitable[FastReply]]


@dataclass(frozen=True)
class FastRoute:
    """``POST path`` answered by ``handler``; bodies of ``accept`` media type only (``None``:
    a body is not read as anything, so any type will do), at most ``max_bytes`` (a number,
    or a function of the ASGI scope for a configured limit)."""

    path: str
    handler: Handler
    max_bytes: int | Callable[[Scope], int]
    accept: str | None = FORM
    method: str = "POST"

    @property
    def path_format(self) -> str:
        """The route template the observability middleware logs and counts."""
        return self.path

    def limit(self, scope: Scope) -> int:
        return self.max_bytes if isinstance(self.max_bytes, int) else self.max_bytes(scope)


def _reply_for(exc: ProtocolError) -> FastReply:
    return FastReply(exc.body(), exc.status_code, {**exc.headers, **NO_STORE})


async def _send(send: Send, reply: FastReply) -> None:
    body = reply.encoded()
    headers = [
        (b"content-type", reply.media_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1")),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()),
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ProtocolError("invalid_request", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


async def serve(route: FastRoute, scope: Scope, receive: Receive) -> FastReply:
    """Body limit, media type, then the handler; a refusal as its error reply."""
    try:
        limit = route.limit(scope)
        length = declared_length(scope)
        if length is not None and length > limit:
            raise PayloadTooLarge(limit)
        request = FastRequest(scope, b"")
        if route.accept is not None:
            require_media_type(request.header("content-type"), route.accept)
        request = replace(request, body=await _read_body(receive, limit))
        return await route.handler(request)
    except PayloadTooLarge as exc:
        reply = _reply_for(exc)
        # Unread body on the connection: close it rather than read the rest.
        return FastReply(reply.body, reply.status, {**reply.headers, "Connection": "close"})
    except ProtocolError as exc:
        return _reply_for(exc)


class FastLaneMiddleware:
    """Answer the :class:`FastRoute` s; hand every other request to the app."""

    def __init__(self, app: ASGIApp, routes: Iterable[FastRoute]) -> None:
        self.app = app
        self.routes = {(route.method, route.path): route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        await _send(send, await serve(route, scope, receive))


def endpoint(route: FastRoute) -> Callable[[Request], Awaitable[Response]]:
    """The route as an ordinary FastAPI endpoint (OpenAPI document; apps without the
    middleware), sharing :func:`serve` with the middleware."""

    async def call(request: Request) -> Response:
        reply = await serve(route, request.scope, request.receive)
        return Response(reply.encoded(), reply.status, dict(reply.headers), reply.media_type)

    call.__name__ = route.handler.__name__
    call.__doc__ = route.handler.__doc__
    call.__fast_route__ = route  # type: ignore[attr-defined]
    return call


def _declared(routes: Iterable[Any], prefix: str = "") -> Iterator[FastRoute]:
    """The :func:`endpoint` routes among ``routes``, also inside included routers (FastAPI
    keeps an included router as one entry holding the original router and its prefix)."""
    for route in routes:
        fast = getattr(getattr(route, "endpoint", None), "__fast_route__", None)
        if isinstance(fast, FastRoute):
            yield replace(fast, path=prefix + fast.path)
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _declared(included.routes, prefix + getattr(context, "prefix", ""))


def install(app: FastAPI) -> None:
    """Serve the app's :func:`endpoint` routes through :class:`FastLaneMiddleware`."""
    routes = list(_declared(app.routes))
    if routes:
        app.add_middleware(FastLaneMiddleware, routes=routes)
