"""`sentinel demo`: the embedded stack, the bundled history replayed into it, then live runs.

1. A data directory of its own (``.data/demo`` by default, emptied at every start: the demo
   always shows the same history, ending now).
2. The embedded stack (broker, worker, sink, store) with the settings `sentinel analyze` uses
   for a replay (event time moves with the data; baselines from the history alone).
3. The history, moved to end now, replayed with progress; the findings read back from the
   store; the alerts the console receiver gets for them (the dispatcher's decisions in event
   time, `sinks.alerts.backtest`, as `sentinel analyze` reports them); the summary.
4. Unless `--exit`: the HTTP API and pages, the alert dispatcher (console receiver), and a new
   run played in real time now and then, with event time moving on the wall clock, until
   Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from runtime.config import BrokerKind, Settings
from sentinel.demo import history
from sentinel.demo.summary import Links, Summary, render_json, render_links, render_text, summarise
from sentinel.progress import Steps, startup_message

log = logging.getLogger("sentinel.demo")
MARKER = ".sentinel-demo"  # only a directory holding this is emptied at start
FLAKIEST = "flakiest_tests"


class DemoError(RuntimeError):
    """A set-up problem the user can fix (port in use, data directory not the demo's)."""


@dataclass
class DemoOptions:
    data_dir: Path
    exit_after: bool = False
    json: bool = False
    bootstrap: str | None = None
    broker: BrokerKind = BrokerKind.AUTO
    live_every_s: float = 45.0
    live_speed: float = 1.0
    timeout_s: float = 300.0


def run_demo(settings: Settings, options: DemoOptions, steps: Steps) -> int:
    from sentinel.analyze import analysis_settings
    from sentinel.stack import EmbeddedStack

    prepare_data_dir(options.data_dir)
    base = history.with_demo_rules(settings)
    demo = demo_settings(analysis_settings(base, options.data_dir, options.bootstrap), options)
    port_free(demo.api.host, demo.api.port)
    raw = history.load_history()
    now = datetime.now(UTC)
    records = history.parse(history.shift_records(raw, history.delta_to_end_at(raw, now)))
    stack = EmbeddedStack(demo, broker_kind=options.broker)
    try:
        with steps.waiting(startup_message(demo, options.bootstrap)):
            stack.start()
        summary = replay_history(stack, base, records, options, steps)
        write_config(stack.settings, options.data_dir)  # for doctor and query, now and after
        print(render_json(summary) if options.json else render_text(summary), flush=True)
        (options.data_dir / "summary.json").write_text(render_json(summary))
        if options.exit_after:
            return 0 if summary.matches_expected else 1
        serve_live(stack, base, summary, options, steps)
    finally:
        with steps.waiting("stopping the embedded stack"):
            stack.stop()
    return 0


def demo_settings(settings: Settings, options: DemoOptions) -> Settings:
    """The analysis settings of the demo's own stack (own topic prefix on a shared broker)."""
    updates: dict[str, Any] = {}
    if options.bootstrap:
        prefix = f"sentinel-demo-{uuid.uuid4().hex[:10]}."
        updates["topics"] = settings.topics.model_copy(update={"prefix": prefix})
    return settings.model_copy(update=updates)


def prepare_data_dir(path: Path) -> None:
    """An empty directory for this demo; a directory is emptied only if a demo made it."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            raise DemoError(
                f"{path} exists and was not made by `sentinel demo`; choose another --data-dir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by sentinel demo; emptied at its next start\n")


def port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise DemoError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is `sentinel up` or another "
                "demo running? Stop it, or pass --api-port"
            ) from exc


def replay_history(
    stack: Any, base: Settings, records: list[Any], options: DemoOptions, steps: Steps
) -> Summary:
    from sentinel.analyze import findings, replay_letting_time_pass

    expected = history.load_expected()
    days = len({record.ts.date() for record in records})
    with steps.counting(f"replaying {days} days of history", "records") as report:
        # Not the end of input: live runs follow, so event time is only said to reach the end.
        replay_letting_time_pass(
            stack, records, base.tracking.settle_s, options.timeout_s, report, final=False
        )
    with steps.waiting("reading what was found"):
        report_data = findings(stack, base.alerting)
    links = make_links(stack.settings, options, expected["featured_run"])
    summary = summarise(report_data, expected, links)
    summary.query_result = example_query(stack)
    return summary


def make_links(settings: Settings, options: DemoOptions, featured: str) -> Links:
    config = options.data_dir / "sentinel.yaml"
    return Links(
        base=f"http://{settings.api.host}:{settings.api.port}",
        featured_run=featured,
        query=f"sentinel --config {config} query -f schemas/queries/{FLAKIEST}.sql",
        doctor=f"sentinel --config {config} doctor",
    )


def example_query(stack: Any) -> str | None:
    from sentinel.query import OutputFormat, QueryResult, analyst_queries, render

    store = stack.owner.store
    try:
        result = store.client.query(analyst_queries()[FLAKIEST].strip().rstrip(";"))
    except Exception as exc:  # the summary is still worth printing
        log.warning("the example query failed: %s", exc)
        return None
    rows: list[Sequence[Any]] = [list(row) for row in result.result_rows]
    return render(QueryResult(list(result.column_names), rows), OutputFormat.TABLE)


# --------------------------------------------------------------------------------------------
# the live phase


def serve_live(
    stack: Any, base: Settings, summary: Summary, options: DemoOptions, steps: Steps
) -> None:
    import uvicorn

    from sentinel.cli.common import serve

    dispatcher = start_dispatcher(stack.settings, base, options.json)
    stop = threading.Event()
    player = threading.Thread(
        target=play_live, args=(stack, options, stop), name="demo-live-runs", daemon=True
    )
    player.start()
    links = render_links(summary.links)
    message = (
        "\nThe stack keeps running; a new run is played now and then. Ctrl-C stops it.\n" + links
    )
    if options.json:
        print(message, file=steps.console.file, flush=True)
    else:
        print(message, flush=True)
    settings = stack.settings
    server = uvicorn.Server(
        uvicorn.Config(
            stack.owner.api(),
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            log_level="warning",
            proxy_headers=False,
        )
    )
    try:
        serve(server)
    finally:
        stop.set()
        player.join(30)
        if dispatcher is not None:
            dispatcher.stop()


def write_config(settings: Settings, data_dir: Path) -> Path:
    """A config file for `sentinel doctor` / `sentinel query` against the demo's stack."""
    path = data_dir / "sentinel.yaml"
    data = {
        "kafka": {"bootstrap_servers": settings.kafka.bootstrap_servers},
        "topics": {"prefix": settings.topics.prefix, "partitions": settings.topics.partitions},
        "embedded": {"data_dir": str(settings.embedded.data_dir)},
        "api": {"host": settings.api.host, "port": settings.api.port},
        "tracking": {"app_id": settings.worker_app_id},
        "sink": {"group_id": settings.sink_group_id},
    }
    path.write_text(
        "# Written by `sentinel demo` for the stack it runs (doctor, query); gone at its next "
        "start.\n" + yaml.safe_dump(data, sort_keys=False)
    )
    return path


def start_dispatcher(settings: Settings, base: Settings, quiet_stdout: bool) -> Any:
    """The alert dispatcher for the live runs, from now on (the history's alerts are in the
    summary); console receivers write to stderr when stdout carries the JSON summary."""
    from sinks.alerts.service import DispatcherThread

    alerting = base.alerting.model_copy(update={"enabled": True, "start_at": "latest"})
    if quiet_stdout:
        receivers = [
            r.model_copy(update={"console": r.console.model_copy(update={"stream": "stderr"})})
            if r.console is not None
            else r
            for r in alerting.receivers
        ]
        alerting = alerting.model_copy(update={"receivers": receivers})
    live = settings.model_copy(update={"alerting": alerting})
    dispatcher = DispatcherThread(live)
    dispatcher.start(live)
    return dispatcher


def play_live(stack: Any, options: DemoOptions, stop: threading.Event) -> None:
    """A template run now and then, in real time (or `live_speed` x), with ticks that move
    event time on the wall clock so that runs end, settle and are judged."""
    from producers.captures.replay import replay
    from sentinel.replay_wiring import build_replay_targets

    templates = history.load_live()
    targets = build_replay_targets(stack.settings, stack.owner.intake)
    ticker = threading.Thread(
        target=tick_wall_clock, args=(stack.settings, stop), name="demo-clock", daemon=True
    )
    ticker.start()
    n = 0
    while not stop.is_set():
        run = templates.make(n, datetime.now(UTC))
        log.info("playing live run %s (%s)", run.run_id, run.pipeline)
        try:
            asyncio.run(_replay_until(replay, history.parse(run.records), targets, options, stop))
        except Exception:
            log.exception("live run %s could not be played", run.run_id)
        n += 1
        stop.wait(options.live_every_s)
    ticker.join(10)


async def _replay_until(
    replay: Any, records: list[Any], targets: Any, options: DemoOptions, stop: threading.Event
) -> None:
    task = asyncio.ensure_future(replay(records, targets, speed=options.live_speed))
    while not task.done():
        if stop.is_set():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        await asyncio.sleep(0.2)
    task.result()


def tick_wall_clock(settings: Settings, stop: threading.Event, every_s: float = 5.0) -> None:
    """Event time follows the wall clock (a few seconds behind, for records still in flight)."""
    from sentinel.analyze import time_passed

    while not stop.wait(every_s):
        try:
            time_passed(settings, datetime.now(UTC) - timedelta(seconds=3), final=False)
        except Exception as exc:
            log.warning("could not move event time on: %s", exc)
