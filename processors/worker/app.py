"""The Faust app of `sentinel worker`: its settings, its agents, and running it (docs/runs.md).

Built by `create_app(settings)` (never at import time, so nothing connects on import); what the
agents do is in `processors.worker.agents`. Every table is backed by a changelog topic, so a
restarted worker recovers it; each table is keyed like the topic its agent reads, which keeps it
co-partitioned with its input.
"""

from __future__ import annotations

import faulthandler
import signal as os_signal
from collections.abc import Callable, Sequence
from typing import Any

import faust

from processors.worker.agents import (
    add_run_history,
    add_run_linker,
    add_run_tracker,
    add_signal_router,
    add_wall_clock,
)
from processors.worker.changelogs import ensure_changelogs
from processors.worker.context import MAX_VALUE_BYTES, WorkerContext
from processors.worker.faust_fixes import (
    drain_buffer_before_commit,
    seek_before_resuming_streams,
)
from processors.worker.metrics import PrometheusSensor
from processors.worker.progress import worker_ownership
from runtime.config import Settings
from runtime.kafka_clients import bootstrap_servers
from runtime.progress_monitor import OwnershipBox


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
        # Faust's count-based commit runs inside its fetch loop every N acks and holds delivery
        # until the commit (and the producer flush it waits for, faust_fixes) is done. At 100 it
        # costs about a third of the worker's CPU on a backlog (bench/worker_throughput.py:
        # 941 -> 1,657 lines/s without it), but without it two replayed histories came out
        # different in CI (a duplicated image_pull_failure in the demo, a missing flaky_test in
        # the read-API scenarios; issue 17 note): the pause every 100 messages also keeps the
        # worker's topics in step. Kept until the analysis no longer depends on that order.
        "broker_commit_every": 100,
        "broker_commit_interval": settings.tracking.commit_interval_s,
        "producer_acks": -1,
        "producer_max_request_size": MAX_VALUE_BYTES,
        "web_enabled": web_port is not None,
        "web_port": 6066 if web_port is None else web_port,
        # Faust keeps per-app files (table stores) here; never in the current directory.
        "datadir": str(settings.embedded.data_dir / "worker"),
        "web_bind": "127.0.0.1",
        "table_standby_replicas": 0,
        "worker_redirect_stdouts": False,
    }


def create_app(settings: Settings) -> faust.App:
    """The worker: thin agents around the pure logic (`processors.worker.agents`)."""
    drain_buffer_before_commit()  # a commit must never run ahead of the table changes
    seek_before_resuming_streams()  # records fetched while resuming must not be thrown away
    app = faust.App(settings.worker_app_id, **faust_settings(settings))
    app.sensors.add(PrometheusSensor())
    ctx = WorkerContext.build(settings, app)
    add_signal_router(ctx)
    add_run_linker(ctx)
    add_run_tracker(ctx)
    add_run_history(ctx)
    if settings.tracking.idle_watermark_s is not None:
        add_wall_clock(ctx)
    return app


def run_worker(
    settings: Settings,
    loglevel: str = "info",
    logfmt: str = "auto",
    heartbeat: Callable[[], None] | None = None,
    ownership: OwnershipBox | None = None,
    sensors: Sequence[Any] = (),
) -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM (the `sentinel worker` command).

    `heartbeat` is called every second from the worker's event loop: the liveness probe
    (`/health` on the ops port) fails when the loop stops turning. `ownership` is updated as
    often with the partitions the worker consumes, for the partition watchdog. `sensors` are
    added to the app's Faust sensors (the ops endpoint's /progress reads one).
    """
    from faust.worker import Worker

    from runtime.log_setup import handler_config

    # `kill -USR1 <pid>` writes every thread's stack to the log: how to see where a stuck
    # worker is stuck, without stopping it.
    faulthandler.register(os_signal.SIGUSR1, all_threads=True)
    app = create_app(settings)
    ensure_changelogs(app, settings)  # before Faust's consumer reads the broker's metadata
    for sensor in sensors:
        app.sensors.add(sensor)
    if heartbeat is not None or ownership is not None:

        @app.timer(interval=1.0, name="ops-heartbeat")  # type: ignore[untyped-decorator]
        async def ops_heartbeat() -> None:
            if heartbeat is not None:
                heartbeat()
            if ownership is not None:
                ownership.set(worker_ownership(app))

    # Faust would replace our log handler with its coloured stdout one: give it ours, so the
    # worker's lines (Faust's and aiokafka's included) are JSON lines like every component's.
    worker = Worker(
        app,
        loglevel=loglevel,
        quiet=True,
        redirect_stdouts=False,
        logging_config=handler_config(loglevel, logfmt),
    )
    # No terminal spinner: at log level WARNING and above Faust's sets the root logger to DEBUG
    # so that it can spin on every record, and every debug line of Faust and aiokafka is built.
    worker.spinner = None
    worker.execute_from_commandline()
