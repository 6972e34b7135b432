"""A store filled with scenario runs through the real pipeline: the captures are replayed
through one embedded stack (the session's Kafka broker, the Faust worker, the sink, the
embedded ClickHouse engine), as `sentinel analyze` does, and the store's directory is kept
afterwards for the read API and the pages to serve."""

from __future__ import annotations

import uuid
from pathlib import Path

from runtime.config import Settings, load_settings
from schemas.capture import read_capture
from sentinel.analyze import _replay_letting_time_pass, analysis_settings
from sentinel.stack import EmbeddedStack
from tests.support.paths import DATA

SCENARIOS = DATA / "anomaly_scenarios"


def scenario_settings(data_dir: Path, bootstrap: str, config: Path | None = None) -> Settings:
    base = load_settings(config) if config is not None else load_settings(None)
    settings = analysis_settings(base, data_dir, bootstrap)
    prefix = f"ui{uuid.uuid4().hex[:10]}."
    return settings.model_copy(
        update={
            "topics": settings.topics.model_copy(update={"prefix": prefix}),
            # The captures are from the past: the log TTL would drop their lines at once.
            "store": settings.store.model_copy(update={"log_ttl_days": 3650}),
        }
    )


def replay_scenarios(names: list[str], data_dir: Path, bootstrap: str) -> Settings:
    """Replay the named scenario captures, in order, into a store under `data_dir`; return
    settings that open that store (the stack is stopped: the directory is free)."""
    config = SCENARIOS / f"{names[0]}.config.yaml"
    settings = scenario_settings(data_dir, bootstrap, config)
    stack = EmbeddedStack(settings)
    try:
        stack.start()
        for name in names:
            records = list(read_capture(SCENARIOS / f"{name}.jsonl"))
            _replay_letting_time_pass(stack, records, settings.tracking.settle_s, timeout=180)
    finally:
        stack.stop()
    return settings
