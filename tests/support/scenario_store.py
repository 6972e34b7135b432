"""A store filled with scenario runs through the real pipeline, for the read API and the pages.

`python -m tests.support.scenario_store DATA_DIR BOOTSTRAP NAME...` replays the named captures
of tests/data/anomaly_scenarios/ (or tests/data/scenarios/) in order (oldest first: event time
only moves forward) through one embedded stack (that Kafka broker, the
Faust worker, the ClickHouse sink, the embedded engine under DATA_DIR), as `sentinel analyze`
does, and keeps the store. It runs as its own process because the embedded engine opens one
data directory per process; it writes DATA_DIR/scenario.json with the topic prefix it used and
what the worker's /metrics and /health answered at the end.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import httpx
from prometheus_client import REGISTRY, generate_latest

from runtime.config import Settings, load_settings
from schemas.capture import read_capture
from sentinel.analyze import analysis_settings, replay_letting_time_pass
from sentinel.stack import EmbeddedStack
from tests.support.paths import DATA

SCENARIOS = DATA / "anomaly_scenarios"
LOG_TTL_DAYS = 3650  # the captures are from the past: the default TTL would drop their lines


def scenario_settings(data_dir: Path, bootstrap: str, config: Path) -> Settings:
    settings = analysis_settings(load_settings(config), data_dir, bootstrap)
    prefix = f"ui{uuid.uuid4().hex[:10]}."
    return settings.model_copy(
        update={
            "topics": settings.topics.model_copy(update={"prefix": prefix}),
            "store": settings.store.model_copy(update={"log_ttl_days": LOG_TTL_DAYS}),
        }
    )


def replay_scenarios(names: list[str], data_dir: Path, bootstrap: str) -> dict[str, object]:
    # Detector thresholds of the first fault scenario named (they are all the same).
    configs = [SCENARIOS / f"{n}.config.yaml" for n in names]
    settings = scenario_settings(data_dir, bootstrap, next(c for c in configs if c.exists()))
    stack = EmbeddedStack(settings)
    try:
        stack.start()
        for name in names:
            folder = SCENARIOS if (SCENARIOS / f"{name}.jsonl").exists() else DATA / "scenarios"
            records = list(read_capture(folder / f"{name}.jsonl"))
            replay_letting_time_pass(stack, records, settings.tracking.settle_s, timeout=180)
        assert stack.worker is not None
        worker = f"http://127.0.0.1:{stack.worker.ops_port}"
        info: dict[str, object] = {
            "prefix": settings.topics.prefix,
            "worker_metrics": httpx.get(f"{worker}/metrics", timeout=10).text,
            "worker_health": httpx.get(f"{worker}/health", timeout=10).json(),
            # The sink ran in this process: its counters are in this registry.
            "sink_metrics": generate_latest(REGISTRY).decode(),
        }
    finally:
        stack.stop()
    (data_dir / "scenario.json").write_text(json.dumps(info))
    return info


if __name__ == "__main__":
    replay_scenarios(sys.argv[3:], Path(sys.argv[1]), sys.argv[2])
