"""`sentinel demo`: the first five minutes (docs/demo.md)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from runtime.config import BrokerKind
from runtime.extras import require_embedded
from runtime.log_setup import setup_logging
from sentinel.cli.common import EXIT_CONFIG, settings_from


def cmd_demo(args: argparse.Namespace) -> int:
    from sentinel.demo.runner import DemoError, DemoOptions, run_demo
    from sentinel.progress import Steps

    overrides: dict[str, dict[str, Any]] = {}
    if args.api_port is not None:
        overrides["api"] = {"port": args.api_port}
    settings = settings_from(args, **overrides)
    setup_logging("INFO" if args.verbose else "WARNING", "text", "demo")
    if not args.verbose:
        # The client retries what it warns about here (a coordinator still loading, at start).
        logging.getLogger("librdkafka").setLevel(logging.ERROR)
        # Unset webhook secrets are `sentinel doctor`'s to report; the demo posts none.
        logging.getLogger("sentinel.webhooks").setLevel(logging.ERROR)
    require_embedded(
        "chdb",
        "sentinel demo (it runs the embedded store)",
        "install the embedded extra: pip install 'automation-run-sentinel[embedded]'",
    )
    options = DemoOptions(
        data_dir=Path(args.data_dir).resolve(),
        exit_after=args.exit,
        json=args.json,
        bootstrap=args.bootstrap,
        broker=BrokerKind(args.broker),
        live_every_s=args.live_every,
        live_speed=args.live_speed,
    )
    try:
        return run_demo(settings, options, Steps(enabled=not args.quiet))
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def add_parsers(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="replay a bundled three-day history of three pipelines into the embedded stack",
    )
    demo.add_argument(
        "--exit", action="store_true", help="stop after the summary (exit 1 if it is not exact)"
    )
    demo.add_argument("--json", action="store_true", help="the summary as JSON on stdout")
    demo.add_argument("--quiet", action="store_true", help="no progress on stderr")
    demo.add_argument("--verbose", action="store_true", help="log what the stack does")
    demo.add_argument(
        "--data-dir", default=".data/demo", help="the demo's own data (emptied at every start)"
    )
    demo.add_argument("--api-port", type=int, help="HTTP port of the pages and API (default 8080)")
    demo.add_argument(
        "--broker",
        default=BrokerKind.AUTO.value,
        choices=[k.value for k in BrokerKind],
        help="embedded broker (default auto: Apache Kafka when Java is present)",
    )
    demo.add_argument(
        "--bootstrap", help="use this Kafka cluster (own topic prefix) instead of starting one"
    )
    demo.add_argument(
        "--live-every",
        type=float,
        default=45.0,
        metavar="SECONDS",
        help="pause between the live runs played after the history (default 45)",
    )
    demo.add_argument(
        "--live-speed",
        type=float,
        default=1.0,
        metavar="X",
        help="play live runs X times faster than real time (default 1)",
    )
    demo.set_defaults(func=cmd_demo)
