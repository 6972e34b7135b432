"""Reliability suite (issue 17), item 1: each component killed with SIGKILL in turn under load and
started again loses and repeats nothing: the rows in ClickHouse are the inputs, once each, and
every run's final state, every anomaly and every alert are those of an uninterrupted run.

The load is a scripted history played live, as it would reach a deployment: the oom_mid_test
scenario (eight hourly Jobs of a pytest suite on Kubernetes, one OOMKilled mid-test, so there are
infrastructure anomalies, pytest output, hence test_results rows) applied object by object to
the fake Kubernetes API and its log lines appended to the containers' logs there, interleaved in
event-time order with seven GitHub Actions runs posted as signed workflow_run / workflow_job
webhooks by a client that, like GitHub's redelivery, repeats a delivery until it gets a 2xx.
Every record carries its own event time, so two plays give the same data whatever the wall
clock did; `tracking.idle_watermark_s` is off (the wall clock must not decide anything) and the
end of input is told to the worker as `sentinel analyze` tells it.

Every component is its own process, as in a deployment: `sentinel worker`, `sentinel k8s-watch`
and `sentinel log-stream` (each with its state file, as on a volume), `sentinel alerts` (to a
real signed-webhook receiver on loopback) and `sentinel api --with-sink`. The webhook receiver
and the ClickHouse sink are one process: the embedded engine opens its data directory from one
process only, and `sentinel api` opens the store too (reads, migrations), so with the embedded
store the sink cannot be killed apart from the receiver; that process is killed once and counts
for both. The history is played twice: once untouched, once with the five processes killed
one after another while the play goes on (each down for DOWN_S, then started again).

Kubernetes' own contract lets a watcher that was down miss states that lived only while it was
down (a relist sees the current state), so k8s_events is compared as: each (uid,
resourceVersion) once, and every state the uninterrupted play stored is stored, except those
replaced while the watcher was down (`missed_while_down`). Alerts: the same anomalies told
(firing, resolved) in both plays, each message received once by the webhook receiver and
recorded as sent once; how many messages carried them depends on the wall clock (grouping), so
the messages themselves are not compared.

About 5 minutes (two plays of PLAY_S plus the starts and the drains): `apart`. It found two
faults, both fixed: `k8s-watch` and `log-stream` killed between two checkpoints of their state
file published again what they had published since (every object as RELISTED: 17 rows twice in
k8s_events; 6 to 20 of 362 log lines twice, the repeated pytest lines counted as a retry of a
test); a restart now reads its topic back from the checkpoint's offsets
(`producers.published`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from runtime.config import Settings
from runtime.kafka_clients import consumer_config
from schemas.capture import CaptureRecord, read_capture
from schemas.messages import AlertDelivery, DeliveryOutcome
from sentinel.analyze import time_passed
from sentinel.brokers import free_port
from sentinel.stack import WorkerProcess, wait_groups_joined
from sentinel.topic_admin import ensure_topics
from tests.fakes.kube_api import FakeKubeApi, parse_time_ns
from tests.support.alert_servers import LoopbackServer, WebhookReceiver
from tests.support.groups import wait_all_consumed
from tests.support.helpers import github_headers, payload, read_topic
from tests.support.k8s import FAST_K8S, wait_for
from tests.support.paths import DATA
from tests.support.store_tables import APPEND_ONLY, REPLACING, from_json

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.apart]

HISTORY = DATA / "anomaly_scenarios" / "oom_mid_test"
SECRET, HOOK_SECRET = "kill-each-secret", "kill-each-hook"
PLAY_S = 100.0  # wall seconds over which the whole history is played
DOWN_S = 3.0  # how long a killed component stays down
# (component, seconds into the play): one at a time, each back before the next is killed, each
# while its input flows (the script's log bursts, one per Job run: 2.7-11.4 s, 28.4-37.1 s,
# 42.0-49.6 s, 53.4-62.3 s; the OOM run's anomalies reach the dispatcher at about 80 s).
KILLS: tuple[tuple[str, float], ...] = (
    ("k8s-watch", 8.0),
    ("log-stream", 32.0),
    ("worker", 45.0),
    ("api", 58.0),  # the webhook receiver and the sink (see the top)
    ("alerts", 81.0),
)
KINDS = {"Pod": "pods", "Job": "jobs", "Event": "events", "Service": "services"}
GH_RUNS = 7
GH_FIRST = datetime(2026, 2, 3, 1, 30, tzinfo=UTC)  # inside the history's 01:00-08:27
GH_EVERY = timedelta(minutes=75)  # the last one ends after every Job: the watermark passes all


def gh_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def github_run(n: int) -> list[tuple[datetime, str, str, bytes]]:
    """(event time, event, delivery id, body) of GitHub run n's four webhooks: requested, its
    job in progress and completed, the run completed (every third one failed)."""
    start = GH_FIRST + n * GH_EVERY
    run_id, failed = 810_000 + n, n % 3 == 2
    conclusion = "failure" if failed else "success"
    requested = json.loads(payload("workflow_run/requested.payload.json"))
    completed = json.loads(payload("workflow_run/completed.payload.json"))
    job_template = json.loads(payload("workflow_job/in_progress.payload.json"))
    done_template = json.loads(
        payload("workflow_job/completed.success.with-organization.payload.json")
    )
    made: list[tuple[datetime, str, str, bytes]] = []
    for body, at, what in (
        (requested, start, "requested"),
        (completed, start + timedelta(minutes=4), "completed"),
    ):
        run = body["workflow_run"]
        run.update(
            id=run_id, run_attempt=1, created_at=gh_time(start), run_started_at=gh_time(start)
        )
        run["updated_at"] = gh_time(at)
        if what == "completed":
            run["conclusion"] = conclusion
        made.append((at, "workflow_run", f"kill-{n}-run-{what}", json.dumps(body).encode()))
    for body, at, what in (
        (job_template, start + timedelta(seconds=20), "in_progress"),
        (done_template, start + timedelta(minutes=3), "completed"),
    ):
        body["repository"] = requested["repository"]
        job = body["workflow_job"]
        job.update(id=910_000 + n, run_id=run_id, run_attempt=1, name="tests", steps=[])
        job.update(created_at=gh_time(start), started_at=gh_time(start + timedelta(seconds=20)))
        job["head_sha"] = requested["workflow_run"]["head_sha"]
        if what == "completed":
            job.update(completed_at=gh_time(at), conclusion=conclusion)
        made.append((at, "workflow_job", f"kill-{n}-job-{what}", json.dumps(body).encode()))
    return sorted(made, key=lambda hook: hook[0])


@dataclass
class Step:
    """One record of the play: a webhook to post or a change on the fake API."""

    at: datetime
    webhook: tuple[str, str, bytes] | None = None
    record: CaptureRecord | None = None


def script() -> list[Step]:
    steps = [
        Step(record.ts, record=record) for record in read_capture(HISTORY.with_suffix(".jsonl"))
    ]
    for n in range(GH_RUNS):
        steps += [
            Step(at, webhook=(event, delivery, body)) for at, event, delivery, body in github_run(n)
        ]
    return sorted(steps, key=lambda step: step.at)


def apply(api: FakeKubeApi, record: CaptureRecord) -> None:
    raw = record.model_dump(mode="json")
    if record.type == "log":
        ts_ns = parse_time_ns(raw["ts"].replace("+00:00", "Z"))
        api.append_log(raw["namespace"], raw["pod"], raw["container"], raw["line"].encode(), ts_ns)
        return
    obj, resource = raw["object"], KINDS[raw["object"]["kind"]]
    meta = obj["metadata"]
    if raw["event"] == "ADDED":
        api.add(resource, obj)
    elif raw["event"] == "MODIFIED":
        api.replace(resource, obj)
    else:
        api.delete(resource, meta.get("namespace", "default"), meta["name"])


class Redelivering:
    """Posts webhooks in order from one thread, each again every 0.5 s until a 2xx: a receiver
    that is down or answers 5xx gets the delivery later (GitHub's redelivery, made automatic)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pending: list[tuple[str, str, bytes]] = []
        self.attempts: Counter[str] = Counter()
        self.accepted: list[str] = []
        self._lock = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="redelivering", daemon=True)
        self._thread.start()

    def post(self, hook: tuple[str, str, bytes]) -> None:
        with self._lock:
            self.pending.append(hook)
            self._lock.notify()

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.pending:
                if not self._lock.wait(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"webhooks not accepted: {[h[1] for h in self.pending]}")
            self._stop = True
            self._lock.notify_all()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                with self._lock:
                    while not self.pending and not self._stop:
                        self._lock.wait()
                    if not self.pending:
                        return
                    event, delivery, body = self.pending[0]
                self.attempts[delivery] += 1
                try:
                    headers = github_headers(event, delivery, body, SECRET)
                    response = client.post(
                        f"{self.url}/api/webhooks/github", content=body, headers=headers
                    )
                    ok = response.is_success
                except httpx.TransportError:
                    ok = False
                if not ok:
                    time.sleep(0.5)
                    continue
                with self._lock:
                    self.pending.pop(0)
                    self.accepted.append(delivery)
                    self._lock.notify_all()


@dataclass
class Component:
    """One `sentinel` subcommand as its own process, killed and started again at will."""

    name: str
    argv: list[str]
    config: Path
    log: Path
    worker: WorkerProcess | None = None
    proc: subprocess.Popen[bytes] | None = None
    kills: list[float] = field(default_factory=list)

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()
            self.proc = self.worker.proc
            return
        env = dict(os.environ, SENTINEL_CONFIG=str(self.config))
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sentinel", *self.argv],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills.append(time.monotonic())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name} did not stop on SIGTERM; see {self.log}") from None


def sections(api: FakeKubeApi, data: Path, hook_url: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(HISTORY.with_suffix(".config.yaml").read_text()) or {}
    config["anomalies"] = {**config.get("anomalies", {}), "warm_start": {"enabled": False}}
    config["tracking"] = {
        "idle_watermark_s": None,  # event time only: the wall clock differs between the plays
        "allowed_lateness_s": 10 * 365 * 24 * 3600.0,  # as analyze: arrival order must not matter
        "commit_interval_s": 0.2,
    }
    config["embedded"] = {"data_dir": str(data)}
    config["store"] = {"log_ttl_days": 3650}  # the history's lines are from months ago
    config["api"] = {"port": free_port()}
    config["webhooks"] = {"spool_dir": str(data / "spool")}
    config["k8s"] = {
        **FAST_K8S,
        "kubeconfig": str(api.write_kubeconfig(data / "kubeconfig")),
        "namespaces": ["ci"],
        "state_file": str(data / "k8s-watch.state"),
    }
    config["logs"] = {"state_file": str(data / "log-stream.state")}
    config["alerting"] = {
        "enabled": True,
        "start_at": "earliest",
        "route": {"receivers": ["hook"], "group_wait_s": 1.0, "group_interval_s": 2.0},
        "receivers": [
            {
                "name": "hook",
                "webhook": {"url": f"{hook_url}/hook", "secret_env": "KILL_EACH_HOOK_SECRET"},
            }
        ],
        # Resolving a pipeline's alert waits this long (wall clock) after a later run: longer
        # than the test, so that neither play resolves by the clock.
        "pipeline_judge_wait_s": 3600.0,
    }
    return config


@dataclass
class Play:
    """One installation: fake API, alert receiver, the five processes, and what it was fed."""

    settings: Settings
    api: FakeKubeApi
    receiver: WebhookReceiver
    components: dict[str, Component]
    lines_written: int = 0
    downtime: list[tuple[str, float, float]] = field(default_factory=list)  # name, from, to

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api.port}"


@pytest.fixture
def make_play(
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str], Play]]:
    monkeypatch.setenv("SENTINEL_GITHUB_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("KILL_EACH_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    made: list[Play] = []
    servers: list[Any] = []

    def make(name: str) -> Play:
        data = tmp_path / name
        data.mkdir()
        api = FakeKubeApi(bookmark_interval=0.1).__enter__()
        servers.append(api)
        receiver = WebhookReceiver(HOOK_SECRET)
        hooks = LoopbackServer(receiver.app).start()
        servers.append(hooks)
        settings = make_settings(kafka_bootstrap, **sections(api, data, hooks.url))
        settings = settings.model_copy(
            update={
                "topics": settings.topics.model_copy(
                    update={"prefix": f"{settings.topics.prefix}{name}."}
                )
            }
        )
        ensure_topics(settings)
        config = data / "settings.yaml"
        config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
        components = {
            name: Component(name, argv, config, data / f"{name}.log")
            for name, argv in (
                ("api", ["api", "--with-sink"]),
                ("k8s-watch", ["k8s-watch"]),
                ("log-stream", ["log-stream"]),
                ("alerts", ["alerts"]),
            )
        }
        components["worker"] = Component(
            "worker",
            [],
            config,
            data / "worker.log",
            worker=WorkerProcess(settings, data / "worker.log", config),
        )
        play = Play(settings, api, receiver, components)
        made.append(play)
        return play

    yield make
    for play in made:
        for component in play.components.values():
            if component.proc is not None and component.proc.poll() is None:
                component.proc.kill()
    for server in reversed(servers):
        if isinstance(server, FakeKubeApi):
            server.__exit__(None, None, None)
        else:
            server.stop()


def start(play: Play) -> None:
    for component in play.components.values():
        component.start()
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{play.url}/ready", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        dead = [c.name for c in play.components.values() if not c.alive()]
        assert not dead and time.monotonic() < deadline, f"not started: {dead}, see their logs"
        time.sleep(0.5)
    settings = play.settings
    groups = [settings.worker_app_id, settings.sink_group_id, settings.alerts_group_id]
    wait_groups_joined(settings, groups, lambda: all(c.alive() for c in play.components.values()))


def killer(play: Play, started: float) -> threading.Thread:
    def run() -> None:
        for name, at in KILLS:
            time.sleep(max(0.0, started + at - time.monotonic()))
            component = play.components[name]
            component.kill()
            down = time.monotonic()
            time.sleep(DOWN_S)
            component.start()
            play.downtime.append((name, down, time.monotonic()))

    thread = threading.Thread(target=run, name="killer", daemon=True)
    thread.start()
    return thread


def run_play(play: Play, kill: bool) -> dict[str, Any]:
    start(play)
    steps = script()
    poster = Redelivering(play.url)
    started = time.monotonic()
    killing = killer(play, started) if kill else None
    states: list[tuple[str, str, float]] = []  # (uid, resourceVersion, when it was made)
    for number, step in enumerate(steps):
        time.sleep(max(0.0, started + number * PLAY_S / len(steps) - time.monotonic()))
        if step.webhook is not None:
            poster.post(step.webhook)
        else:
            assert step.record is not None
            apply(play.api, step.record)
            if step.record.type == "log":
                play.lines_written += 1
            else:
                uid = step.record.model_dump(mode="json")["object"]["metadata"]["uid"]
                states.append((uid, str(play.api.resource_version), time.monotonic()))
    poster.drain(timeout=120)
    if killing is not None:
        killing.join(60)
        assert [name for name, _down, _up in play.downtime] == [name for name, _at in KILLS]
    dead = [c.name for c in play.components.values() if not c.alive()]
    assert not dead, f"died: {dead}; see their logs under {play.settings.embedded.data_dir}"
    settings = play.settings
    wait_for(
        lambda: len(read_topic(settings, settings.topic_names.logs)) >= play.lines_written,
        90,
        "log lines",
    )
    time.sleep(2.0)  # the watcher's last changes, and would-be duplicates, have time to show
    # The end of input, as `sentinel analyze` says it: the wall clock must not (see the top).
    time_passed(settings, steps[-1].at + timedelta(hours=2), final=True)
    wait_all(play)
    wait_deliveries_quiet(play)
    for name in ("k8s-watch", "log-stream", "alerts", "worker", "api"):
        play.components[name].stop()
    return observed(play, poster, states)


def wait_all(play: Play) -> None:
    """Worker, sink and dispatcher groups committed up to the end of each input, for 2 s."""
    wait_all_consumed(play.settings, settle=2.0)


def wait_deliveries_quiet(play: Play) -> None:
    """Until the dispatcher has nothing left to send: its deliveries topic still for 10 s."""
    topic = play.settings.topic_names.alert_deliveries
    probe = Consumer(consumer_config(play.settings, f"{play.settings.topics.prefix}quiet"))
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        last: list[int] = []
        since, deadline = time.monotonic(), time.monotonic() + 120
        while time.monotonic() - since < 10.0:
            ends = [probe.get_watermark_offsets(TopicPartition(topic, p))[1] for p in partitions]
            if ends != last:
                last, since = ends, time.monotonic()
            assert time.monotonic() < deadline, "the dispatcher kept sending"
            time.sleep(0.5)
    finally:
        probe.close()
    wait_all(play)


def stored(play: Play) -> dict[str, Any]:
    env = dict(os.environ, SENTINEL_CONFIG=str(play.components["api"].config))
    result = subprocess.run(
        # received_at: when a producer read the input, the wall clock of that play.
        [sys.executable, "-m", "tests.support.store_tables", "received_at"],
        env=env,
        capture_output=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return from_json(result.stdout.decode().strip().splitlines()[-1])


def observed(
    play: Play, poster: Redelivering, states: list[tuple[str, str, float]]
) -> dict[str, Any]:
    settings = play.settings
    deliveries = [
        AlertDelivery.from_bytes(v)
        for _k, v in read_topic(settings, settings.topic_names.alert_deliveries)
    ]
    sent = [d for d in deliveries if d.outcome is DeliveryOutcome.SENT]
    tables = stored(play)
    return {
        "tables": tables,
        "accepted": poster.accepted,
        "told": {(i, d.status) for d in sent for i in d.anomaly_ids},
        "sent_twice": {i: n for i, n in Counter(d.delivery_id for d in sent).items() if n > 1},
        "not_sent": [d for d in deliveries if d.outcome is not DeliveryOutcome.SENT],
        "sent_ids": {d.delivery_id for d in sent},
        "received": [doc for doc in play.receiver.accepted],
        "refused": list(play.receiver.refused),
        "lines_written": play.lines_written,
        "states": states,
    }


def column(found: dict[str, Any], table: str, name: str) -> int:
    return list(found["tables"][f"{table} columns"]).index(name)


def k8s_states(found: dict[str, Any]) -> Counter[tuple[str, ...]]:
    """k8s_events by state: (uid, resourceVersion, the rest of the row), as many as stored, less
    what may differ for the same state: after a restart the watcher reports a state it learnt
    by relisting as RELISTED, not ADDED/MODIFIED (the contract of producers.k8s.watch), and a
    listed object's JSON has its keys in another order than a watched one's."""
    uid, rv = column(found, "k8s_events", "uid"), column(found, "k8s_events", "resource_version")
    kind, obj = column(found, "k8s_events", "event_type"), column(found, "k8s_events", "object")

    def state(row: tuple[str, ...]) -> tuple[str, ...]:
        rest = [
            json.dumps(json.loads(v), sort_keys=True) if i == obj else v
            for i, v in enumerate(row)
            if i != kind
        ]
        return (row[uid], row[rv], *rest)

    return Counter(state(row) for row, n in found["tables"]["k8s_events"].items() for _ in range(n))


def missed_while_down(
    play: Play, states: list[tuple[str, str, float]], before_s: float = 2.0, after_s: float = 10.0
) -> set[tuple[str, str]]:
    """The states a killed watcher may never publish, by Kubernetes' contract: those replaced
    while it was down (a relist shows only the current state), from `before_s` before the kill
    (states it had read but not yet handed to Kafka die with it) to `after_s` after the restart
    (the new process starts and lists)."""
    windows = [
        (down - before_s, up + after_s) for name, down, up in play.downtime if name == "k8s-watch"
    ]
    missable: set[tuple[str, str]] = set()
    for index, (uid, rv, _made) in enumerate(states):
        replaced = next((at for u, _r, at in states[index + 1 :] if u == uid), None)
        if replaced is not None and any(start <= replaced <= end for start, end in windows):
            missable.add((uid, rv))
    return missable


@pytest.mark.timeout(1200)
def test_each_component_killed_in_turn_under_load_loses_and_repeats_nothing(
    make_play: Callable[[str], Play],
) -> None:
    started = time.monotonic()
    calm_play = make_play("calm")
    calm = run_play(calm_play, kill=False)
    halfway = time.monotonic()
    killed_play = make_play("killed")
    killed = run_play(killed_play, kill=True)
    print(
        f"plays: uninterrupted {halfway - started:.0f}s, killed {time.monotonic() - halfway:.0f}s"
    )

    # The uninterrupted play is about something: the scenario's runs, findings, tests, alerts.
    reference = calm["tables"]
    assert len(reference["runs"]) == 8 + GH_RUNS
    types = {row[column(calm, "anomalies", "type")] for row in reference["anomalies"]}
    assert {"oom_killed", "job_backoff_limit"} <= types, types
    assert reference["test_results"].total() > 100
    assert reference["log_lines"].total() == calm["lines_written"]
    assert calm["received"] and calm["told"]

    problems: list[str] = []
    for name, found in (("uninterrupted", calm), ("killed", killed)):
        tables = found["tables"]
        # No loss, no duplicates against the inputs.
        if tables["log_lines"].total() != found["lines_written"]:
            problems.append(
                f"{name}: {tables['log_lines'].total()} log rows of {found['lines_written']}"
            )
        for table in REPLACING:
            if tables[f"{table} duplicates"]:
                problems.append(
                    f"{name} {table}: {tables[f'{table} duplicates']} duplicates in FINAL"
                )
        for table in APPEND_ONLY:
            twice = {row: n for row, n in tables[table].items() if n > 1}
            if twice:
                problems.append(
                    f"{name} {table}: {len(twice)} rows stored more than once: {list(twice)[:2]}"
                )
        by_state = Counter((uid, rv) for uid, rv, *_rest in k8s_states(found).elements())
        twice_states = [s for s, n in by_state.items() if n > 1]
        if twice_states:
            problems.append(f"{name} k8s_events: states stored twice {twice_states[:5]}")
        if len(set(found["accepted"])) != 4 * GH_RUNS:
            problems.append(
                f"{name}: webhooks accepted {len(set(found['accepted']))} of {4 * GH_RUNS}"
            )
        received = Counter(doc["delivery_id"] for doc in found["received"])
        if {i for i, n in received.items() if n > 1} or set(received) != found["sent_ids"]:
            problems.append(
                f"{name} alerts: received twice {[i for i, n in received.items() if n > 1]}, "
                f"received but not recorded sent {set(received) - found['sent_ids']}, "
                f"recorded sent but not received {found['sent_ids'] - set(received)}"
            )
        if found["sent_twice"] or found["not_sent"] or found["refused"]:
            problems.append(
                f"{name} alerts: sent twice {found['sent_twice']}, not sent {found['not_sent']}, "
                f"refused by the receiver {found['refused']}"
            )

    # The killed play stored what the uninterrupted one stored.
    for table in (*REPLACING, "log_lines", "test_results"):
        got, expected = killed["tables"][table], reference[table]
        if got != expected:
            extra, missing = got - expected, expected - got
            columns = reference[f"{table} columns"]
            problems.append(
                f"table {table} {columns}: killed only {list(extra.items())[:3]}; "
                f"uninterrupted only {list(missing.items())[:3]}"
            )
    got_states, expected_states = k8s_states(killed), k8s_states(calm)
    if got_states - expected_states:
        problems.append(f"k8s_events: killed only {list(got_states - expected_states)[:3]}")
    allowed = missed_while_down(killed_play, killed["states"])
    missing_states = {(s[0], s[1]) for s in expected_states - got_states} - allowed
    if missing_states:
        problems.append(
            f"k8s_events: states lost (not while the watcher was down) {sorted(missing_states)[:5]}"
        )
    if killed["told"] != calm["told"]:
        problems.append(f"alerts told: {killed['told'] ^ calm['told']}")
    assert not problems, "\n".join(problems)
    print(
        f"{len(reference['runs'])} runs, {reference['anomalies'].total()} anomalies, "
        f"{reference['test_results'].total()} test results, {calm['lines_written']} log lines, "
        f"{len(calm['received'])} alert messages; killed: "
        + ", ".join(f"{n} down {up - down:.1f}s" for n, down, up in killed_play.downtime)
    )
