"""Memory soak: the pipeline's processes under a steady load, their RSS and lag sampled.

    .venv/bin/python bench/soak.py [--rate 5000] [--duration 600] [--bootstrap host:port]
        [--warmup 60] [--interval 10] [--samples out.jsonl] [--data-dir DIR]

(`make soak ARGS="--rate 1000 --duration 300"`.) Goal (issue 17): RSS growth <= 50 MB per
component over a 10-minute soak at 5,000 events/s.

Components, each its own process started the way it runs in production:

- worker: `sentinel worker` (the Faust worker; `sentinel.stack.WorkerProcess`);
- store owner: `sentinel api --with-sink` (the HTTP API and webhook intake, the ClickHouse sink
  and the embedded ClickHouse engine). The embedded engine opens its data directory from one
  process only, so with the embedded store the sink and the API share this process (as in
  `sentinel up`, where the alert dispatcher is a thread of it too);
- alerts: `sentinel alerts` (the dispatcher needs no store, so it runs as its own process as in
  a deployment; a file receiver, every failed run summarised);
- broker: the Apache Kafka broker (a JVM, for information: not a component of ours), unless
  `--bootstrap` points at a running broker.

The load generator is a separate process: runs that start at a steady rate and each send, at
fixed offsets over their lifetime, normalised `workflow_run` webhooks (tests/data/github-webhooks)
to the CI topic, Kubernetes watch events of their two pods (`K8sNormalizer`, keyed as the
watcher keys them) and log lines of those pods (`to_log_line`, keyed as the log streamer keys
them): pytest output and application lines. Runs already under way when the soak starts are
joined mid-way, so the rate is the target rate from the first second.

Every `--interval` seconds: RSS (VmRSS, children included) and CPU of each process, lag of each
consumer group (committed offsets against end offsets of its input topics), events produced.
RSS "start" is the first sample after `--warmup` seconds (caches, connections and the first
runs' state settle in the first minute); growth is end minus start. Prints Markdown tables for
BENCHMARKS.md at the end. Not part of the test suite: it takes `--duration` plus about a minute.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import itertools
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import yaml  # noqa: E402
from capture_gen import RARE, TEMPLATES  # noqa: E402
from confluent_kafka import (  # noqa: E402
    Consumer,
    ConsumerGroupTopicPartitions,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]  # noqa: E402

from processors.runs.tracking import decode_state  # noqa: E402
from producers.k8s.log_lines import log_key, to_log_line  # noqa: E402
from producers.k8s.objects import K8sNormalizer, object_key  # noqa: E402
from producers.webhooks.github import normalize  # noqa: E402
from runtime.config import Settings, load_settings  # noqa: E402
from runtime.kafka_clients import admin_config, consumer_config, producer_config  # noqa: E402
from schemas.messages import CiEvent  # noqa: E402
from sentinel.brokers import free_port  # noqa: E402
from sentinel.stack import WorkerProcess, wait_groups_joined, worker_topics  # noqa: E402
from sentinel.topic_admin import ensure_topics  # noqa: E402
from sinks.clickhouse.sink import default_routes  # noqa: E402

CORPUS = REPO / "tests" / "data" / "github-webhooks" / "workflow_run"
MB = 1024 * 1024
GOAL_MB = 50
STORE_OWNER = "store owner (API + sink + ClickHouse)"
SHORT = {STORE_OWNER: "store", "load generator": "generator"}  # in the progress lines
NOT_OURS = ("broker", "load generator")  # sampled for the picture; the goal is not theirs
NAMESPACE = "ci-soak"
PIPELINES = ("ci", "e2e", "nightly", "lint-and-test", "release")
BRANCHES = ("main", "main", "main", "feature/checkout", "fix/flaky-db")
TESTS_PER_RUN = 30
FAIL_SHARE = 0.10  # runs whose test pod fails a test (the dispatcher then sends a summary)
OOM_SHARE = 0.02  # runs whose build pod is OOMKilled (an infra anomaly, an alert)


# --- the load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    log_lines: int = 185  # per run, over its two pods
    run_seconds: float = 60.0

    @property
    def ci(self) -> int:
        return 3  # workflow_run requested, in_progress, completed

    @property
    def k8s(self) -> int:
        return 12  # per pod: ADDED, Running, terminated, DELETED; Events Scheduled, Started

    @property
    def per_run(self) -> int:
        return self.ci + self.k8s + self.log_lines

    def describe(self, rate: float) -> str:
        runs = rate / self.per_run
        return (
            f"{runs:.1f} runs/s, each {self.run_seconds:.0f} s long with {self.per_run} events: "
            f"{self.ci} CI events (workflow_run requested, in_progress, completed; "
            f"{self.ci / self.per_run:.1%}), {self.k8s} Kubernetes events (2 pods: ADDED, "
            f"Running, terminated, DELETED, and their Scheduled and Started Events; "
            f"{self.k8s / self.per_run:.1%}), {self.log_lines} log lines (pytest output of "
            f"{TESTS_PER_RUN} tests and application lines; {self.log_lines / self.per_run:.1%}); "
            f"{FAIL_SHARE:.0%} of runs fail a test, {OOM_SHARE:.0%} have an OOMKilled pod"
        )


Step = tuple[float, str, int, str]


class Run:
    """One synthetic run: its events at offsets (seconds from its start), built when due."""

    def __init__(self, number: int, mix: Mix, ctx: GeneratorContext, start: float) -> None:
        rng = random.Random(number)
        self.ctx = ctx
        self.start = start
        self.number = number
        self.pipeline = PIPELINES[number % len(PIPELINES)]
        self.branch = rng.choice(BRANCHES)
        self.failed = rng.random() < FAIL_SHARE
        self.oom = rng.random() < OOM_SHARE
        self.provider_id = 900_000_000 + number
        repo = ctx.requested["repository"]["full_name"]
        self.run_id = f"github:{repo}:{self.provider_id}:1"
        self.created = ctx.wall(start)
        self.pods = [
            (f"{self.pipeline}-{number}-build", "build", str(uuid.UUID(int=rng.getrandbits(128)))),
            (f"{self.pipeline}-{number}-test", "pytest", str(uuid.UUID(int=rng.getrandbits(128)))),
        ]
        self.rng = rng
        length = mix.run_seconds
        # (offset s, what, pod index, argument): built into a message when due.
        steps: list[Step] = [
            (0.0, "ci", 0, "requested"),
            (1.0, "ci", 0, "in_progress"),
            (length, "ci", 0, "completed"),
        ]
        for index in range(2):
            steps += [
                (0.1, "pod", index, "ADDED/Pending"),
                (0.5, "event", index, "Scheduled"),
                (1.0, "pod", index, "MODIFIED/Running"),
                (1.2, "event", index, "Started"),
                (length - 1, "pod", index, "MODIFIED/Terminated"),
                (length + 1, "pod", index, "DELETED/Terminated"),
            ]
        lines = self.test_output()
        app = mix.log_lines - len(lines)
        span = length - 4
        steps += [(2 + span * k / max(app, 1), "app", 0, "") for k in range(app)]
        steps += [
            (2 + span * (k + 1) / (len(lines) + 1), "log", 1, text) for k, text in enumerate(lines)
        ]
        steps.sort(key=lambda step: step[0])
        self.steps = steps
        self.cursor = 0

    def emit(self, now: datetime) -> tuple[str, str, bytes]:
        """The message of the next step (topic, key, value), with `now` as its time."""
        _offset, what, index, arg = self.steps[self.cursor]
        self.cursor += 1
        if what == "ci":
            return self.ci(arg, now)
        if what == "pod":
            kind, phase = arg.split("/")
            return self.pod(index, kind, phase, now)
        if what == "event":
            return self.event(index, arg, now)
        return self.log(index, self.app_line(now) if what == "app" else arg, now)

    def due(self) -> float:
        return self.start + self.steps[self.cursor][0]

    def ci(self, action: str, now: datetime) -> tuple[str, str, bytes]:
        body = self.ctx.completed if action == "completed" else self.ctx.requested
        payload = copy.deepcopy(body)
        payload["action"] = action
        run = payload["workflow_run"]
        run.update(
            id=self.provider_id,
            run_number=self.number,
            name=self.pipeline,
            head_branch=self.branch,
            created_at=_iso(self.created),
            run_started_at=_iso(self.created + timedelta(seconds=1)),
            updated_at=_iso(now),
        )
        if action == "in_progress":
            run.update(status="in_progress", conclusion=None)
        elif action == "completed":
            run.update(status="completed", conclusion="failure" if self.failed else "success")
        delivery = f"soak-{self.number}-{action}"
        event = normalize("workflow_run", delivery, payload, now)
        assert isinstance(event, CiEvent)
        return self.ctx.topics["ci"], event.run_id, event.to_bytes()

    def pod(self, index: int, kind: str, phase: str, now: datetime) -> tuple[str, str, bytes]:
        name, container, uid = self.pods[index]
        status: dict[str, Any] = {"phase": phase, "podIP": f"10.1.{index}.{self.number % 250}"}
        state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        if phase == "Running":
            state = {"running": {"startedAt": _iso(now)}}
        elif phase == "Terminated":
            oom = self.oom and index == 0
            failed = oom or (self.failed and index == 1)
            status["phase"] = "Failed" if failed else "Succeeded"
            state = {
                "terminated": {
                    "exitCode": 137 if oom else int(failed),
                    "reason": "OOMKilled" if oom else ("Error" if failed else "Completed"),
                    "startedAt": _iso(self.created + timedelta(seconds=1)),
                    "finishedAt": _iso(now),
                }
            }
        status["containerStatuses"] = [
            {
                "name": container,
                "ready": phase == "Running",
                "restartCount": 0,
                "image": "python:3.11-slim",
                "state": state,
            }
        ]
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": uid,
                "resourceVersion": str(next(self.ctx.versions)),
                "creationTimestamp": _iso(self.created),
                "labels": {
                    "sentinel.io/run-id": self.run_id,
                    "app.kubernetes.io/name": self.pipeline,
                },
            },
            "spec": {
                "nodeName": f"node-{self.number % 7}",
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": container,
                        "image": "python:3.11-slim",
                        "resources": {"limits": {"memory": "1Gi"}},
                    }
                ],
            },
            "status": status,
        }
        event = self.ctx.normalizer.normalize(kind, obj, now)
        return self.ctx.topics["k8s"], object_key(event), event.to_bytes()

    def event(self, index: int, reason: str, now: datetime) -> tuple[str, str, bytes]:
        name, container, uid = self.pods[index]
        message = (
            f"Successfully assigned {NAMESPACE}/{name} to node-{self.number % 7}"
            if reason == "Scheduled"
            else f"Started container {container}"
        )
        obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{name}.{self.rng.getrandbits(56):x}",
                "namespace": NAMESPACE,
                "uid": str(uuid.UUID(int=self.rng.getrandbits(128))),
                "resourceVersion": str(next(self.ctx.versions)),
                "creationTimestamp": _iso(now),
            },
            "involvedObject": {"kind": "Pod", "name": name, "namespace": NAMESPACE, "uid": uid},
            "reason": reason,
            "message": message,
            "type": "Normal",
            "count": 1,
            "firstTimestamp": _iso(now),
            "lastTimestamp": _iso(now),
            "source": {"component": "default-scheduler" if reason == "Scheduled" else "kubelet"},
        }
        event = self.ctx.normalizer.normalize("ADDED", obj, now)
        return self.ctx.topics["k8s"], object_key(event), event.to_bytes()

    def test_output(self) -> list[str]:
        failing = self.rng.randrange(TESTS_PER_RUN) if self.failed else -1
        lines = [
            "============================= test session starts ==============================",
            "platform linux -- Python 3.11.7, pytest-8.3.4, pluggy-1.5.0",
            f"collecting ... collected {TESTS_PER_RUN} items",
        ]
        for k in range(TESTS_PER_RUN):
            outcome = "FAILED" if k == failing else "PASSED"
            percent = 100 * (k + 1) // TESTS_PER_RUN
            lines.append(
                f"tests/unit/test_{self.pipeline.replace('-', '_')}_{k % 6}.py::test_case_{k} "
                f"{outcome}{' ' * 20}[{percent:3d}%]"
            )
        if self.failed:
            lines.append(f"FAILED tests/unit/test_x.py::test_case_{failing} - AssertionError")
            lines.append(f"========================= 1 failed, {TESTS_PER_RUN - 1} passed =====")
        else:
            lines.append(f"============================= {TESTS_PER_RUN} passed ==============")
        return lines

    def app_line(self, now: datetime) -> str:
        rng = self.rng
        template = RARE if rng.random() < 0.002 else rng.choice(TEMPLATES)
        return template.format(
            ts=now.strftime("%H:%M:%S.%f")[:-3],
            id=f"{rng.getrandbits(40):010x}",
            n=rng.randrange(1, 5000),
            m=rng.randrange(1, 500),
            ms=rng.randrange(1, 900),
            w=rng.randrange(1, 9),
        )

    def log(self, index: int, text: str, now: datetime) -> tuple[str, str, bytes]:
        name, container, _uid = self.pods[index]
        raw = f"{_iso(now, nanos=True)} {text}".encode()
        line = to_log_line(NAMESPACE, name, container, raw, now, 64 * 1024, self.run_id)
        return self.ctx.topics["logs"], log_key(line), line.to_bytes()


def _iso(moment: datetime, nanos: bool = False) -> str:
    if nanos:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class GeneratorContext:
    topics: dict[str, str]
    normalizer: K8sNormalizer
    requested: dict[str, Any]
    completed: dict[str, Any]
    mono0: float
    wall0: datetime
    versions: Iterator[int] = field(default_factory=lambda: itertools.count(50_000_000))

    def wall(self, mono: float) -> datetime:
        return self.wall0 + timedelta(seconds=mono - self.mono0)


def generate(
    settings_json: str,
    rate: float,
    duration: float,
    mix: Mix,
    produced: Synchronized[int],
    by_topic: Any,
    stop: Any,
) -> None:
    """The load generator (its own process): runs started at rate / events-per-run a second."""
    settings = Settings.model_validate(json.loads(settings_json))
    names = settings.topic_names
    producer = Producer(producer_config(settings))
    now_mono = time.monotonic()
    ctx = GeneratorContext(
        topics={"ci": names.ci, "k8s": names.k8s, "logs": names.logs},
        normalizer=K8sNormalizer(settings.k8s),
        requested=json.loads((CORPUS / "requested.payload.json").read_text()),
        completed=json.loads((CORPUS / "completed.payload.json").read_text()),
        mono0=now_mono,
        wall0=datetime.now(UTC),
    )
    gap = mix.per_run / rate  # seconds between run starts
    lifetime = mix.run_seconds + 1
    heap: list[tuple[float, int, Run]] = []
    numbers = itertools.count()
    # Runs that started before the soak (their earlier events are skipped): full rate at once.
    start = now_mono - lifetime
    while start < now_mono:
        run = Run(next(numbers), mix, ctx, start)
        while run.cursor < len(run.steps) and run.due() < now_mono:
            run.cursor += 1
        if run.cursor < len(run.steps):
            heap.append((run.due(), run.number, run))
        start += gap
    heapq.heapify(heap)
    next_start, end = start, now_mono + duration
    topic_index = {names.ci: 0, names.k8s: 1, names.logs: 2}
    counts = [0, 0, 0]
    sent = 0
    while not stop.is_set():
        now = time.monotonic()
        if now >= end:
            break
        while next_start <= now:
            run = Run(next(numbers), mix, ctx, next_start)
            heapq.heappush(heap, (run.due(), run.number, run))
            next_start += gap
        wall = datetime.now(UTC)
        while heap and heap[0][0] <= now:
            _due, number, run = heapq.heappop(heap)
            topic, key, value = run.emit(wall)
            while True:
                try:
                    producer.produce(topic, key=key.encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
            counts[topic_index[topic]] += 1
            sent += 1
            if run.cursor < len(run.steps):
                heapq.heappush(heap, (run.due(), number, run))
        producer.poll(0)
        produced.value = sent
        for index, count in enumerate(counts):
            by_topic[index] = count
        wake = min(heap[0][0] if heap else next_start, next_start)
        time.sleep(max(0.0, min(wake - time.monotonic(), 0.05)))
    producer.flush(30)
    produced.value = sent


# --- the components --------------------------------------------------------------------------


@dataclass
class Component:
    name: str
    pid: Callable[[], int | None]
    log_path: Path | None


def spawn(
    settings: Settings, argv: list[str], log_path: Path, ops_port: int
) -> subprocess.Popen[bytes]:
    """`python -m sentinel <argv>` configured as WorkerProcess configures the worker."""
    config = settings.embedded.data_dir / f"{argv[0]}-settings.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    env = dict(os.environ, SENTINEL_CONFIG=str(config), SENTINEL_OPS__PORT=str(ops_port))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sentinel", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def rss_and_cpu(pid: int) -> tuple[int, float]:
    """(bytes resident, CPU seconds) of `pid` and its descendants."""
    rss, cpu = 0, 0.0
    for member in descendants(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
            stat = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) * 1024
        cpu += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


class Lags:
    """Committed offsets of each group against the end offsets of its inputs (admin requests)."""

    def __init__(self, settings: Settings, groups: dict[str, tuple[str, tuple[str, ...]]]) -> None:
        """`groups`: short name -> (consumer group id, its input topics)."""
        self.admin = AdminClient(admin_config(settings))
        self.ids = {name: group_id for name, (group_id, _inputs) in groups.items()}
        topics = self.admin.list_topics(timeout=10).topics
        self.partitions = {
            name: [TopicPartition(t, p) for t in inputs for p in topics[t].partitions]
            for name, (_group_id, inputs) in groups.items()
        }

    def ends(self) -> dict[tuple[str, int], int]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        wanted = {(tp.topic, tp.partition) for tps in self.partitions.values() for tp in tps}
        futures = self.admin.list_offsets({TopicPartition(t, p): latest for t, p in wanted})
        return {(tp.topic, tp.partition): int(f.result(10).offset) for tp, f in futures.items()}

    def sample(self) -> tuple[dict[str, int], dict[str, int]]:
        """({group: lag}, {group: sum of its inputs' end offsets})."""
        committed: dict[tuple[str, str, int], int] = {}
        for name, group_id in self.ids.items():  # before the end offsets: lag is never < 0
            request = ConsumerGroupTopicPartitions(group_id, self.partitions[name])
            result = self.admin.list_consumer_group_offsets([request])[group_id].result(10)
            for tp in result.topic_partitions:
                committed[(group_id, tp.topic, tp.partition)] = tp.offset
        ends = self.ends()
        lags, totals = {}, {}
        for name, group_id in self.ids.items():
            lag = total = 0
            for tp in self.partitions[name]:
                end = ends[(tp.topic, tp.partition)]
                # No commit yet: everything from offset 0 waits (the topics are new).
                lag += end - max(committed.get((group_id, tp.topic, tp.partition), 0), 0)
                total += end
            lags[name], totals[name] = lag, total
        return lags, totals


@dataclass
class Sample:
    t: float
    produced: int
    rss: dict[str, int]
    cpu: dict[str, float]
    lag: dict[str, int]
    inputs: dict[str, int]
    load: float  # the machine's 1-minute load average (other work shows here)


def soak_settings(tmp: Path, bootstrap: str, retain_ended_s: float | None = None) -> Settings:
    # Without --retain-ended-s the worker keeps ended runs for the default hour: longer than a
    # soak, so only a shorter retention shows the steady state within one.
    tracking = {} if retain_ended_s is None else {"retain_ended_s": retain_ended_s}
    return load_settings(
        None,
        tracking=tracking,
        topics={"prefix": f"soak{time.time_ns() % 10**9}.", "partitions": 3},
        kafka={"bootstrap_servers": bootstrap},
        embedded={"data_dir": str(tmp / "data")},
        api={"port": free_port()},
        logging={"level": "WARNING"},
        alerting={
            "enabled": True,
            "route": {
                "receivers": ["file"],
                "routes": [{"matchers": ['status!~"succeeded|cancelled"'], "run_summary": True}],
            },
            "receivers": [{"name": "file", "file": {"path": str(tmp / "alerts.jsonl")}}],
        },
    )


# --- the report ------------------------------------------------------------------------------


def mb(value: float) -> str:
    return f"{value / MB:,.0f} MB"


WORKER_TABLES = (
    "run-states",
    "run-logs",
    "run-tests",
    "run-links",
    "log-stream-starts",
    "pipeline-history",
)


def worker_tables(settings: Settings) -> str:
    """What the worker's tables hold at the end, read from their changelog topics (the worker
    keeps them in memory, `memory://`): live keys and value bytes, and how many belong to runs
    that had ended."""
    consumer = Consumer(consumer_config(settings, f"{settings.topics.prefix}soak-tables-probe"))
    admin = AdminClient(admin_config(settings))
    known = admin.list_topics(timeout=10).topics
    ended: set[bytes] = set()
    rows = []
    try:
        for table in WORKER_TABLES:
            topic = f"{settings.worker_app_id}-{table}-changelog"
            if topic not in known:
                continue
            live: dict[bytes, int] = {}
            for partition in known[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(topic, partition, low)])
                offset, deadline = low, time.monotonic() + 60
                while offset < high - 1 and time.monotonic() < deadline:
                    for message in consumer.consume(1000, 2):
                        if message.error() is not None:
                            continue
                        key, value = message.key() or b"", message.value()
                        offset = message.offset() or offset
                        if value is None:
                            live.pop(key, None)
                            continue
                        live[key] = len(value)
                        if table == "run-states":
                            state = decode_state(value)
                            if state is not None and state.status.terminal:
                                ended.add(key)
                            else:
                                ended.discard(key)
            of_ended = [size for key, size in live.items() if key in ended]
            by_run = table in ("run-states", "run-logs", "run-tests")  # keyed by run id
            rows.append(
                f"| {table} | {len(live):,} | {sum(live.values()) / MB:,.1f} MB "
                + (
                    f"| {len(of_ended):,} | {sum(of_ended) / MB:,.1f} MB |"
                    if by_run
                    else "| - | - |"
                )
            )
    finally:
        consumer.close()
    return "\n".join(
        [
            "Worker tables at the end (memory:// tables, read from their changelogs):",
            "",
            "| table | keys | value bytes | keys of ended runs | their bytes |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def fitted_growth(points: list[tuple[float, int]]) -> float:
    """Growth over the points' time span of the least-squares line through them."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread if spread else 0.0
    return slope * (points[-1][0] - points[0][0])


def report(samples: list[Sample], warm: Sample, args: argparse.Namespace, mix: Mix,
           components: list[Component], by_topic: list[int]) -> str:  # fmt: skip
    end = samples[-1]
    span = end.t - samples[0].t
    rate = (end.produced - samples[0].produced) / span if span else 0.0
    lines = [
        f"Load: {mix.describe(args.rate)}.",
        f"Produced {end.produced:,} events in {end.t:.0f} s: {end.produced / end.t:,.0f}/s "
        f"(target {args.rate:,.0f}/s; {rate:,.0f}/s between the first and last samples); "
        f"CI {by_topic[0]:,}, Kubernetes {by_topic[1]:,}, log lines {by_topic[2]:,}. "
        f"Load average (1 min) {min(s.load for s in samples):.1f} to "
        f"{max(s.load for s in samples):.1f} on {os.cpu_count()} cores.",
        "",
        f"| component | RSS at {warm.t:.0f} s (after warm-up) | end ({end.t:.0f} s) | max "
        f"| growth | fitted growth | goal (<= {GOAL_MB} MB) | CPU (cores, avg) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for component in components:
        name = component.name
        if name not in end.rss:
            continue
        growth = end.rss[name] - warm.rss[name]
        peak = max(s.rss.get(name, 0) for s in samples)
        cores = (end.cpu[name] - samples[0].cpu[name]) / span if span else 0.0
        verdict = "yes" if growth <= GOAL_MB * MB else "**no**"
        if name in NOT_OURS:
            verdict = "n/a"
        fitted = fitted_growth([(s.t, s.rss[name]) for s in samples if s.t >= warm.t])
        lines.append(
            f"| {name} | {mb(warm.rss[name])} | {mb(end.rss[name])} | {mb(peak)} "
            f"| {growth / MB:+,.0f} MB | {fitted / MB:+,.0f} MB | {verdict} | {cores:.2f} |"
        )
    lines += [
        "",
        f"| consumer group | lag at {warm.t:.0f} s | lag at end | input rate | consumed "
        "| behind at end | kept up |",
        "|---|---|---|---|---|---|---|",
    ]
    first = samples[0]
    for name in end.lag:
        window = end.t - warm.t
        input_rate = (end.inputs[name] - warm.inputs[name]) / window if window else 0.0
        done = (end.inputs[name] - end.lag[name]) - (first.inputs[name] - first.lag[name])
        behind = end.lag[name] / input_rate if input_rate else 0.0
        kept = "yes" if behind <= args.kept_up_s else "**no**"
        lines.append(
            f"| {name} | {warm.lag[name]:,} | {end.lag[name]:,} | {input_rate:,.0f}/s "
            f"| {done:,} ({done / span if span else 0:,.0f}/s) | {behind:,.1f} s | {kept} |"
        )
    lines.append(
        f"\n(growth: end minus start; fitted growth: a least-squares line through the samples "
        "from the start on, over the same time, less moved by one noisy sample; "
        "input rate: what arrived on the group's input topics after the warm-up, including "
        "topics the worker writes itself; consumed: committed over the whole soak; kept up: lag "
        f"at the end at most {args.kept_up_s:.0f} s of the group's input, as committed offsets "
        "trail by a commit interval even when nothing waits)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000.0, help="events/s (default 5000)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS 'start'")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--log-lines", type=int, default=Mix.log_lines, help="per run")
    parser.add_argument("--run-seconds", type=float, default=Mix.run_seconds, help="run length")
    parser.add_argument("--kept-up-s", type=float, default=15.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--retain-ended-s",
        type=float,
        help="the worker's tracking.retain_ended_s (default: the config default, 3600)",
    )
    parser.add_argument("--bootstrap", default=os.environ.get("SENTINEL_TEST_KAFKA_BOOTSTRAP"))
    parser.add_argument("--samples", type=Path, help="also write every sample here (JSON lines)")
    parser.add_argument("--data-dir", type=Path, help="keep data and logs here (default: temp)")
    args = parser.parse_args()
    mix = Mix(log_lines=args.log_lines, run_seconds=args.run_seconds)
    warmup = min(args.warmup, args.duration / 2)
    with tempfile.TemporaryDirectory(prefix="sentinel-soak-") as name:
        tmp = args.data_dir or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        run(args, mix, warmup, tmp)


def run(args: argparse.Namespace, mix: Mix, warmup: float, tmp: Path) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    broker = None
    worker: WorkerProcess | None = None
    generator = None
    stop = multiprocessing.get_context("spawn").Event()
    try:
        bootstrap = args.bootstrap
        components: list[Component] = []
        if not bootstrap:
            from sentinel.brokers import ApacheKafkaBroker

            broker = ApacheKafkaBroker(tmp / "kafka", "4.1.1")
            print("starting the Apache Kafka broker", flush=True)
            bootstrap = broker.start(timeout=120)
            process = broker._process.proc
            assert process is not None
            pid = process.pid
            components.append(Component("broker", lambda: pid, broker._process.log_path))
        settings = soak_settings(tmp, bootstrap, args.retain_ended_s)
        settings.embedded.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_topics(settings)
        logs = settings.embedded.data_dir / "logs"
        print(f"starting the components (logs in {logs})", flush=True)
        store = spawn(settings, ["api", "--with-sink"], logs / "store-owner.log", free_port())
        procs.append(store)
        worker = WorkerProcess(settings, logs / "worker.log", None)
        worker.start()
        alerts = spawn(settings, ["alerts"], logs / "alerts.log", free_port())
        procs.append(alerts)
        running = worker
        components[:0] = [
            Component("worker", lambda: running.proc.pid if running.proc else None,
                      running.log_path),
            Component(STORE_OWNER, lambda: store.pid,
                      logs / "store-owner.log"),
            Component("alerts", lambda: alerts.pid, logs / "alerts.log"),
        ]  # fmt: skip

        def alive() -> bool:
            return running.alive() and all(p.poll() is None for p in procs)

        names = settings.topic_names
        groups = {
            "worker": (settings.worker_app_id, worker_topics(settings)),
            "sink": (settings.sink_group_id, tuple(default_routes(settings))),
            "alerts": (settings.alerts_group_id, (names.anomalies, names.runs)),
        }  # fmt: skip
        join_groups(settings, [g for g, _ in groups.values()], alive)
        lags = Lags(settings, groups)
        print(f"load: {mix.describe(args.rate)}", flush=True)
        print(
            f"{args.rate:,.0f} events/s for {args.duration:.0f} s, a sample every "
            f"{args.interval:.0f} s, RSS 'start' after {warmup:.0f} s",
            flush=True,
        )
        spawn_ctx = multiprocessing.get_context("spawn")
        produced = spawn_ctx.Value("q", 0)
        by_topic = spawn_ctx.Array("q", 3)
        generator = spawn_ctx.Process(
            target=generate,
            args=(settings.model_dump_json(), args.rate, args.duration, mix, produced, by_topic,
                  stop),
            daemon=True,
        )  # fmt: skip
        samples: list[Sample] = []
        out = args.samples.open("w") if args.samples else None
        started = time.monotonic()
        generator.start()
        load_pid = generator.pid
        components.append(Component("load generator", lambda: load_pid, None))
        warm: Sample | None = None
        tick = 0
        while True:
            sample = take(components, lags, produced, time.monotonic() - started)
            samples.append(sample)
            if warm is None and sample.t >= warmup - 0.5:
                warm = sample
            if out is not None:
                out.write(json.dumps(sample.__dict__) + "\n")
                out.flush()
            print(progress_line(sample, samples), flush=True)
            if not alive():
                raise RuntimeError(f"a component exited; logs in {logs}")
            if sample.t >= args.duration - 0.5 or not generator.is_alive():
                break
            tick += 1
            time.sleep(max(0.0, started + tick * args.interval - time.monotonic()))
        generator.join(60)
        assert warm is not None
        print()
        print(report(samples, warm, args, mix, components, [int(by_topic[i]) for i in range(3)]))
        print()
        print(worker_tables(settings))
    finally:
        stop.set()
        if generator is not None and generator.is_alive():
            generator.join(30)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        if worker is not None:
            worker.stop()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.stop()


def join_groups(settings: Settings, groups: list[str], alive: Callable[[], bool]) -> None:
    """`wait_groups_joined`, asked again when one of its 5-second admin requests times out
    (it does on this shared machine under load; `sentinel up` would stop there)."""
    deadline = time.monotonic() + 180
    while True:
        try:
            wait_groups_joined(settings, groups, alive=alive, timeout=60)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
            print("consumer groups not joined yet (or the broker answered late); asking again")


def take(components: list[Component], lags: Lags, produced: Any, t: float) -> Sample:
    rss, cpu = {}, {}
    for component in components:
        pid = component.pid()
        if pid is not None:
            rss[component.name], cpu[component.name] = rss_and_cpu(pid)
    lag, inputs = lags.sample()
    return Sample(round(t, 1), int(produced.value), rss, cpu, lag, inputs, os.getloadavg()[0])


def progress_line(sample: Sample, samples: list[Sample]) -> str:
    before = samples[-2] if len(samples) > 1 else sample
    span = sample.t - before.t
    rate = (sample.produced - before.produced) / span if span else 0.0
    rss = " ".join(
        f"{SHORT.get(name, name)} {value / MB:,.0f}" for name, value in sample.rss.items()
    )
    lag = " ".join(f"{name} {value:,}" for name, value in sample.lag.items())
    return (
        f"{sample.t:6.0f} s  produced {sample.produced:>10,} ({rate:,.0f}/s)  "
        f"RSS MB: {rss}  lag: {lag}  load {sample.load:.1f}"
    )


if __name__ == "__main__":
    main()
