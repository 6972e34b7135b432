"""The Faust app: thin agents around the pure logic in `processors`.

Built by `create_app(settings)` (never at import time, so nothing connects on import). The run
tracker keeps each run's latest `RunState` in a table backed by a changelog topic, so a restarted
worker recovers it; `sentinel.ci` is keyed by run id, which makes the table co-partitioned with
its input.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import EventT, StreamT

from processors.tracking import decode_state, track
from schemas.messages import DeadLetter, RunState
from sentinel.config import Settings
from sentinel.kafka_clients import bootstrap_servers
from sentinel.metrics import DEAD_LETTERS

log = logging.getLogger("sentinel.worker")


def faust_settings(settings: Settings) -> dict[str, Any]:
    web_port = settings.tracking.web_port
    return {
        "broker": f"kafka://{bootstrap_servers(settings).replace(',', ';kafka://')}",
        "store": "memory://",
        "topic_partitions": settings.topics.partitions,
        "topic_replication_factor": settings.topics.replication_factor,
        "topic_allow_declare": True,  # the table's changelog topic is Faust's own
        "consumer_auto_offset_reset": "earliest",
        # Short group timeouts: a restarted worker rejoins in seconds, not the default ~30 s.
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
        "broker_rebalance_timeout": 20.0,
        "broker_commit_every": 100,
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
        "web_enabled": web_port is not None,
        "web_port": 6066 if web_port is None else web_port,
        # Faust keeps per-app files (table stores) here; never in the current directory.
        "datadir": str(settings.embedded.data_dir / "worker"),
        "web_bind": "127.0.0.1",
        "table_standby_replicas": 0,
        "worker_redirect_stdouts": False,
    }


def create_app(settings: Settings) -> faust.App:
    names = settings.topic_names
    app = faust.App(settings.worker_app_id, **faust_settings(settings))
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    ci_topic = app.topic(names.ci, partitions=settings.topics.partitions, **raw)
    runs_topic = app.topic(names.runs, **raw)
    dlq_topic = app.topic(names.dlq, **raw)
    runs_table = app.Table(
        "run-states",
        default=None,
        partitions=settings.topics.partitions,
        key_type=bytes,  # bytes in and out: the pure code owns (de)serialisation
        value_type=bytes,
    )
    ignore_apps = frozenset(settings.tracking.ignore_check_suite_apps)

    def load_state(run_id: str) -> RunState | None:
        return decode_state(runs_table.get(run_id.encode()))

    async def dead_letter(event: EventT[Any], error: str, error_type: str) -> None:
        DEAD_LETTERS.labels("run-tracker").inc()
        message = event.message
        letter = DeadLetter(
            origin_topic=message.topic,
            origin_partition=message.partition,
            origin_offset=message.offset,
            origin_key=event.key,
            raw_value=event.value if isinstance(event.value, bytes) else bytes(event.value or b""),
            error=error,
            error_type=error_type,
            component="run-tracker",
        )
        key = f"{message.topic}/{message.partition}/{message.offset}".encode()
        await dlq_topic.send(key=key, value=letter.to_bytes())

    @app.agent(ci_topic, name="run-tracker")
    async def run_tracker(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            outcome = track(event.value, load_state, ignore_apps)
            if outcome.error is not None:
                log.warning("dead-lettering %s: %s", event.message.offset, outcome.error)
                await dead_letter(event, outcome.error, outcome.error_type or "Error")
                continue
            if outcome.state is None:
                continue
            key = outcome.state.run_id.encode()
            value = outcome.state.to_bytes()
            runs_table[key] = value
            await runs_topic.send(key=key, value=value)

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM (the `sentinel worker` command)."""
    from faust.worker import Worker

    app = create_app(settings)
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
