"""Which webhook deliveries were already accepted, so a repeated delivery id produces nothing.

Kept in SQLite (standard library) next to the spool so it survives a restart of the receiver;
entries expire after ``webhooks.dedup_ttl_hours``. A delivery is recorded only after it was
accepted (published or spooled), so a failed attempt can be retried by the sender.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class DeliveryLedger:
    def __init__(self, path: Path, ttl_hours: float = 72.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # No fsync per delivery (WAL's NORMAL: synced at checkpoints). A crash of the receiver
        # loses nothing; a power loss of its node may forget the last deliveries, and a sender
        # retrying one then publishes it again, which the run tracker absorbs (a CI event is
        # folded once per event id). With FULL, the fsync on the event loop was a quarter of
        # the receiver's time per webhook (bench/producer_throughput.py).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS deliveries "
            "(delivery_id TEXT PRIMARY KEY, provider TEXT NOT NULL, accepted_at REAL NOT NULL)"
        )
        self._ttl_s = ttl_hours * 3600
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._last_prune = 0.0

    def claim(self, provider: str, delivery_id: str) -> bool:
        """True if this delivery is new and now ours to process; False if seen or in flight."""
        key = f"{provider}:{delivery_id}"
        with self._lock:
            self._prune()
            if key in self._in_flight:
                return False
            row = self._db.execute(
                "SELECT 1 FROM deliveries WHERE delivery_id = ?", (key,)
            ).fetchone()
            if row is not None:
                return False
            self._in_flight.add(key)
            return True

    def commit(self, provider: str, delivery_id: str) -> None:
        key = f"{provider}:{delivery_id}"
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?)", (key, provider, time.time())
            )
            self._in_flight.discard(key)

    def release(self, provider: str, delivery_id: str) -> None:
        """Give up a claim without recording it (the delivery failed and may be retried)."""
        with self._lock:
            self._in_flight.discard(f"{provider}:{delivery_id}")

    def _prune(self) -> None:
        now = time.time()
        if now - self._last_prune > 600:
            self._db.execute("DELETE FROM deliveries WHERE accepted_at < ?", (now - self._ttl_s,))
            self._last_prune = now

    def close(self) -> None:
        with self._lock:
            self._db.close()
