"""`sentinel analyze CAPTURE`: replay a capture through an ephemeral stack, report findings.

The stack lives in a temporary directory and is the same code as production: broker process,
topics, Faust worker, ClickHouse sink and the embedded store. The report lists what the read API
would return for the same data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from processors.runs.source_signals import watermark_signal
from producers.captures.replay import ReplayStats, replay
from producers.publisher import KafkaPublisher
from runtime.alerting_config import AlertingConfig
from runtime.config import BrokerKind, Settings
from runtime.kafka_clients import consumer_config, producer_config
from schemas.capture import CaptureRecord, read_capture
from schemas.messages import Anomaly, RunState
from sentinel.api import run_view
from sentinel.replay_wiring import build_replay_targets
from sentinel.run_queries import RunFilters, list_runs_sql
from sentinel.stack import EmbeddedStack
from sinks.alerts.backtest import backtest
from sinks.clickhouse.rows import row_to_run_state

log = logging.getLogger("sentinel.analyze")
OFFLINE_LATENESS_S = 100 * 365 * 24 * 3600.0  # event time alone never closes a run mid-replay


def analyze_capture(
    capture: Path,
    settings: Settings,
    broker: BrokerKind = BrokerKind.AUTO,
    timeout: float = 180.0,
    bootstrap: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], ReplayStats]:
    """Replay `capture` through an ephemeral stack; with `bootstrap`, on that Kafka cluster
    under a topic prefix of its own (``sentinel-analyze-<random>.``) instead of a new broker.
    `progress(records sent, total)` is called as the replay goes."""
    records = list(read_capture(capture))  # validate the whole file before starting anything
    with tempfile.TemporaryDirectory(prefix="sentinel-analyze-") as tmp:
        run_settings = analysis_settings(settings, Path(tmp), bootstrap)
        stack = EmbeddedStack(run_settings, broker_kind=broker)
        try:
            stack.start()
            stats = replay_letting_time_pass(
                stack, records, settings.tracking.settle_s, timeout, progress=progress
            )
            report = findings(stack, settings.alerting)
        finally:
            stack.stop()
    return report, stats


def findings(stack: EmbeddedStack, alerting: AlertingConfig) -> dict[str, Any]:
    """What a replay found: every run as the API shows it, every anomaly, and what each
    receiver would have been sent (the dispatcher's decisions replayed in event time over what
    the worker published; nothing is sent)."""
    return {
        "runs": [run_view(run) for run in fetch_all_runs(stack)],
        "anomalies": fetch_anomalies(stack),
        "alerts": [sent.view() for sent in backtest(alerting, alert_inputs(stack))],
    }


def analysis_settings(settings: Settings, data_dir: Path, bootstrap: str | None) -> Settings:
    """The user's settings, made fit for a short offline replay of one capture."""
    topics = settings.topics
    if bootstrap:
        topics = topics.model_copy(update={"prefix": f"sentinel-analyze-{uuid.uuid4().hex[:12]}."})
    # Time-driven decisions wait for the end of the capture (see processors.runs.tracking).
    tracking = settings.tracking.model_copy(
        update={
            "idle_watermark_s": None,
            "allowed_lateness_s": OFFLINE_LATENESS_S,
            # One bounded capture: every run is kept to the end, and nothing in it is too late.
            "retain_ended_s": OFFLINE_LATENESS_S,
            # Short-lived: commit and flush often, so each step is seen done sooner.
            "commit_interval_s": 0.2,
        }
    )
    # The capture alone decides what is found: no baselines from any store's history.
    warm_start = settings.anomalies.warm_start.model_copy(update={"enabled": False})
    # Nothing is sent: alerts are back-tested after the replay (sinks.alerts.backtest).
    alerting = settings.alerting.model_copy(update={"enabled": False})
    return settings.model_copy(
        update={
            "embedded": settings.embedded.model_copy(update={"data_dir": data_dir}),
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": bootstrap}),
            "webhooks": settings.webhooks.model_copy(update={"spool_dir": None}),
            "tracking": tracking,
            "topics": topics,
            "sink": settings.sink.model_copy(update={"batch_seconds": 0.2}),
            "anomalies": settings.anomalies.model_copy(update={"warm_start": warm_start}),
            "alerting": alerting,
        }
    )


def replay_letting_time_pass(
    stack: EmbeddedStack,
    records: list[CaptureRecord],
    settle_s: float,
    timeout: float,
    progress: Callable[[int, int], None] | None = None,
    final: bool = True,
) -> ReplayStats:
    """`final=False` (the demo): the end of the capture is not the end of input; event time is
    said to reach the last record, and input may follow."""
    assert stack.owner is not None
    targets = build_replay_targets(stack.settings, stack.owner.intake)
    publisher = stack.owner.intake.publisher  # the replay's: no producer made per quiet gap
    stats = ReplayStats()
    for chunk, quiet_until in quiet_chunks(records, settle_s):
        step = _offset_progress(progress, stats.records, len(records))
        stats = stats.merged(asyncio.run(replay(chunk, targets, progress=step)))
        stack.wait_consumed(timeout=timeout, settle=0.3)
        # Nothing happened until the next record: event time has passed; runs that ended
        # before are settled now, in the order they ended.
        time_passed(stack.settings, quiet_until, final=False, publisher=publisher)
        stack.wait_consumed(timeout=timeout, settle=0.3)
    log.info("replayed %s", stats.summary())
    if records:
        end = max(record.ts for record in records)
        time_passed(stack.settings, end, final=final, publisher=publisher)
        stack.wait_consumed(timeout=timeout)
    return stats


def _offset_progress(
    progress: Callable[[int, int], None] | None, done: int, total: int
) -> Callable[[int, int], None] | None:
    """A chunk's progress as progress through the whole capture."""
    if progress is None:
        return None
    return lambda sent, _chunk_total: progress(done + sent, total)


def quiet_chunks(
    records: list[CaptureRecord], quiet_s: float
) -> Iterator[tuple[list[CaptureRecord], datetime]]:
    """The capture cut at its quiet gaps (longer than `quiet_s`): each chunk with the time just
    before the next record, which event time is known to reach once the chunk is processed."""
    chunk: list[CaptureRecord] = []
    for record in records:
        if chunk and (record.ts - chunk[-1].ts).total_seconds() > quiet_s:
            yield chunk, record.ts - timedelta(microseconds=1)
            chunk = []
        chunk.append(record)
    if chunk:
        yield chunk, chunk[-1].ts


def end_of_input(settings: Settings, at: datetime) -> None:
    """Tell every tracker partition that event time reached `at` and no input will follow."""
    time_passed(settings, at, final=True)


def time_passed(
    settings: Settings, at: datetime, final: bool, publisher: KafkaPublisher | None = None
) -> None:
    """Tell every tracker partition that event time reached `at` (`final`: end of input);
    through `publisher` if given (a replay's own), else a publisher made for it."""
    tick = watermark_signal(at, final=final, source="replay").to_bytes()
    sender = publisher or KafkaPublisher(producer_config(settings), component="analyze")
    try:
        topic = settings.topic_names.run_signals
        sent = [
            sender.submit(topic, None, tick, partition=partition)
            for partition in range(settings.topics.partitions)
        ]
        for future in sent:
            future.result(30)
    finally:
        if publisher is None:
            sender.close()


def fetch_anomalies(stack: EmbeddedStack) -> list[dict[str, Any]]:
    assert stack.owner is not None and stack.owner.store is not None
    store = stack.owner.store
    sql = (
        "SELECT anomaly_id, run_id, category, type, severity, subject, summary, evidence"
        f" FROM {store.database}.anomalies FINAL ORDER BY run_id, type, subject"
    )
    rows = store.query_rows(sql, {})
    for row in rows:
        if isinstance(row.get("evidence"), str):
            row["evidence"] = json.loads(row["evidence"])
    return [dict(row) for row in rows]


def alert_inputs(stack: EmbeddedStack) -> list[tuple[RunState | Anomaly, int]]:
    """Every run snapshot and anomaly the worker published, with its partition."""
    names = stack.settings.topic_names
    events: list[tuple[RunState | Anomaly, int]] = []
    for topic, model in ((names.runs, RunState), (names.anomalies, Anomaly)):
        for value, partition in read_all(stack.settings, topic):
            events.append((model.from_bytes(value), partition))
    return events


def read_all(settings: Settings, topic: str, timeout: float = 60.0) -> list[tuple[bytes, int]]:
    """(value, partition) of every message of `topic`, from its start to its current end."""
    # The end of a partition is reported as soon as a fetch finds nothing more there, not
    # after the broker held the fetch for its default 500 ms.
    extra = {"enable.partition.eof": True, "fetch.wait.max.ms": 10}
    consumer = Consumer(consumer_config(settings, f"{settings.topics.prefix}analyze", **extra))
    found: list[tuple[bytes, int]] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        remaining = set(partitions)
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.1):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(message.partition())
                    continue
                value = message.value()
                if value is not None:
                    found.append((value, message.partition() or 0))
        if remaining:
            raise TimeoutError(f"{topic} not read to its end within {timeout:.0f}s")
    finally:
        consumer.close()
    return found


def fetch_all_runs(stack: EmbeddedStack) -> list[RunState]:
    assert stack.owner is not None and stack.owner.store is not None
    store = stack.owner.store
    sql, params = list_runs_sql(store.database, RunFilters(), limit=1_000_000, cursor=None)
    return [row_to_run_state(row) for row in store.query_rows(sql, params)]


def render_text(report: dict[str, Any], stats: ReplayStats) -> str:
    lines = [f"Replayed {stats.summary()}", ""]
    runs = report["runs"]
    lines.append(f"Runs ({len(runs)}):")
    for run in runs:
        duration = f"{run['duration_s']:.0f}s" if run.get("duration_s") is not None else "-"
        lines.append(
            f"  {run['run_id']}  {run['status']:<9}  {run.get('pipeline') or '-'}"
            f"  branch={run.get('branch') or '-'}  duration={duration}"
            f"  stages={len(run.get('stages') or [])}"
        )
        for stage in run.get("stages") or []:
            lines.append(f"      stage {stage['name']}: {stage['status']}")
    lines.append("")
    lines.append(f"Anomalies ({len(report['anomalies'])})")
    for anomaly in report["anomalies"]:
        lines.append(f"  [{anomaly['severity']}] {anomaly['type']}: {anomaly['summary']}")
    lines.append("")
    lines.append(f"Alerts ({len(report['alerts'])}), as each receiver would have been sent them:")
    for alert in report["alerts"]:
        lines.append(
            f"  {alert['at']}  to {alert['receiver']} ({alert['channel']}): {alert['title']}"
        )
    for problem in stats.rejected:
        lines.append(f"rejected: {problem}")
    return "\n".join(lines)


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True)
