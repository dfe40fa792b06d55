"""One-time state of the development eID: person-picker transactions, authorization codes,
access tokens and used nonces, in SQLite (a file or ``:memory:``).

Codes are single use whatever happens: :meth:`EidStore.take` is one
``DELETE ... RETURNING`` statement, so of two concurrent token requests only one gets the
code (security.md I3), and an expired code is never returned.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from intyg import strict_json

__all__ = ["EidStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS item (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
)
"""


class EidStore:
    def __init__(self, path: str = ":memory:", clock: Callable[[], float] = time.time) -> None:
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    def ping(self) -> None:
        """Readiness: the store answers a query (raises sqlite3.Error otherwise)."""
        with self._lock:
            self._connection.execute("SELECT 1").fetchone()

    def put(self, kind: str, key: str, data: dict[str, Any], ttl: int) -> None:
        with self._lock:
            self._connection.execute("DELETE FROM item WHERE expires_at <= ?", (self._now(),))
            self._connection.execute(
                "INSERT INTO item (kind, key, data, expires_at) VALUES (?, ?, ?, ?)",
                (kind, key, strict_json.dumps(data), self._now() + ttl),
            )

    def add_once(self, kind: str, key: str, ttl: int) -> bool:
        """Record ``key``; False if it was already recorded and has not expired."""
        try:
            self.put(kind, key, {}, ttl)
        except sqlite3.IntegrityError:
            return False
        return True

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT data FROM item WHERE kind = ? AND key = ? AND expires_at > ?",
                (kind, key, self._now()),
            ).fetchone()
        return strict_json.loads(row[0]) if row else None

    def take(self, kind: str, key: str) -> dict[str, Any] | None:
        """Remove and return an unexpired item: the single-use read."""
        with self._lock:
            row = self._connection.execute(
                "DELETE FROM item WHERE kind = ? AND key = ? RETURNING data, expires_at",
                (kind, key),
            ).fetchone()
        if row is None or row[1] <= self._now():
            return None
        return strict_json.loads(row[0])

    def close(self) -> None:
        self._connection.close()
