"""Request ids, structured logs and the per-request access line and metrics (docs/running.md
"Operations"; security.md T084, T111, T117).

- :class:`ObservabilityMiddleware`: a pure ASGI middleware (a few microseconds per request).
  It takes the caller's ``X-Request-ID`` when it is a sane token (8-128 characters of
  ``A-Z a-z 0-9 . _ ~ : + / = -`` and no personal identity number), otherwise makes one;
  echoes it in the response, keeps it in a context variable for every log record of the
  request, writes one access line (method, **route template**, status, duration, request
  id) and counts the request in :mod:`intyg.web.metrics`.
- :class:`RequestContextFilter` adds ``request_id`` and ``service`` to every record;
  :class:`JsonFormatter` (one JSON object per line) and :class:`TextFormatter` (one readable
  line, control characters escaped) render them; :func:`configure_logging` wires both to the
  root logger and routes uvicorn's loggers through them.

The access line names the route template (``/offers/{offer_id}``), never the raw path or its
query: path parameters carry capabilities (offer ids) and personal numbers (back-office
lookups). Every record passes the audit rule (:func:`intyg.web.audit.check_no_personal_numbers`):
a message, field or traceback holding a personal identity number is withheld.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from intyg.web import metrics
from intyg.web.audit import AuditError, check_no_personal_numbers

__all__ = [
    "ACCESS_LOGGER",
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "ObservabilityMiddleware",
    "RequestContextFilter",
    "TextFormatter",
    "configure_logging",
    "current_request_id",
    "new_request_id",
    "route_template",
    "sane_request_id",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "X-Request-ID"
ACCESS_LOGGER = "intyg.access"
UNMATCHED = "unmatched"
#: Probes and scrapes: logged at DEBUG so they do not drown the access log.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
WITHHELD = "[withheld: contained a personal identity number]"
#: Libraries that log every outbound URL (capabilities, query strings) at INFO.
QUIET_LIBRARIES = ("httpx", "httpcore")
_HEADER_NAME = REQUEST_ID_HEADER.lower().encode("ascii")
_SANE_ID = re.compile(rb"[A-Za-z0-9._~:+/=-]{8,128}")
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_request_id: ContextVar[str | None] = ContextVar("intyg_request_id", default=None)
_access = logging.getLogger(ACCESS_LOGGER)


# -- request ids ------------------------------------------------------------------------------


def current_request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    return _request_id.get()


def new_request_id() -> str:
    """64 random bits, hex: unique, not secret (it is shown to clients), so the fast
    generator will do (reseeded in every forked worker)."""
    return f"{random.getrandbits(64):016x}"


def sane_request_id(value: bytes) -> str | None:
    """An incoming ``X-Request-ID`` worth keeping: a short token, never a personal number."""
    if not _SANE_ID.fullmatch(value):
        return None
    text = value.decode("ascii")
    try:
        check_no_personal_numbers(text)
    except AuditError:
        return None
    return text


def _incoming_request_id(headers: Any) -> str | None:
    for name, value in headers:
        if name == _HEADER_NAME:
            return sane_request_id(value)
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label and log field), or ``unmatched``."""
    template = getattr(scope.get("route"), "path_format", None)
    return template if isinstance(template, str) else UNMATCHED


# -- the middleware ---------------------------------------------------------------------------


class ObservabilityMiddleware:
    """Request id, access line and request metrics; add it last so it is the outermost."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope["headers"]) or new_request_id()
        token = _request_id.set(request_id)
        header = (_HEADER_NAME, request_id.encode("ascii"))
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # The error handler outside answers 500 with this request id (intyg.web.errors),
            # so the context variable is left set for it.
            self._record(scope, status or 500, started)
            raise
        self._record(scope, status or 500, started)
        _request_id.reset(token)

    def _record(self, scope: Scope, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = route_template(scope)
        key = (method, route, f"{status // 100}xx")
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                metrics.HTTP_REQUESTS.labels(*key),
                metrics.HTTP_REQUEST_DURATION.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)
        level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
        if self.access_log and _access.isEnabledFor(level):
            duration_ms = round(seconds * 1000, 1)
            # Bounded values only (a method word, a route template from code, numbers): the
            # formatters take them as they are, without the audit check of other records.
            fields = {"method": method, "path": route, "status": status, "duration_ms": duration_ms}
            # makeRecord + handle: Logger.log would also walk the stack for a caller
            # (file and line), which says nothing about an access line.
            record = _access.makeRecord(
                ACCESS_LOGGER,
                level,
                __file__,
                0,
                "%s %s %d %.1f ms",
                (method, route, status, duration_ms),
                None,
                extra={_CHECKED_FIELDS: fields},
            )
            _access.handle(record)


#: A record attribute holding fields this module built and checked (the access line's).
_CHECKED_FIELDS = "_intyg_checked_fields"


# -- log records ------------------------------------------------------------------------------


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` (of the request being served) and ``service`` to every record."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
        if getattr(record, "service", None) is None:
            record.service = self.service
        return True


#: Set by the formatters, or (``color_message``) uvicorn's terminal copy of the message.
_FORMATTER_FIELDS = {"message", "asctime", "request_id", "service", "taskName", "color_message"}
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
_RECORD_FIELDS |= _FORMATTER_FIELDS


def _safe(value: Any) -> Any:
    """The audit rule on a log value: a personal identity number withholds the value."""
    if isinstance(value, float | bool) or value is None:
        return value
    if not isinstance(value, str | int | Mapping | list | tuple):
        value = str(value)
    try:
        check_no_personal_numbers(value)
    except AuditError:
        return WITHHELD
    return value


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Fields given with ``extra=`` (names starting with ``_`` are not shown), checked."""
    checked = record.__dict__.get(_CHECKED_FIELDS)
    if checked is not None:
        return checked  # type: ignore[no-any-return]
    return {
        name: _safe(value)
        for name, value in record.__dict__.items()
        if name not in _RECORD_FIELDS and not name.startswith("_")
    }


def _message(record: logging.LogRecord) -> str:
    message = record.getMessage()
    return message if _CHECKED_FIELDS in record.__dict__ else str(_safe(message))


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if not record.exc_info:
        return None
    text = formatter.formatException(record.exc_info)
    if _safe(text) is WITHHELD:
        # Keep the type, lose the message and traceback that carried the number.
        kind = record.exc_info[0].__name__ if record.exc_info[0] else "exception"
        return f"{kind}: {WITHHELD}"
    return text


class _Seconds:
    """``strftime`` once per second, not once per record: the time up to the second, in UTC
    (JSON) and local time (text)."""

    whole = -1
    utc = local = ""

    @classmethod
    def at(cls, created: float) -> type[_Seconds]:
        whole = int(created)
        if whole != cls.whole:
            cls.utc = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            cls.local = datetime.fromtimestamp(whole).strftime("%Y-%m-%d %H:%M:%S")
            cls.whole = whole
        return cls


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-05-04T09:30:12.345Z``."""
    return f"{_Seconds.at(created).utc}.{int(created * 1000) % 1000:03d}Z"


_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, service, then
    the record's extra fields and ``exception``. JSON escaping keeps CR/LF and escape
    sequences inside the record (T117)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
            "request_id": getattr(record, "request_id", None),
            "service": getattr(record, "service", None),
        }
        for name, value in _extra_fields(record).items():
            entry.setdefault(name, value)  # an extra field never replaces the ones above
        exception = _exception_text(self, record)
        if exception is not None:
            entry["exception"] = exception
        return _JSON.encode(entry)


#: C0 and C1 control characters, DEL and the Unicode line separators, shown escaped.
_CONTROL = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def _escape(text: str) -> str:
    return text.translate(_CONTROL)


class TextFormatter(logging.Formatter):
    """One readable line per record (``intyg up``, development): time, level, service,
    request id, logger, message, extra fields as ``key=value``; control characters escaped
    so a value cannot start a fake record (T117); tracebacks indented below."""

    def format(self, record: logging.LogRecord) -> str:
        shown = _extra_fields(record) if _CHECKED_FIELDS not in record.__dict__ else {}
        fields = " ".join(f"{name}={_escape(str(value))}" for name, value in shown.items())
        context = " ".join(
            str(part)
            for part in (getattr(record, "service", None), getattr(record, "request_id", None))
            if part
        )
        moment = f"{_Seconds.at(record.created).local}.{int(record.msecs):03d}"
        line = f"{moment} {record.levelname:<7} [{context}] {record.name}: "
        line += _escape(_message(record))
        if fields:
            line += " " + fields
        exception = _exception_text(self, record)
        if exception is not None:
            line += "".join(f"\n    {_escape(part)}" for part in exception.splitlines())
        return line


# -- process set-up ---------------------------------------------------------------------------


def configure_logging(
    service: str,
    *,
    json_format: bool,
    level: str = "INFO",
    stream: Any = None,
) -> logging.Handler:
    """Route every record of the process (ours and uvicorn's) through one handler.

    uvicorn's own access logger is switched off: it writes the raw path with the query
    string; :class:`ObservabilityMiddleware` writes the access line instead.
    """
    # Thread and process names are in no output; leaving them out makes every record cheaper.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    handler.addFilter(RequestContextFilter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    uvicorn_access.disabled = True
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler
