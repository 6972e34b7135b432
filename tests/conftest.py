"""Shared fixtures: one real Apache Kafka broker per test session, per-test settings.

The broker is the official Apache Kafka (jars from Maven Central, cached in the git-ignored
`.cache/` of the repository unless $SENTINEL_CACHE_DIR says otherwise), single node in KRaft mode
on a free loopback port. Set SENTINEL_TEST_KAFKA_BOOTSTRAP=host:port to use a broker that is
already running instead, and SENTINEL_TEST_KAFKA_VERSION to test another Kafka release.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Settings, load_settings

TEST_KAFKA_VERSION = os.environ.get("SENTINEL_TEST_KAFKA_VERSION", "4.1.1")
REPO = Path(__file__).resolve().parents[1]
# Set before any broker starts; `sentinel up` subprocesses of the tests inherit it.
os.environ.setdefault("SENTINEL_CACHE_DIR", str(REPO / ".cache"))


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("SENTINEL_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    from sentinel.brokers import ApacheKafkaBroker

    broker = ApacheKafkaBroker(tmp_path_factory.mktemp("kafka"), TEST_KAFKA_VERSION)
    broker.start(timeout=120)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def make_settings(tmp_path: Path, unique_prefix: str) -> Callable[..., Settings]:
    """Settings isolated per test: own topic prefix, own data dir; sections may be overridden."""

    def factory(bootstrap: str | None = None, **sections: dict[str, Any]) -> Settings:
        overrides: dict[str, dict[str, Any]] = {
            "topics": {"prefix": unique_prefix, "partitions": 3},
            "embedded": {"data_dir": str(tmp_path / "data")},
            "sink": {"batch_seconds": 0.2},
            "kafka": {"delivery_timeout_s": 5.0},
            # Test payloads carry timestamps from years ago: with the live wall clock those
            # runs would time out while a test waits on them. Tests of the clock set it.
            "tracking": {"idle_watermark_s": None},
        }
        if bootstrap:
            overrides["kafka"]["bootstrap_servers"] = bootstrap
        for name, values in sections.items():
            overrides.setdefault(name, {}).update(values)
        return load_settings(None, **overrides)

    return factory
