"""Capture every log record as the services format it in production (JSON lines), for tests
that check what reaches the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from intyg.web.observability import JsonFormatter, RequestContextFilter, TextFormatter

__all__ = ["access_lines", "captured", "records"]


@contextmanager
def captured(json_format: bool = True, service: str = "test-service") -> Iterator[io.StringIO]:
    """Records of every logger at DEBUG and above, formatted, into a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    handler.addFilter(RequestContextFilter(service))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [r for r in records(stream) if r["logger"] == "intyg.access"]
