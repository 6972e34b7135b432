"""The `sentinel` command: one subcommand per component, plus the embedded all-in-one mode."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from producers.captures.recording import CaptureWriter
from runtime.config import BrokerKind, ConfigError, Settings, load_settings
from runtime.log_setup import setup_logging
from sentinel.logs_cli import add_parser as add_logs_parser

log = logging.getLogger("sentinel.cli")

EXIT_CONFIG = 2


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(args.config, **overrides)


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        load_settings(args.file)
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{args.file}: OK")
    return 0


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
    settings = _settings(args, **overrides)
    setup_logging(settings.logging.level, settings.logging.format)
    stack = EmbeddedStack(settings, config_path=Path(args.config) if args.config else None)
    capture: CaptureWriter | None = None
    try:
        stack.start()
        assert stack.owner is not None
        if args.capture:
            capture = CaptureWriter(Path(args.capture))
        app = stack.owner.api(capture)
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
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None))
        _serve(server)
    finally:
        log.info("stopping the embedded stack")
        stack.stop()
        if capture is not None:
            capture.close()
            log.info("recorded %d records to %s", capture.records, capture.path)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from producers.captures.replay import replay
    from schemas.capture import CaptureError, read_capture
    from sentinel.replay_wiring import build_replay_targets
    from sentinel.stack import WebhookIntake

    settings = _settings(args)
    setup_logging(settings.logging.level, settings.logging.format)
    try:
        records = list(read_capture(Path(args.capture)))  # refuse a bad file before publishing
    except (CaptureError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    intake = WebhookIntake(settings)
    intake.start()
    try:
        targets = build_replay_targets(settings, intake)
        stats = asyncio.run(replay(records, targets, speed=args.speed))
    finally:
        intake.stop()  # flushes: every record is acknowledged (or spooled) before we exit
    print(f"replayed {stats.summary()}")
    for problem in stats.rejected:
        print(f"rejected: {problem}", file=sys.stderr)
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    import uvicorn
    from fastapi import FastAPI

    from producers.captures.recording import RecordingIngest
    from producers.webhooks.routes import github_router
    from sentinel.stack import token_routers

    settings = _settings(args)
    setup_logging(settings.logging.level, settings.logging.format)
    writer = CaptureWriter(Path(args.out))
    app = FastAPI(title="Automation Run Sentinel — capture")
    app.include_router(
        github_router(
            RecordingIngest(writer),
            settings.github_webhook_secret(),
            settings.webhooks.max_body_bytes,
        )
    )
    for router in token_routers(settings, None, writer):  # POST /api/webhooks/{jenkins,generic}
        app.include_router(router)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    stop = threading.Event()
    threads = _capture_producers(args, settings, writer, stop)
    log.info(
        "recording to %s: POST webhooks to http://%s:%d/api/webhooks/{github,jenkins,generic}"
        "%s; Ctrl-C stops",
        writer.path,
        settings.api.host,
        settings.api.port,
        "".join(f", {t.name}" for t in threads),
    )
    try:
        _serve(
            uvicorn.Server(
                uvicorn.Config(app, host=settings.api.host, port=settings.api.port, log_config=None)
            )
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        writer.close()
    print(f"recorded {writer.records} records to {writer.path}")
    return 0


def _capture_producers(
    args: argparse.Namespace, settings: Settings, writer: CaptureWriter, stop: threading.Event
) -> list[threading.Thread]:
    """The watcher and log streamer of `sentinel capture --k8s/--logs`: the live code paths,
    recording what they would publish instead of publishing it."""
    from producers.captures.recording import NullPublisher

    threads = []
    if args.k8s:
        from producers.k8s.watch import run_k8s_watch

        threads.append(
            threading.Thread(
                target=run_k8s_watch,
                name="kubernetes watch",
                args=(settings, stop, NullPublisher(), [writer.k8s]),
                daemon=True,
            )
        )
    if args.logs:
        from producers.k8s.log_stream import run_log_stream

        threads.append(
            threading.Thread(
                target=run_log_stream,
                name="pod logs",
                args=(settings, stop, NullPublisher(), [writer.log]),
                daemon=True,
            )
        )
    for thread in threads:
        thread.start()
    return threads


def cmd_worker(args: argparse.Namespace) -> int:
    from processors.worker.app import run_worker

    settings = _settings(args)
    setup_logging(settings.logging.level, settings.logging.format)
    run_worker(settings, loglevel=settings.logging.level.lower())
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from sentinel.stack import StoreOwner

    settings = _settings(args)
    setup_logging(settings.logging.level, settings.logging.format)
    owner = StoreOwner(settings, run_sink=args.with_sink)
    try:
        owner.start()
        server = uvicorn.Server(
            uvicorn.Config(
                owner.api(), host=settings.api.host, port=settings.api.port, log_config=None
            )
        )
        _serve(server)
    finally:
        owner.stop()
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from sentinel.warm_start import start_warm_start
    from sinks.clickhouse.migrations import migrate
    from sinks.clickhouse.sink import ClickHouseSink, default_routes
    from sinks.clickhouse.store import open_store

    settings = _settings(args)
    setup_logging(settings.logging.level, settings.logging.format)
    store = open_store(settings)
    migrate(store)
    sink = ClickHouseSink(settings, store, default_routes(settings))
    start_warm_start(settings, store)
    stop = threading.Event()
    _on_signals(lambda: stop.set())
    try:
        sink.run_forever(stop)
    finally:
        store.close()
    return 0


def cmd_k8s_watch(args: argparse.Namespace) -> int:
    from producers.k8s.watch import run_k8s_watch

    settings = _settings(args)
    setup_logging(settings.logging.level, settings.logging.format)
    stop = threading.Event()
    _on_signals(stop.set)
    run_k8s_watch(settings, stop)  # returns once stopped and the producer is flushed
    return 0


def cmd_log_stream(args: argparse.Namespace) -> int:
    from producers.k8s.log_stream import run_log_stream

    settings = _settings(args)
    setup_logging(settings.logging.level, settings.logging.format)
    stop = threading.Event()
    _on_signals(stop.set)
    run_log_stream(settings, stop)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from sentinel.query import OutputFormat, render, run_query
    from sinks.clickhouse.store import StoreLockedError, store_errors

    if (args.sql is None) == (args.file is None):
        print("error: give the SQL as an argument or with --file, not both", file=sys.stderr)
        return EXIT_CONFIG
    sql = args.sql if args.sql is not None else Path(args.file).read_text()
    settings = _settings(args)
    setup_logging("WARNING", "text")
    try:
        result = run_query(settings, sql)
    except StoreLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except store_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render(result, OutputFormat(args.format)))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from sinks.clickhouse.migrations import migrate
    from sinks.clickhouse.store import open_store

    settings = _settings(args)
    setup_logging(settings.logging.level, "text")
    store = open_store(settings)
    try:
        applied = migrate(store)
    finally:
        store.close()
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    from sentinel.topic_admin import ensure_topics

    settings = _settings(args)
    setup_logging(settings.logging.level, "text")
    created = ensure_topics(settings)
    print("created: " + (", ".join(created) if created else "nothing (all exist)"))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from schemas.capture import CaptureError
    from sentinel.analyze import analyze_capture, render_json, render_text

    settings = _settings(args)
    setup_logging("WARNING" if args.json else settings.logging.level, "text")
    try:
        report, stats = analyze_capture(
            Path(args.capture), settings, BrokerKind(args.broker), bootstrap=args.bootstrap
        )
    except CaptureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(render_json(report) if args.json else render_text(report, stats))
    return 0


def _serve(server: Any) -> None:
    """Run uvicorn until Ctrl-C / SIGTERM, then return so the caller stops the rest.

    uvicorn re-raises the signal it caught once it has shut down. SIGTERM's default action would
    end the process on the spot, leaving the broker and worker children running, so both
    signals are turned into KeyboardInterrupt, which is the normal way out here.
    """

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()


def _on_signals(handler: Callable[[], None]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: handler())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentinel", description="Automation Run Sentinel: watch CI and test-automation runs."
    )
    parser.add_argument(
        "--config",
        "-c",
        help="YAML config file (default: $SENTINEL_CONFIG, else built-in defaults)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything embedded: broker, store, worker, sink, API")
    up.add_argument("--data-dir", help="where broker, store and spool keep their files")
    up.add_argument("--api-port", type=int, help="HTTP port of the API (default 8080)")
    up.add_argument("--broker", choices=[k.value for k in BrokerKind], help="embedded broker")
    up.add_argument(
        "--capture", metavar="OUT", help="also record every incoming webhook to this capture file"
    )
    up.set_defaults(func=cmd_up)

    replay_cmd = sub.add_parser(
        "replay", help="publish a capture to the configured Kafka, as live input would be"
    )
    replay_cmd.add_argument("capture", help="capture file (JSON Lines)")
    replay_cmd.add_argument(
        "--speed", type=float, default=None, help="X times real time (default: as fast as possible)"
    )
    replay_cmd.set_defaults(func=cmd_replay)

    capture_cmd = sub.add_parser(
        "capture", help="record live input to a capture file (no broker or store needed)"
    )
    capture_cmd.add_argument("out", help="capture file to append to (JSON Lines)")
    capture_cmd.add_argument(
        "--k8s",
        action="store_true",
        help="also record Kubernetes watch events (config section k8s)",
    )
    capture_cmd.add_argument(
        "--logs", action="store_true", help="also record pod log lines (config section logs)"
    )
    capture_cmd.set_defaults(func=cmd_capture)

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
    sub.add_parser("migrate", help="apply ClickHouse schema migrations").set_defaults(
        func=cmd_migrate
    )
    query = sub.add_parser("query", help="run SQL against the store (docs/analyst-queries.md)")
    query.add_argument("sql", nargs="?", help="one SQL statement")
    query.add_argument("--file", "-f", help="read the SQL from this file instead")
    query.add_argument("--format", choices=["table", "csv", "json"], default="table")
    query.set_defaults(func=cmd_query)

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="action", required=True
    )
    topics.add_parser("create", help="create missing topics").set_defaults(func=cmd_topics_create)

    analyze = sub.add_parser("analyze", help="replay a capture offline and print the findings")
    analyze.add_argument("capture", help="capture file (JSON Lines)")
    analyze.add_argument("--json", action="store_true", help="one JSON document on stdout")
    analyze.add_argument(
        "--broker",
        default=BrokerKind.AUTO.value,
        choices=[k.value for k in BrokerKind],
        help="broker for the ephemeral stack (default auto: Apache Kafka when Java is "
        "present; with tansu the worker's internal topics never read as fully consumed)",
    )
    analyze.add_argument(
        "--bootstrap",
        default=None,
        help="use this Kafka cluster (own topic prefix) instead of starting a broker",
    )
    analyze.set_defaults(func=cmd_analyze)

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True
    )
    check = config.add_parser("check", help="validate a config file; exit 2 listing bad keys")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    add_logs_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
