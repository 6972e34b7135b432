"""Fault injection at the ClickHouse client boundary (the clickhouse-connect client object).

The store's own code runs unchanged; only the client's `insert` misbehaves, the way a real
client does: `OperationalError` with the message clickhouse-connect gives when the server
cannot be reached, or the process dying right after an insert returned.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError

UNREACHABLE = (
    "Error HTTPConnectionPool(host='clickhouse', port=8123): Max retries exceeded with url: / "
    "(Caused by NewConnectionError('Failed to establish a new connection: "
    "[Errno 111] Connection refused')) executing HTTP request attempt 1 (http://clickhouse:8123)"
)


class FaultyClient:
    """Delegates to `inner`; `insert` fails while `outage_until` (monotonic) is in the future,
    and kills the process with SIGKILL after `kill_after_inserts` successful inserts."""

    def __init__(self, inner: Any, kill_after_inserts: int | None = None) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.kill_after_inserts = kill_after_inserts
        self.outage_until = 0.0
        self.inserts = 0
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if time.monotonic() < self.outage_until:
                self.refused += 1
                raise OperationalError(UNREACHABLE)
        result = self._inner.insert(*args, **kwargs)
        with self._lock:
            self.inserts += 1
            if self.kill_after_inserts is not None and self.inserts >= self.kill_after_inserts:
                # The insert landed; the offsets of its batch are not committed yet.
                os.kill(os.getpid(), signal.SIGKILL)
        return result
