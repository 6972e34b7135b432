"""Store access for the read side: queries off the event loop, timed per request."""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any, Protocol


class RunStore(Protocol):
    """What the read side needs of `sinks.clickhouse.store.Store`."""

    @property
    def database(self) -> str: ...

    def query_rows(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...

    def ping(self) -> bool: ...


class QueryClock:
    """Store time spent on behalf of one request (bench/run_page.py compares it with the
    whole request's time)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.queries = 0


_CLOCK: contextvars.ContextVar[QueryClock | None] = contextvars.ContextVar(
    "sentinel_query_clock", default=None
)


def start_clock() -> QueryClock:
    """Count the store time of queries made from this context (and tasks it starts) on."""
    clock = QueryClock()
    _CLOCK.set(clock)
    return clock


class Reader:
    def __init__(self, store: RunStore) -> None:
        self.store = store

    @property
    def database(self) -> str:
        return self.store.database

    async def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        clock = _CLOCK.get()
        started = time.perf_counter()
        try:
            return await asyncio.to_thread(self.store.query_rows, sql, params or {})
        finally:
            if clock is not None:
                clock.seconds += time.perf_counter() - started
                clock.queries += 1
