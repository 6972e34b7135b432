"""Store access for the read side: queries off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class RunStore(Protocol):
    """What the read side needs of `sinks.clickhouse.store.Store`."""

    @property
    def database(self) -> str: ...

    def query_rows(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...

    def ping(self) -> bool: ...


class Reader:
    def __init__(self, store: RunStore) -> None:
        self.store = store

    @property
    def database(self) -> str:
        return self.store.database

    async def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.store.query_rows, sql, params or {})
