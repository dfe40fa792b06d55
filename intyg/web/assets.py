"""Static assets the services share: the page stylesheet every service's pages start from."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BASE_CSS", "stylesheet"]

BASE_CSS = (Path(__file__).resolve().parent / "static" / "pages.css").read_bytes()


def stylesheet(service_css: Path) -> bytes:
    """The shared page styles followed by a service's own additions (one response)."""
    return BASE_CSS + service_css.read_bytes()
