"""Scale-out: two workers, two sinks and two dispatchers, each pair in one consumer group, on a
six-partition installation, give exactly the runs, anomalies, rows and alerts of one of each —
while one of each pair is killed mid-history and started again.

The history is side_by_side (seven teams' nightly CronJobs interleaved, 3,027 records, twelve
quiet gaps), replayed as `sentinel analyze` does: chunk by chunk, event time passing at each
quiet gap. Reference: one worker process, one sink and one dispatcher (threads of the process
that owns the store, as `sentinel up` runs them). Scaled: the same, plus a second worker process,
a second sink and a second dispatcher process (`sentinel alerts`). The second sink is a thread of
the test's process on the same store, not a process of its own: the embedded ClickHouse engine
opens a data directory from one process only, so every writer lives in the process that owns it
(with a ClickHouse server, each sink would be its own Deployment).

Right after the fifth chunk is published, while the pair is working on it, the second worker
and dispatcher are killed with SIGKILL and the second sink stops dead: its batch is dropped,
neither inserted nor committed (the consumer then leaves its group, as the group would evict a
dead process after its session timeout). Right after the ninth chunk is published they start
again. Every rebalance in between moves partitions under load.

Slow (two full replays on six partitions, about 5 minutes on two cores): `make reliability`.

Faults this test found (issue 17):
* An anomaly was reported once, when first found, with the words of the run state at that
  moment; job_backoff_limit is found from either the Job's Failed condition or the
  BackoffLimitExceeded Event (different partitions of sentinel.k8s), and whichever reached the
  run first wrote its text. The tracker now reports a finding again when its words change
  (processors.runs.tracking), so the newest report is made from everything the run saw;
  tests/unit/processors/runs/test_finding_order.py folds the scenario captures in any order.
  Still open: in 1 of 8 replay pairs since, both installations stored a first report's words
  for two job_backoff_limit findings (team-a 29540460, team-g 29540520), different ones in
  each. The tracker's reports in that order are right (checked in isolation), and the
  embedded engine keeps the later of two equal-version rows; where the newest report is lost
  is not found yet.
* Fixed: a worker that lost a partition in a rebalance and got it back later kept its old
  index of the partition's run deadlines: a run the other worker had opened meanwhile was
  never re-checked as time passed (team-g's hung run had no log_silence with two workers).
  The tracker forgets a revoked partition's index and rebuilds it from the table.
* Open: team-g's log_silence is still missing with two workers in 2 of 7 pairs since the
  index fix (the run states agree, so the run was not re-checked when the gap's tick passed
  its deadline). Not found; a lead: the tracker's watermark lives in the worker's memory,
  per process, so a partition's new owner has none until the next tick reaches it.
* Open, 1 pair: the two workers lost team-e 29540400's five log-parsed test results.
  Suspected, the same shape as the index fault: a worker that gets a sentinel.logs
  partition back keeps its old log parsers and never resumes the partition's streams
  (WorkerContext.recovered is never cleared on revoke). Not verified.
* What people were told was compared as (anomaly, status of a message that carried it); a
  resolution that rides in a message whose group also has a new alert is sent with the status
  "firing", which depends on the wall clock. Compared now: each anomaly told, and the groups'
  end states (resolved and told, or still firing).

Seen once before the restart fix on main (faust_fixes.seek_before_resuming_streams): a worker
that took a partition over in a rebalance stopped fetching it (its watchdog reported the
partition stalled 120 s later).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from runtime.config import Settings
from runtime.kafka_clients import consumer_config
from schemas.capture import CaptureRecord, read_capture
from schemas.messages import AlertDelivery, AlertGroupState, Anomaly, DeliveryOutcome, RunState
from sentinel.analyze import quiet_chunks, time_passed
from sentinel.stack import EmbeddedStack, WorkerProcess
from sinks.clickhouse.sink import Batch, ClickHouseSink
from sinks.clickhouse.store import Store
from tests.support.groups import wait_all_consumed
from tests.support.helpers import read_topic
from tests.support.history_replay import Findings, publish, visible
from tests.support.paths import DATA
from tests.support.store_tables import APPEND_ONLY, REPLACING, tables

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.apart]

HISTORY = DATA / "anomaly_scenarios" / "side_by_side"
KILL_DURING, RESTART_DURING = 5, 9  # chunk numbers (13 chunks in all)
GROUP_WAIT_S, GROUP_INTERVAL_S = 1.0, 2.0


def sections() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(HISTORY.with_suffix(".config.yaml").read_text()) or {}
    config.setdefault("tracking", {}).update(
        {
            "idle_watermark_s": None,
            "allowed_lateness_s": 10 * 365 * 24 * 3600,  # as analyze: time decides at the gaps
            "commit_interval_s": 0.2,  # as analyze: each step is seen done sooner
        }
    )
    config["topics"] = {"partitions": 6}
    config["store"] = {"log_ttl_days": 3650}  # the history's lines are from years ago
    config["anomalies"] = {**config.get("anomalies", {}), "warm_start": {"enabled": False}}
    config["alerting"] = {
        "enabled": True,
        "start_at": "earliest",
        "route": {"group_wait_s": GROUP_WAIT_S, "group_interval_s": GROUP_INTERVAL_S},
        # A pipeline-scoped alert resolves once a later run has been judged, which the
        # dispatcher decides by the wall clock (this long after it saw the run end): with the
        # default (300 s) some would resolve within a replay and others not, depending only on
        # how long each replay took. Longer than the test: none resolves, in both.
        "pipeline_judge_wait_s": 3600.0,
    }
    return config


class DeadSink(ClickHouseSink):
    """A sink that can stop dead: its batch dropped, neither inserted nor committed, as a
    killed process leaves it; its partitions' next owner re-reads them."""

    crashed = False

    def stop(self) -> None:
        if self.crashed and not self._closed:
            self._closed = True
            self._batch, self._held = Batch(), []  # nothing for the revoke callback to flush
            self._consumer.close()  # leaves the group at once instead of after its timeout
            return
        super().stop()


class Pair:
    """The second member of each group, which the scaled run kills and starts again."""

    def __init__(self, stack: EmbeddedStack, tmp: Path) -> None:
        self.stack, self.tmp = stack, tmp
        self.worker = WorkerProcess(stack.settings, tmp / "worker-2.log", None)
        self.sink: DeadSink | None = None
        self.sink_stop = threading.Event()
        self.sink_thread: threading.Thread | None = None
        self.alerts: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.worker.start()
        self.sink = DeadSink(self.stack.settings, self._store())
        self.sink_stop = threading.Event()
        self.sink_thread = threading.Thread(
            target=self.sink.run_forever, args=(self.sink_stop,), name="sink-2", daemon=True
        )
        self.sink_thread.start()
        config = self.tmp / "alerts-2.yaml"
        config.write_text(yaml.safe_dump(self.stack.settings.model_dump(mode="json")))
        env = dict(os.environ, SENTINEL_CONFIG=str(config))
        with (self.tmp / "alerts-2.log").open("ab") as out:
            self.alerts = subprocess.Popen(
                [sys.executable, "-m", "sentinel", "alerts"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _store(self) -> Store:
        assert self.stack.owner is not None and self.stack.owner.store is not None
        return self.stack.owner.store

    def alive(self) -> bool:
        return self.worker.alive() and self.alerts is not None and self.alerts.poll() is None

    def kill(self) -> None:
        assert self.worker.proc is not None and self.alerts is not None and self.sink is not None
        self.worker.proc.send_signal(signal.SIGKILL)
        self.alerts.send_signal(signal.SIGKILL)
        self.sink.crashed = True
        self.sink_stop.set()
        assert self.sink_thread is not None
        self.sink_thread.join(30)
        assert not self.sink_thread.is_alive()
        self.worker.proc.wait(10)
        self.alerts.wait(10)

    def stop(self) -> None:
        self.worker.stop()
        if self.alerts is not None and self.alerts.poll() is None:
            self.alerts.terminate()
            self.alerts.wait(20)
        self.sink_stop.set()
        if self.sink_thread is not None:
            self.sink_thread.join(30)


def wait_all(stack: EmbeddedStack, pair: Pair | None, timeout: float = 240) -> None:
    """Every group (workers, sinks, dispatchers) committed up to the end of each input, for a
    second in a row."""

    def first_alive() -> None:
        assert stack.worker is not None and stack.worker.alive(), "worker 1 died"
        assert stack.alerts is not None and stack.alerts.alive(), "dispatcher 1 died"
        assert stack.owner is not None and stack.owner.sink_alive(), "sink 1 died"

    wait_all_consumed(stack.settings, first_alive, timeout)


def wait_alerts_told(stack: EmbeddedStack, pair: Pair | None) -> None:
    """Until no dispatcher has anything left to send: the deliveries topic stands still for
    several group intervals, then every group has consumed everything (the sinks the
    deliveries)."""
    topic = stack.settings.topic_names.alert_deliveries
    probe = Consumer(consumer_config(stack.settings, f"{stack.settings.topics.prefix}ends"))
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        quiet_for = 3 * (GROUP_WAIT_S + GROUP_INTERVAL_S)
        last: list[int] = []
        since = time.monotonic()
        deadline = since + 120
        while time.monotonic() < deadline:
            ends = [probe.get_watermark_offsets(TopicPartition(topic, p))[1] for p in partitions]
            if ends != last:
                last, since = ends, time.monotonic()
            elif time.monotonic() - since >= quiet_for:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the dispatchers kept sending")
    finally:
        probe.close()
    wait_all(stack, pair)


def run(stack: EmbeddedStack, pair: Pair | None) -> dict[str, Any]:
    records = list(read_capture(HISTORY.with_suffix(".jsonl")))
    stack.start()
    try:
        if pair is not None:
            pair.start()
        chunks = list(quiet_chunks(records, stack.settings.tracking.settle_s))
        assert len(chunks) > RESTART_DURING
        for number, (chunk, quiet_until) in enumerate(chunks, start=1):
            publish(stack, chunk)
            if pair is not None and number == KILL_DURING:
                time.sleep(1.0)  # the pair is working on this chunk
                pair.kill()
            if pair is not None and number == RESTART_DURING:
                pair.start()
            wait_all(stack, pair)
            time_passed(stack.settings, quiet_until, final=False)
            wait_all(stack, pair)
            print(f"{stack.settings.topics.prefix} chunk {number} done", flush=True)
        time_passed(stack.settings, records[-1].ts, final=True)
        wait_all(stack, pair)
        wait_alerts_told(stack, pair)
        if pair is not None:
            assert pair.alive(), "a restarted member of the pair died; see its log"
        return observed(stack, records)
    finally:
        if pair is not None:
            pair.stop()
        stack.stop()


def observed(stack: EmbeddedStack, records: list[CaptureRecord]) -> dict[str, Any]:
    settings = stack.settings
    names = settings.topic_names
    states: dict[str, RunState] = {}
    for _key, value in read_topic(settings, names.runs):
        state = RunState.from_bytes(value)
        if state.run_id not in states or state.version >= states[state.run_id].version:
            states[state.run_id] = state
    found: Findings = {
        (a.run_id, a.type, a.subject)
        for a in (Anomaly.from_bytes(v) for _k, v in read_topic(settings, names.anomalies))
    }
    deliveries = [
        AlertDelivery.from_bytes(v) for _k, v in read_topic(settings, names.alert_deliveries)
    ]
    sent = [d for d in deliveries if d.outcome is DeliveryOutcome.SENT]
    latest_groups: dict[bytes | None, bytes | None] = {}
    for key, value in read_topic(settings, names.alert_groups):
        latest_groups[key] = value  # compacted: the latest value per group (None: forgotten)
    groups = [AlertGroupState.from_bytes(v) for v in latest_groups.values() if v]
    assert stack.owner is not None and stack.owner.store is not None
    return {
        "runs": {run_id: visible(s.model_dump(mode="json")) for run_id, s in states.items()},
        "anomalies": found,
        # What people were told: each anomaly (in some message), and which of them were told
        # resolved (they left their group) or still fire at the end. How many messages carried
        # it, and with what else, depends on the wall clock (a group that grows between two
        # flushes is sent again, whole; a resolution rides in a "firing" message when another
        # alert of the group, a late finding or the run's summary, is new in the same flush),
        # so neither the messages nor their status are compared: the groups' end states are.
        "told": {(i, "told") for d in sent for i in d.anomaly_ids}
        | {(i, "resolved") for g in groups for i in g.finished}
        | {(a.alert_id, "firing") for g in groups for a in g.alerts},
        # To explain a difference in "told": each message sent, in the order sent.
        "messages": [
            (d.group_key, d.status, d.anomaly_ids)
            for d in sorted(sent, key=lambda d: d.attempted_at)
        ],
        # A decision is sent once: a second SENT with the same delivery id is a message sent
        # twice (docs/alerts.md: possible only if a dispatcher dies between a channel's accept
        # and its notification log entry).
        "sent_twice": {i: n for i, n in Counter(d.delivery_id for d in sent).items() if n > 1},
        "not_sent": [d for d in deliveries if d.outcome is not DeliveryOutcome.SENT],
        "tables": tables(stack.owner.store),
        "logs_published": sum(1 for r in records if r.type == "log"),
    }


def differences(scaled: Counter[tuple[str, ...]], reference: Counter[tuple[str, ...]]) -> str:
    extra, missing = scaled - reference, reference - scaled
    return f"scaled only {list(extra.items())[:5]}; reference only {list(missing.items())[:5]}"


@pytest.mark.timeout(1800)
def test_two_of_each_on_six_partitions_give_what_one_of_each_gives(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    def stack(name: str) -> EmbeddedStack:
        settings = make_settings(kafka_bootstrap, **sections())
        settings = settings.model_copy(
            update={
                "topics": settings.topics.model_copy(
                    update={"prefix": f"{settings.topics.prefix}{name}."}
                ),
                "embedded": settings.embedded.model_copy(update={"data_dir": tmp_path / name}),
            }
        )
        return EmbeddedStack(settings)

    started = time.monotonic()
    scaled_stack = stack("two")
    scaled = run(scaled_stack, Pair(scaled_stack, tmp_path))
    halfway = time.monotonic()
    reference = run(stack("one"), None)
    print(f"replays: two of each {halfway - started:.0f}s, one {time.monotonic() - halfway:.0f}s")

    # The reference is about something: the history's runs, findings, rows and alerts.
    assert len(reference["runs"]) >= 40 and len(reference["anomalies"]) >= 20
    assert {s for _i, s in reference["told"]} >= {"told", "resolved"}
    assert reference["tables"]["log_lines"].total() == reference["logs_published"]

    # Every difference, not only the first: one replay pair takes minutes.
    problems: list[str] = []
    if scaled["runs"].keys() != reference["runs"].keys():
        problems.append(f"runs: {scaled['runs'].keys() ^ reference['runs'].keys()}")
    for run_id, expected in reference["runs"].items():
        got = scaled["runs"].get(run_id, {})
        differing = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
        if differing:
            problems.append(f"run {run_id}: (scaled, one of each) {differing}")
    if scaled["anomalies"] != reference["anomalies"]:
        problems.append(f"anomalies: {scaled['anomalies'] ^ reference['anomalies']}")
    for table in (*REPLACING, *APPEND_ONLY):
        got, expected = scaled["tables"][table], reference["tables"][table]
        if got != expected:
            columns = scaled["tables"][f"{table} columns"]
            problems.append(f"table {table} {columns}: {differences(got, expected)}")
    for table in REPLACING:
        for name, found in (("scaled", scaled), ("reference", reference)):
            if found["tables"][f"{table} duplicates"]:
                problems.append(f"{name} {table}: {found['tables'][f'{table} duplicates']} dups")
    if scaled["told"] != reference["told"]:
        differing = {i for i, _status in scaled["told"] ^ reference["told"]}
        for name, found in (("scaled", scaled), ("reference", reference)):
            messages = [m for m in found["messages"] if differing & set(m[2])]
            problems.append(
                f"{name} told only {found['told'] - (scaled['told'] & reference['told'])}"
            )
            problems.append(f"{name} messages with them (group, status, ids): {messages}")
    for name, found in (("scaled", scaled), ("reference", reference)):
        if found["sent_twice"] or found["not_sent"]:
            problems.append(f"{name}: sent twice {found['sent_twice']}, {found['not_sent']}")
    assert not problems, "\n".join(problems)
