"""The Faust worker's throughput beside a raw aiokafka consumer reading the same messages.

    .venv/bin/python bench/worker_throughput.py [--lines 20000] [--runs 2000]
        [--workers 1] [--partitions 3] [--bootstrap host:port] [--profile out.speedscope]

Two workloads, each produced to Kafka before the worker starts (a backlog, as after an outage):

- log lines: a bare Job of the scenarios with N extra lines (bench/capture_gen.py: go test and
  application lines), replayed through the production replay path (normalisation, publisher);
  the worker routes each line (signals, levels), then tracks it in its run (test results,
  templates, windows);
- run events: `workflow_run` requested + completed webhooks of R runs, normalised, on
  `sentinel.ci`; the tracker folds each into its run and publishes the run state.

Worker: `sentinel worker` (the production process), timed from its first processed message
until it is quiet (every input processed to its end offset, no send in flight: its /progress),
wall clock and its own CPU seconds (from /proc). With `--workers N`, N worker processes in one
consumer group share the backlog (give the topics `--partitions` enough for all: 6 for 2), timed
from the first message any of them processed until the union of their /progress answers is
quiet (each partition at the furthest offset any of them processed: their /progress answers say
what was processed, where the group's committed offsets would lag by the commit interval and
measure the commit, not the work); CPU is theirs summed. Baseline: an aiokafka consumer in this
process assigned the same partitions, reading every message and doing nothing. Both read the same
backlog on the same broker in the same run. Prints Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402
from bench_kafka import cpu_seconds, kafka  # noqa: E402
from capture_gen import SCENARIOS, more_lines, read, write  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

from producers.captures.replay import replay  # noqa: E402
from producers.webhooks.github import normalize  # noqa: E402
from runtime.config import Settings, load_settings  # noqa: E402
from runtime.kafka_clients import admin_config, producer_config  # noqa: E402
from runtime.progress_monitor import BrokerOffsets  # noqa: E402
from schemas.capture import read_capture  # noqa: E402
from schemas.messages import CiEvent  # noqa: E402
from sentinel.replay_wiring import build_replay_targets  # noqa: E402
from sentinel.stack import WebhookIntake, WorkerProcess  # noqa: E402
from sentinel.topic_admin import ensure_topics  # noqa: E402

CORPUS = REPO / "tests" / "data" / "github-webhooks" / "workflow_run"


def settings_for(tmp: Path, bootstrap: str, name: str, partitions: int) -> Settings:
    return load_settings(
        None,
        topics={"prefix": f"bw{time.time_ns() % 10**9}{name}.", "partitions": partitions},
        kafka={"bootstrap_servers": bootstrap},
        embedded={"data_dir": str(tmp / name)},
        webhooks={"spool_dir": None},
        tracking={"idle_watermark_s": None, "allowed_lateness_s": 10 * 365 * 24 * 3600.0},
        anomalies={"warm_start": {"enabled": False}},
        alerting={"enabled": False},
        logging={"level": "INFO"},
    )


class QuietProbe:
    """Are the workers done? Their /progress (processed offsets, sends in flight) against the
    end offsets of their inputs; a partition no worker has touched since it started counts as
    done up to the group's committed offset (both read by `BrokerOffsets`, the partition
    watchdog's reader).

    Several workers of one group: the union of their answers, each partition at the furthest
    offset any of them processed (a partition that moved in a rebalance was processed up to
    there by its earlier owner; its new owner may still re-read a few uncommitted messages).
    """

    def __init__(self, settings: Settings, topics: tuple[str, ...]) -> None:
        self.offsets = BrokerOffsets(admin_config(settings), settings.worker_app_id)
        self.http = httpx.Client(timeout=5)
        self.partitions = [(t, p) for t in topics for p in range(settings.topics.partitions)]

    def quiet(self, *ops_ports: int) -> bool:
        done: dict[tuple[str, int], int] = {}
        for port in ops_ports:
            try:
                progress = self.http.get(f"http://127.0.0.1:{port}/progress").json()
            except (httpx.HTTPError, ValueError):
                return False  # not serving yet (starting)
            if progress["sends_in_flight"]:
                return False
            for p in progress["processed"]:
                tp = (p["topic"], p["partition"])
                done[tp] = max(done.get(tp, 0), p["offset"])
        ends = self.offsets.ends(self.partitions)
        untouched = [tp for tp, end in ends.items() if end > 0 and tp not in done]
        for tp, committed in self.offsets.committed(untouched).items():
            if committed is not None:
                done[tp] = committed
        return all(done.get(tp, 0) >= end for tp, end in ends.items())

    def close(self) -> None:
        self.http.close()


def produce_log_lines(settings: Settings, lines: int, tmp: Path) -> int:
    capture = write(more_lines(read(SCENARIOS / "bare_job.jsonl"), lines), tmp / "lines.jsonl")
    intake = WebhookIntake(settings)
    intake.start()
    try:
        stats = asyncio.run(
            replay(list(read_capture(capture)), build_replay_targets(settings, intake))
        )
    finally:
        intake.stop()
    return stats.records


def produce_run_events(settings: Settings, runs: int) -> int:
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    requested = json.loads((CORPUS / "requested.payload.json").read_text())
    completed = json.loads((CORPUS / "completed.payload.json").read_text())
    now = datetime.now(UTC)
    count = 0
    for number in range(runs):
        for step, body in enumerate((requested, completed)):
            payload = json.loads(json.dumps(body))
            payload["workflow_run"]["id"] = 700_000 + number
            event = normalize("workflow_run", f"b-{number}-{step}", payload, now)
            assert isinstance(event, CiEvent)
            producer.produce(settings.topic_names.ci, key=event.run_id, value=event.to_bytes())
            producer.poll(0)
            count += 1
    assert producer.flush(60) == 0
    return count


async def raw_consume(settings: Settings, topics: tuple[str, ...], expected: int) -> float:
    """Seconds an aiokafka consumer takes to read `expected` messages from the start."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or await _parts(consumer, topic))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, started = 0, time.perf_counter()
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(records) for records in batch.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def _parts(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


def worker_run(
    settings: Settings, inputs: tuple[str, ...], tmp: Path, profile: str | None, count: int = 1
) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `count` workers in one group, from the first message any
    of them processed until all are quiet (profile: of the first)."""
    workers = [
        WorkerProcess(settings, tmp / f"{settings.topics.prefix}worker-{n}.log", None)
        for n in range(count)
    ]
    for worker in workers:
        worker.start()
    pids = [worker.proc.pid for worker in workers if worker.proc is not None]
    worker, ports = workers[0], [w.ops_port for w in workers]
    probe = QuietProbe(settings, inputs)
    spy = None
    try:
        while not any(started_processing(probe, port) for port in ports):
            for each in workers:
                assert each.alive(), each.log_path.read_text()[-2000:]
            time.sleep(0.01)
        started, cpu_started = time.perf_counter(), sum(cpu_seconds(pid) for pid in pids)
        if profile:
            py_spy = str(Path(sys.executable).with_name("py-spy"))
            form = "raw" if profile.endswith(".txt") else "speedscope"
            command = [py_spy, "record", "-p", str(pids[0]), "-g", "-r", "200"]
            spy = subprocess.Popen(
                [*command, "-f", form, "-o", profile],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        # Asked 20 times a second: each answer costs the worker's event loop a little (its ops
        # server shares the GIL), so more often would slow what is measured.
        while not probe.quiet(*ports):
            time.sleep(0.05)
        wall = time.perf_counter() - started
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_started
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        probe.close()
        for each in workers:
            each.stop()
    return wall, cpu


def started_processing(probe: QuietProbe, port: int) -> bool:
    try:
        return bool(probe.http.get(f"http://127.0.0.1:{port}/progress").json()["processed"])
    except (httpx.HTTPError, ValueError):
        return False  # not serving yet


def bench(name: str, settings: Settings, count: int, inputs: tuple[str, ...], tmp: Path,
          profile: str | None, workers: int) -> str:  # fmt: skip
    raw = asyncio.run(raw_consume(settings, inputs, count))
    wall, cpu = worker_run(settings, inputs, tmp, profile, workers)
    return (
        f"| {name} | {workers} | {settings.topics.partitions} | {count} "
        f"| {wall:.2f} s | {count / wall:,.0f}/s | {cpu:.2f} s "
        f"| {count / cpu:,.0f}/s | {raw:.3f} s | {count / raw:,.0f}/s | {raw / wall:.3f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes in the group")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of every topic")
    parser.add_argument("--bootstrap", default=os.environ.get("SENTINEL_TEST_KAFKA_BOOTSTRAP"))
    parser.add_argument(
        "--profile", help="py-spy profile of the worker to this file (.txt: collapsed stacks)"
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="sentinel-bench-") as name,
        kafka(args.bootstrap, Path(name) / "kafka") as bootstrap,
    ):
        tmp = Path(name)
        rows = []
        if args.lines:
            settings = settings_for(tmp, bootstrap, "lines", args.partitions)
            ensure_topics(settings)
            count = produce_log_lines(settings, args.lines, tmp)
            names = settings.topic_names
            rows.append(bench("log lines (+ Job objects)", settings, count,
                              (names.k8s, names.logs), tmp, args.profile,
                              args.workers))  # fmt: skip
        if args.runs:
            settings = settings_for(tmp, bootstrap, "runs", args.partitions)
            ensure_topics(settings)
            count = produce_run_events(settings, args.runs)
            rows.append(bench("run events", settings, count, (settings.topic_names.ci,),
                              tmp, None, args.workers))  # fmt: skip
    print(
        "| input | workers | partitions | messages | worker wall | worker rate | worker CPU "
        "| per CPU-second | raw consumer | raw rate | raw/worker time |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
