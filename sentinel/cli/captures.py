"""Subcommands around captures: record live input, replay it, analyse it offline."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from producers.captures.recording import CaptureWriter
from runtime.config import BrokerKind, Settings
from runtime.log_setup import setup_logging
from sentinel.cli.common import EXIT_CONFIG, serve, settings_from
from sentinel.progress import Steps

log = logging.getLogger("sentinel.cli")


def cmd_replay(args: argparse.Namespace) -> int:
    from producers.captures.replay import replay
    from schemas.capture import CaptureError, read_capture
    from sentinel.replay_wiring import build_replay_targets
    from sentinel.stack import WebhookIntake

    settings = settings_from(args)
    setup_logging(settings.logging.level, settings.logging.format, "replay")
    try:
        records = list(read_capture(Path(args.capture)))  # refuse a bad file before publishing
    except (CaptureError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    intake = WebhookIntake(settings)
    intake.start()
    try:
        targets = build_replay_targets(settings, intake)
        with Steps().counting(f"publishing {Path(args.capture).name}") as report:
            stats = asyncio.run(replay(records, targets, speed=args.speed, progress=report))
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

    settings = settings_from(args)
    setup_logging(settings.logging.level, settings.logging.format, "capture")
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
        serve(
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


def cmd_analyze(args: argparse.Namespace) -> int:
    from schemas.capture import CaptureError
    from sentinel.analyze import analyze_capture, render_json, render_text

    settings = settings_from(args)
    setup_logging("WARNING" if args.json else settings.logging.level, "text")
    try:
        with Steps().counting(f"analyzing {Path(args.capture).name}") as progress:
            report, stats = analyze_capture(
                Path(args.capture),
                settings,
                BrokerKind(args.broker),
                bootstrap=args.bootstrap,
                progress=progress,
            )
    except CaptureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(render_json(report) if args.json else render_text(report, stats))
    return 0


def add_parsers(sub: Any) -> None:
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
