"""Fixtures of the ClickHouse tests: a migrated store on the embedded engine, per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.config import Settings
from sinks.clickhouse import Store, migrate, open_store


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """The store of the module's `settings`, migrated (modules may refine it)."""
    opened = open_store(settings)
    try:
        migrate(opened)
        yield opened
    finally:
        opened.close()
