"""Component wiring: the services each `sentinel` subcommand runs, and the embedded stack.

Every component is the same code in production and embedded mode; only the settings differ
(bootstrap servers and store DSN). The embedded ClickHouse engine can be opened by one process
only, so the process that owns the store (`StoreOwner`) also runs the ClickHouse sink and the
HTTP API; the Faust worker runs as a child process, as it would as its own Deployment.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from fastapi import APIRouter

from producers.captures.recording import CaptureWriter, RecordingIngest
from producers.publisher import KafkaPublisher
from producers.webhooks import generic, jenkins
from producers.webhooks.intake import GithubIngest, Intake, TokenIngest, WebhookIngest
from producers.webhooks.ledger import DeliveryLedger
from producers.webhooks.lookback import TopicLookback
from producers.webhooks.routes import generic_router, github_router, jenkins_router
from producers.webhooks.spool import Spool, SpoolDrainer
from runtime.config import BrokerKind, Settings
from runtime.kafka_clients import admin_config, bootstrap_servers, consumer_config, producer_config
from sentinel.brokers import Broker, broker_answers, exit_status, free_port, make_broker
from sentinel.supervisor import Child, Supervisor
from sentinel.topic_admin import ensure_topics
from sentinel.warm_start import start_warm_start
from sinks.alerts.service import DispatcherThread
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.sink import ClickHouseSink, default_routes
from sinks.clickhouse.store import Store, open_store

log = logging.getLogger("sentinel.stack")


class WebhookIntake:
    """The webhook path without the store: publisher, spool and its drainer, delivery ledger,
    and the provider ingests. Used by the HTTP API and by capture replay."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.publisher: KafkaPublisher | None = None
        self.drainer: SpoolDrainer | None = None
        self.ledger: DeliveryLedger | None = None
        self.github: GithubIngest | None = None
        self.jenkins: TokenIngest | None = None
        self.generic: TokenIngest | None = None

    def start(self) -> None:
        settings = self.settings
        self.publisher = KafkaPublisher(producer_config(settings), component="webhooks")
        spool = Spool(settings.spool_dir)
        timeout = settings.kafka.delivery_timeout_s
        lookback = TopicLookback(settings, timeout)
        self.drainer = SpoolDrainer(spool, self.publisher, timeout=timeout, lookback=lookback)
        self.drainer.drain_once()
        self.drainer.start()
        self.ledger = DeliveryLedger(
            settings.spool_dir.parent / "deliveries.sqlite", settings.webhooks.dedup_ttl_hours
        )
        intake = Intake(self.publisher, spool, settings.topic_names.ci)
        self.github = GithubIngest(intake, self.ledger)
        instance = settings.webhooks.jenkins.instance
        self.jenkins = TokenIngest(
            jenkins.PROVIDER,
            lambda payload, received: jenkins.normalize(payload, received, instance),
            intake,
            self.ledger,
        )
        self.generic = TokenIngest(generic.PROVIDER, generic.normalize, intake, self.ledger)

    def stop(self) -> None:
        if self.drainer is not None:
            self.drainer.stop()
        if self.publisher is not None:
            self.publisher.close()
        if self.ledger is not None:
            self.ledger.close()


class StoreOwner:
    """Store + migrations, the webhook intake, the sink thread, the API."""

    def __init__(self, settings: Settings, run_sink: bool = True) -> None:
        self.settings = settings
        self.run_sink = run_sink
        self.store: Store | None = None
        self.intake = WebhookIntake(settings)
        self.sink: ClickHouseSink | None = None
        self._sink_stop = threading.Event()
        self._sink_thread: threading.Thread | None = None
        self.sink_error: str | None = None
        self.warm_start: threading.Thread | None = None

    @property
    def github(self) -> GithubIngest | None:
        return self.intake.github

    def start(self) -> None:
        settings = self.settings
        self.store = open_store(settings)
        applied = migrate(self.store)
        if applied:
            log.info("applied store migrations %s", ", ".join(applied))
        self.intake.start()
        if self.run_sink:  # one warm start per store owner: the one that runs the sink
            self.warm_start = start_warm_start(settings, self.store)
        if self.run_sink:
            self.start_sink()

    def start_sink(self) -> None:
        """(Re)start the sink thread on the open store; a new consumer rejoins its group."""
        assert self.store is not None
        self.sink = ClickHouseSink(self.settings, self.store, default_routes(self.settings))
        self.sink_error = None
        self._sink_thread = threading.Thread(
            target=self._run_sink, args=(self.sink,), name="clickhouse-sink", daemon=True
        )
        self._sink_thread.start()

    def _run_sink(self, sink: ClickHouseSink) -> None:
        try:
            sink.run_forever(self._sink_stop)
        except Exception as exc:
            self.sink_error = f"{type(exc).__name__}: {exc}"
            log.exception("the ClickHouse sink stopped on an error")

    def sink_alive(self) -> bool:
        return self._sink_thread is not None and self._sink_thread.is_alive()

    def sink_exit_reason(self) -> str:
        return f"stopped on {self.sink_error}" if self.sink_error else "stopped"

    def api(
        self,
        capture: CaptureWriter | None = None,
        components: Callable[[], Mapping[str, str]] | None = None,
    ) -> Any:
        """The HTTP app; with `capture`, every verified webhook is also recorded there;
        `components` (the supervisor's) joins /ready."""
        from sentinel.api import create_api
        from sentinel.kafka_offsets import OffsetsProbe

        assert self.store is not None and self.github is not None
        secret = self.settings.github_webhook_secret()
        ingest: WebhookIngest = self.github
        if capture is not None:
            ingest = RecordingIngest(capture, inner=ingest)
        router = github_router(ingest, secret, self.settings.webhooks.max_body_bytes)
        bootstrap = bootstrap_servers(self.settings)
        return create_api(
            self.store,
            broker_ready=lambda: broker_answers(bootstrap, timeout=2.0),
            page_size_max=self.settings.api.page_size_max,
            extra_routers=[
                router,
                *token_routers(self.settings, self.intake, capture),
                self._junit_router(),
                self._alerts_router(),
            ],
            auth_config=self.settings.api.auth,
            offsets=OffsetsProbe(self.settings),
            components=components,
        )

    def _alerts_router(self) -> APIRouter:
        from sentinel.alerts_api import alerts_router
        from sinks.alerts.silence_store import SilenceStore

        assert self.store is not None
        silences = SilenceStore(self.settings)
        return alerts_router(self.store, silences, self.settings.api.page_size_max)

    def _junit_router(self) -> APIRouter:
        from producers.webhooks.junit_upload import junit_router

        intake, hooks = self.intake, self.settings.webhooks
        assert intake.publisher is not None and intake.ledger is not None
        return junit_router(
            intake.publisher,
            intake.ledger,
            self.settings.topic_names.tests,
            self.settings.topic_names.run_signals,
            self.settings.generic_webhook_token(),
            hooks.max_body_bytes,
            hooks.generic.allow_unauthenticated,
        )

    def stop(self) -> None:
        if self.warm_start is not None:
            self.warm_start.join(30)
        if self._sink_thread is not None:
            self._sink_stop.set()
            self._sink_thread.join(30)
        self.intake.stop()
        if self.store is not None:
            self.store.close()


def token_routers(
    settings: Settings,
    intake: WebhookIntake | None,
    capture: CaptureWriter | None,
) -> list[APIRouter]:
    """The Jenkins and generic webhook routes. Without `intake` (`sentinel capture`) the posts
    are only recorded to `capture`; with both, recorded and then ingested."""
    hooks = settings.webhooks
    routers = []
    for provider, make_router, token, allow in (
        ("jenkins", jenkins_router, settings.jenkins_webhook_token(), hooks.jenkins),
        ("generic", generic_router, settings.generic_webhook_token(), hooks.generic),
    ):
        inner: WebhookIngest | None = getattr(intake, provider) if intake is not None else None
        ingest: WebhookIngest | None = inner
        if capture is not None:
            ingest = RecordingIngest(capture, inner=inner, provider=provider)
        assert ingest is not None, "the webhook intake is not started"
        routers.append(
            make_router(ingest, token, hooks.max_body_bytes, allow.allow_unauthenticated)
        )
    return routers


class WorkerProcess:
    """The Faust worker as a child process (`sentinel worker`), configured through the env.

    `command` replaces ``python -m sentinel worker`` (tests run a worker with a fault in it).
    """

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        config_path: Path | None,
        command: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.config_path = config_path
        self.command = command or [sys.executable, "-m", "sentinel", "worker"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.ops_port = 0

    def start(self) -> None:
        env = dict(os.environ)
        env["SENTINEL_KAFKA__BOOTSTRAP_SERVERS"] = bootstrap_servers(self.settings)
        env["SENTINEL_TOPICS__PREFIX"] = self.settings.topics.prefix
        env["SENTINEL_TOPICS__PARTITIONS"] = str(self.settings.topics.partitions)
        env["SENTINEL_EMBEDDED__DATA_DIR"] = str(self.settings.embedded.data_dir)
        # The worker serves its own /health, /ready and /metrics (the API serves the rest),
        # on the same port after a restart.
        self.ops_port = self.ops_port or self.settings.ops.port or free_port()
        env["SENTINEL_OPS__PORT"] = str(self.ops_port)
        # The child gets the parent's effective settings, adjustments made in code included
        # (`sentinel analyze` changes how event time advances), not only the file's.
        effective = self.settings.embedded.data_dir / "worker-settings.yaml"
        effective.parent.mkdir(parents=True, exist_ok=True)
        effective.write_text(yaml.safe_dump(self.settings.model_dump(mode="json")))
        env["SENTINEL_CONFIG"] = str(effective)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        log.info(
            "started run-tracking worker (pid %d, log %s, ops http://127.0.0.1:%d/health)",
            self.proc.pid,
            self.log_path,
            self.ops_port,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def serving(self) -> bool:
        """Its ops endpoint says it consumes: loop turning, partitions assigned, not recovering."""
        try:
            response = httpx.get(f"http://127.0.0.1:{self.ops_port}/health", timeout=2)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return False
        return (
            response.status_code == 200
            and "standing_still" not in body
            and body.get("partitions", 0) > 0
        )

    def exit_reason(self) -> str:
        code = self.proc.poll() if self.proc is not None else None
        return (
            f"(pid {self.proc.pid if self.proc else '-'}) {exit_status(code)}, see {self.log_path}"
        )

    def stop(self, grace: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("worker did not stop in %.0fs; killing it", grace)
            self.proc.kill()
            self.proc.wait(5)


class EmbeddedStack:
    """Broker process + topics + worker process + store owner (+ the alert dispatcher thread),
    started and stopped in order.

    The dispatcher runs as a thread of this process, beside the sink: it needs no store, only
    the broker, and here its metrics show on the API's /metrics; a bad alerting config (a
    template, a missing secret) fails before anything starts.
    """

    def __init__(
        self,
        settings: Settings,
        broker_kind: BrokerKind | None = None,
        config_path: Path | None = None,
        worker_command: list[str] | None = None,
    ) -> None:
        self.base_settings = settings
        self.worker_command = worker_command
        self.supervisor: Supervisor | None = None
        data_dir = settings.embedded.data_dir
        self.broker: Broker | None = None
        if not settings.kafka.bootstrap_servers:
            self.broker = make_broker(
                broker_kind or settings.embedded.broker,
                data_dir,
                settings.embedded.kafka_version,
                settings.embedded.broker_port,
            )
        self.settings = settings
        self.config_path = config_path
        self.worker: WorkerProcess | None = None
        self.owner: StoreOwner | None = None
        self.alerts = DispatcherThread(settings) if settings.alerting.enabled else None

    def start(self) -> None:
        if self.broker is not None:
            bootstrap = self.broker.start()
            kafka = self.base_settings.kafka.model_copy(update={"bootstrap_servers": bootstrap})
            self.settings = self.base_settings.model_copy(update={"kafka": kafka})
        ensure_topics(self.settings)
        self.worker = WorkerProcess(
            self.settings,
            self.settings.embedded.data_dir / "logs" / "worker.log",
            self.config_path,
            self.worker_command,
        )
        self.worker.start()
        self.owner = StoreOwner(self.settings)
        self.owner.start()
        groups = [self.settings.worker_app_id, self.settings.sink_group_id]
        if self.alerts is not None:
            self.alerts.start(self.settings)
            groups.append(self.settings.alerts_group_id)
        # Ready means a webhook posted now is tracked at once, not after the groups settle.
        wait_groups_joined(self.settings, groups, alive=self.worker.alive)

    def supervise(self, on_fatal: Callable[[str], None]) -> Supervisor:
        """Restart the broker, worker, sink and dispatcher when they die (`sentinel up`); a
        broker that keeps its topics in memory only (Tansu) cannot be: `on_fatal` is called."""
        assert self.worker is not None and self.owner is not None
        worker, owner = self.worker, self.owner
        children = []
        if self.broker is not None:
            broker = self.broker

            def restart_broker() -> None:
                broker.stop()  # reaps the dead process and closes its log
                broker.start()

            children.append(
                Child(
                    "broker",
                    broker.alive,
                    restart_broker,
                    broker.exit_reason,
                    restartable=broker.persistent(),
                )
            )
        children.append(
            Child(
                "worker",
                worker.alive,
                worker.start,
                worker.exit_reason,
                lambda: {
                    "pid": worker.proc.pid if worker.proc else None,
                    "ops_port": worker.ops_port,
                },
                ready=worker.serving,
            )
        )
        if owner.run_sink:
            children.append(
                Child(
                    "sink", owner.sink_alive, owner.start_sink, lambda: "thread ended, see the log"
                )
            )
        if self.alerts is not None:
            alerts, settings = self.alerts, self.settings
            children.append(
                Child(
                    "alerts",
                    alerts.alive,
                    lambda: alerts.start(settings),
                    alerts.exit_reason,
                )
            )
        self.supervisor = Supervisor(children, on_fatal).start()
        return self.supervisor

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.alerts is not None:
            self.alerts.stop()
        if self.owner is not None:
            self.owner.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.broker is not None:
            self.broker.stop()

    def wait_consumed(self, timeout: float = 120.0, settle: float = 1.0) -> None:
        """Block until the worker and the sink have committed everything on their inputs."""
        # One probe consumer per group, opened once: it never subscribes, so it does not join
        # the group; it only reads the group's committed offsets.
        names = self.settings.topic_names
        worker_inputs = worker_topics(self.settings)
        sink_inputs = (names.runs, names.k8s, names.logs, names.tests, names.anomalies)
        probes = [
            (Consumer(consumer_config(self.settings, group)), topic)
            for group, topics in (
                (self.settings.worker_app_id, worker_inputs),
                (self.settings.sink_group_id, sink_inputs),
            )
            for topic in topics
        ]
        try:
            deadline = time.monotonic() + timeout
            stable_since: float | None = None
            behind: list[str] = []
            while time.monotonic() < deadline:
                if self.worker is not None and not self.worker.alive():
                    raise RuntimeError(f"the worker exited; see {self.worker.log_path}")
                behind = [topic for probe, topic in probes if not consumed(probe, topic)]
                if not behind:
                    stable_since = stable_since or time.monotonic()
                    if time.monotonic() - stable_since >= settle:
                        return
                else:
                    stable_since = None
                time.sleep(0.2)
            raise TimeoutError(
                f"topics not fully consumed within {timeout:.0f}s: {', '.join(behind)}"
                + (f" (worker log: {self.worker.log_path})" if self.worker else "")
            )
        finally:
            for probe, _topic in probes:
                probe.close()


def wait_groups_joined(
    settings: Settings, groups: list[str], alive: Callable[[], bool], timeout: float = 90.0
) -> None:
    """Block until every consumer group is stable with members (the worker and sink joined)."""
    admin = AdminClient(admin_config(settings))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the worker exited during start-up; see its log under data_dir/logs")
        futures = admin.describe_consumer_groups(groups, request_timeout=5)
        try:
            described = [future.result(5) for future in futures.values()]
        except (KafkaException, concurrent.futures.TimeoutError):
            # A busy broker answers late: ask again until the deadline (was a crash at start).
            described = []
        if described and all(group.state == ConsumerGroupState.UNKNOWN for group in described):
            # Tansu does not report group state; its joins take about 5 s, unobservable here.
            log.info("broker does not report consumer group state; not waiting for joins")
            return
        if described and all(
            group.state == ConsumerGroupState.STABLE and group.members for group in described
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"consumer groups {groups} did not become stable within {timeout:.0f}s")


def consumed(probe: Consumer, topic: str) -> bool:
    """True when the probe's group has committed up to the end of every partition of `topic`."""
    metadata = probe.list_topics(topic, timeout=5)
    partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
    for tp in probe.committed(partitions, timeout=5):
        _low, high = probe.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5)
        if high > 0 and tp.offset < high:
            return False
    return True


def worker_topics(settings: Settings) -> tuple[str, ...]:
    """Every topic the worker consumes: the sources and its own internal topics."""
    names = settings.topic_names
    return (
        names.ci,
        names.k8s,
        names.logs,
        names.run_signals,
        names.run_links,
        names.run_history,
    )
