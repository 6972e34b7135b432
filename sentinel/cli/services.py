"""`sentinel up` and the subcommands that run one component each (one Deployment each)."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any

from producers.captures.recording import CaptureWriter
from runtime.config import BrokerKind
from runtime.extras import require_embedded
from runtime.kafka_clients import bootstrap_servers
from runtime.log_setup import setup_logging
from runtime.ops_server import Heartbeat
from runtime.progress_monitor import OwnershipBox
from sentinel.cli.common import on_signals, serve, settings_from
from sentinel.cli.ops import broker_check, start_ops, store_check
from sentinel.progress import Steps, startup_message

log = logging.getLogger("sentinel.cli")


def cmd_up(args: argparse.Namespace) -> int:
    import uvicorn

    from sentinel.stack import EmbeddedStack

    overrides: dict[str, dict[str, Any]] = {}
    if args.data_dir:
        overrides["embedded"] = {"data_dir": args.data_dir}
    if args.broker:
        overrides.setdefault("embedded", {})["broker"] = args.broker
    if args.api_port is not None:
        overrides["api"] = {"port": args.api_port}
    settings = settings_from(args, **overrides)
    setup_logging(settings.logging.level, settings.logging.format, "up")
    if not settings.store.dsn:  # say so before a broker is started for nothing
        require_embedded(
            "chdb",
            "sentinel up with the embedded store (store.dsn is not set)",
            "set store.dsn (or SENTINEL_STORE__DSN) to a ClickHouse server",
        )
    stack = EmbeddedStack(settings, config_path=Path(args.config) if args.config else None)
    capture: CaptureWriter | None = None
    fatal: list[str] = []
    server: Any = None

    def stop_everything(why: str) -> None:  # a child that cannot be restarted died
        fatal.append(why)
        if server is not None:
            server.should_exit = True

    try:
        # The first start fetches the broker's jars (about a minute): say what we wait for.
        with Steps(plain=False).waiting(startup_message(settings)):
            stack.start()
        assert stack.owner is not None
        supervisor = stack.supervise(on_fatal=stop_everything)
        if args.capture:
            capture = CaptureWriter(Path(args.capture))
        app = stack.owner.api(capture, components=supervisor.problems)
        host, port = settings.api.host, settings.api.port
        broker = stack.broker
        log.info(
            "sentinel is up: API http://%s:%d (OpenAPI at /docs), webhooks at "
            "POST /api/webhooks/{github,jenkins,generic}; broker %s at %s; data in %s",
            host,
            port,
            broker.kind if broker else "external",
            stack.settings.kafka.bootstrap_servers,
            settings.embedded.data_dir,
        )
        # proxy_headers off: api.auth's proxy mode trusts the socket's peer address only.
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_config=None, proxy_headers=False)
        )
        if not fatal:
            serve(server)
    finally:
        log.info("stopping the embedded stack")
        stack.stop()
        if capture is not None:
            capture.close()
            log.info("recorded %d records to %s", capture.records, capture.path)
    if fatal:
        log.critical("sentinel up stopped: %s", fatal[0])
        return 1
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from processors.worker.app import run_worker
    from processors.worker.progress import ProcessedOffsets

    settings = settings_from(args)
    setup_logging(settings.logging.level, settings.logging.format, "worker")
    heartbeat = Heartbeat("worker")  # beaten by a timer on the worker's event loop
    owned = OwnershipBox()  # kept by the same timer: what the partition watchdog judges
    processed = ProcessedOffsets()  # a Faust sensor: what the worker has finished
    start_ops(
        settings,
        "worker",
        heartbeat,
        {"broker": broker_check(settings)},
        progress=(settings.worker_app_id, owned),
        routes={"/progress": processed.snapshot},
    )
    run_worker(
        settings,
        loglevel=settings.logging.level.lower(),
        logfmt=settings.logging.format,
        heartbeat=heartbeat.beat,
        ownership=owned,
        sensors=[processed],
    )
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from sentinel.stack import StoreOwner

    settings = settings_from(args)
    setup_logging(settings.logging.level, settings.logging.format, "api")
    bootstrap_servers(settings)  # no broker configured: say so before opening the store
    owner = StoreOwner(settings, run_sink=args.with_sink)
    try:
        owner.start()
        assert owner.store is not None
        checks = {"broker": broker_check(settings), "store": store_check(owner.store.ping)}
        start_ops(settings, "api", ready_checks=checks)
        server = uvicorn.Server(
            uvicorn.Config(
                owner.api(),
                host=settings.api.host,
                port=settings.api.port,
                log_config=None,
                proxy_headers=False,
            )
        )
        serve(server)
    finally:
        owner.stop()
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from sentinel.warm_start import start_warm_start
    from sinks.clickhouse.migrations import migrate
    from sinks.clickhouse.sink import ClickHouseSink, default_routes
    from sinks.clickhouse.store import open_store

    settings = settings_from(args)
    setup_logging(settings.logging.level, settings.logging.format, "sink")
    bootstrap_servers(settings)  # no broker configured: say so before opening the store
    store = open_store(settings)
    migrate(store)
    sink = ClickHouseSink(settings, store, default_routes(settings))
    start_warm_start(settings, store)
    heartbeat = Heartbeat("sink")
    checks = {"broker": broker_check(settings), "store": store_check(store.ping)}
    start_ops(
        settings, "sink", heartbeat, checks, progress=(settings.sink_group_id, sink.ownership)
    )
    stop = threading.Event()
    on_signals(lambda: stop.set())
    try:
        sink.run_forever(stop, heartbeat=heartbeat.beat)
    finally:
        store.close()
    return 0


def cmd_k8s_watch(args: argparse.Namespace) -> int:
    from producers.k8s.watch import run_k8s_watch

    return _run_elected_producer(args, "k8s-watch", run_k8s_watch)


def cmd_log_stream(args: argparse.Namespace) -> int:
    from producers.k8s.log_stream import run_log_stream

    return _run_elected_producer(args, "log-stream", run_log_stream)


def _run_elected_producer(args: argparse.Namespace, component: str, run: Any) -> int:
    """k8s-watch / log-stream: one active replica (leader_election), the others on standby."""
    from producers.k8s.leader import ElectionStatus, LeadershipLost

    settings = settings_from(args)
    setup_logging(settings.logging.level, settings.logging.format, component)
    status = ElectionStatus()
    # A standby is ready too: it must not hold up a rolling update while another leads.
    start_ops(
        settings,
        component,
        ready_checks={"broker": broker_check(settings)},
        details=lambda: {"role": status.role},
    )
    stop = threading.Event()
    on_signals(stop.set)
    try:
        run(settings, stop, status=status)  # returns once stopped and the producer is flushed
    except LeadershipLost as exc:
        log.error("%s: %s; exiting so that a restart rejoins the election", component, exc)
        return 1
    return 0


def add_parsers(sub: Any) -> None:
    up = sub.add_parser("up", help="run everything embedded: broker, store, worker, sink, API")
    up.add_argument("--data-dir", help="where broker, store and spool keep their files")
    up.add_argument("--api-port", type=int, help="HTTP port of the API (default 8080)")
    up.add_argument("--broker", choices=[k.value for k in BrokerKind], help="embedded broker")
    up.add_argument(
        "--capture", metavar="OUT", help="also record every incoming webhook to this capture file"
    )
    up.set_defaults(func=cmd_up)
    sub.add_parser("worker", help="the Faust worker (run tracking)").set_defaults(func=cmd_worker)
    api = sub.add_parser("api", help="HTTP API and webhook receiver")
    api.add_argument(
        "--with-sink",
        action="store_true",
        help="also run the ClickHouse sink here (needed with the embedded store)",
    )
    api.set_defaults(func=cmd_api)
    sub.add_parser("sink", help="the ClickHouse sink").set_defaults(func=cmd_sink)
    sub.add_parser(
        "k8s-watch", help="watch Pods, Jobs, Services and Events into the k8s topic"
    ).set_defaults(func=cmd_k8s_watch)
    sub.add_parser(
        "log-stream", help="follow the container logs of run pods into the logs topic"
    ).set_defaults(func=cmd_log_stream)
