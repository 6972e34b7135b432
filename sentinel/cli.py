"""The `sentinel` command: one subcommand per component, plus the embedded all-in-one mode."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinel.config import BrokerKind, ConfigError, Settings, load_settings
from sentinel.logs import setup_logging

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
    try:
        stack.start()
        assert stack.owner is not None
        app = stack.owner.api()
        host, port = settings.api.host, settings.api.port
        broker = stack.broker
        log.info(
            "sentinel is up: API http://%s:%d (OpenAPI at /docs), GitHub webhooks at "
            "POST /api/webhooks/github; broker %s at %s; data in %s",
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
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from processors.app import run_worker

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
    from sinks.clickhouse.migrations import migrate
    from sinks.clickhouse.sink import ClickHouseSink, runs_route
    from sinks.clickhouse.store import open_store

    settings = _settings(args)
    setup_logging(settings.logging.level, settings.logging.format)
    store = open_store(settings)
    migrate(store)
    sink = ClickHouseSink(settings, store, [runs_route(settings)])
    stop = threading.Event()
    _on_signals(lambda: stop.set())
    try:
        sink.run_forever(stop)
    finally:
        store.close()
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
        report, stats = analyze_capture(Path(args.capture), settings, BrokerKind(args.broker))
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
    sub.add_parser("migrate", help="apply ClickHouse schema migrations").set_defaults(
        func=cmd_migrate
    )

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="action", required=True
    )
    topics.add_parser("create", help="create missing topics").set_defaults(func=cmd_topics_create)

    analyze = sub.add_parser("analyze", help="replay a capture offline and print the findings")
    analyze.add_argument("capture", help="capture file (JSON Lines)")
    analyze.add_argument("--json", action="store_true", help="one JSON document on stdout")
    analyze.add_argument(
        "--broker",
        default=BrokerKind.TANSU.value,
        choices=[k.value for k in BrokerKind],
        help="broker for the ephemeral stack (default tansu: fastest start)",
    )
    analyze.set_defaults(func=cmd_analyze)

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True
    )
    check = config.add_parser("check", help="validate a config file; exit 2 listing bad keys")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
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
