"""PostgreSQL test helper: wait until a statement of another unit is blocked on a lock, so a
test can make two units meet in a known order (the second waits for the first's commit)."""

from __future__ import annotations

import time

import sqlalchemy as sa

_WAITING = sa.text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    " AND query LIKE :statement"
)


def wait_for_lock_wait(engine: sa.Engine, statement: str, seconds: float = 10.0) -> None:
    """Return once a backend runs a statement starting with ``statement`` and waits for a
    lock; AssertionError after ``seconds``."""
    deadline = time.monotonic() + seconds
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            waiting = connection.scalar(_WAITING, {"statement": statement + "%"})
            connection.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError(f"no {statement!r} waited for a lock within {seconds} s")
