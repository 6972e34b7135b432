"""`sentinel analyze` of captures of growing size, beside producing the same records raw.

    .venv/bin/python bench/analyze_speed.py [--lines 10000] [--bootstrap host:port]

Captures (each replayed as `sentinel analyze` does it: `analyze_capture`'s steps, timed apart):

- `bare_job`: one Kubernetes Job of the scenarios (48 records, no quiet gap);
- `side_by_side`: seven teams' nightly CronJobs over 11 nights (3,027 records, 12 quiet gaps);
- `bare_job + N lines`: the same Job with N more log lines (bench/capture_gen.py), no gap.

Phases: start (the ephemeral stack: its own broker unless `--bootstrap`, the store, the worker,
until ready), replay (every record published through the live producers' normalisation, with
event time passing at each quiet gap, until the worker and the sink are done), findings (runs,
anomalies and back-tested alerts read back). Baseline, in the same run on the same broker: the
messages the replay published (read back from its input topics) produced raw with
confluent-kafka into a fresh topic, every one acknowledged. Prints Markdown rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_kafka import raw_produce  # noqa: E402
from capture_gen import SCENARIOS, more_lines, read, write  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from runtime.config import BrokerKind, Settings, load_settings  # noqa: E402
from runtime.kafka_clients import admin_config  # noqa: E402
from schemas.capture import read_capture  # noqa: E402
from sentinel.analyze import (  # noqa: E402
    analysis_settings,
    findings,
    quiet_chunks,
    read_all,
    replay_letting_time_pass,
)
from sentinel.stack import EmbeddedStack  # noqa: E402

HISTORY = REPO / "tests" / "data" / "anomaly_scenarios" / "side_by_side.jsonl"


def fresh_topic(settings: Settings) -> str:
    """A topic of the run's partitions that nothing else writes: the raw baseline's."""
    topic = f"{settings.topics.prefix}bench-raw"
    admin = AdminClient(admin_config(settings))
    new = NewTopic(topic, num_partitions=settings.topics.partitions, replication_factor=1)
    admin.create_topics([new])[topic].result(30)
    return topic


def analyze(name: str, capture: Path, bootstrap: str | None, tmp: Path) -> str:
    records = list(read_capture(capture))
    base = load_settings(None, logging={"level": "WARNING"})
    gaps = sum(1 for _ in quiet_chunks(records, base.tracking.settle_s)) - 1
    settings = analysis_settings(base, tmp / name, bootstrap)
    stack = EmbeddedStack(settings, broker_kind=BrokerKind.APACHE_KAFKA)
    print(f"{name}: {len(records)} records, {gaps} quiet gaps", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        stack.start()
        up = time.perf_counter()
        replay_letting_time_pass(stack, records, base.tracking.settle_s, timeout=600)
        replayed = time.perf_counter()
        report = findings(stack, base.alerting)
        done = time.perf_counter()
        names = stack.settings.topic_names
        values = [
            value
            for topic in (names.ci, names.k8s, names.logs)
            for value, _partition in read_all(stack.settings, topic)
        ]
        topic = fresh_topic(stack.settings)
        raw_s = raw_produce(stack.settings, topic, [(None, value) for value in values])
    finally:
        stack.stop()
    start_s, replay_s, findings_s = up - started, replayed - up, done - replayed
    return (
        f"| {name} | {len(records)} | {gaps} | {len(report['runs'])} | {start_s:.1f} s "
        f"| {replay_s:.1f} s | {findings_s:.1f} s | {done - started:.1f} s "
        f"| {len(records) / replay_s:,.0f}/s | {raw_s:.2f} s | {len(values) / raw_s:,.0f}/s "
        f"| {raw_s / replay_s:.4f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--bootstrap", default=os.environ.get("SENTINEL_TEST_KAFKA_BOOTSTRAP"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-") as name:
        tmp = Path(name)
        bare = SCENARIOS / "bare_job.jsonl"
        lines = write(more_lines(read(bare), args.lines), tmp / "lines.jsonl")
        captures = [
            ("bare_job", bare),
            ("side_by_side", HISTORY),
            (f"bare_job + {args.lines} lines", lines),
        ]
        for label, capture in captures:
            rows.append(analyze(label, capture, args.bootstrap, tmp))
    broker = f"--bootstrap {args.bootstrap}" if args.bootstrap else "its own broker"
    print(f"broker: {broker}")
    print(
        "| capture | records | quiet gaps | runs | start | replay | findings | total "
        "| replay rate | raw produce | raw rate | raw/replay time |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
