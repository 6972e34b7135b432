"""The `sentinel` command: one subcommand per component, plus the embedded all-in-one mode.

Each module of this package adds its subcommands with `add_parsers(sub)`: `services` (up and
one component each), `captures` (capture, replay, analyze), `admin` (config, topics, migrate,
query), `logs` (offline log analysis).
"""

from __future__ import annotations

import argparse
import sys

from runtime.config import ConfigError
from runtime.extras import MissingExtra
from runtime.kafka_clients import BrokerNotConfigured
from sentinel.cli import admin, alerts, captures, demo, doctor, logs, services
from sentinel.cli.common import EXIT_CONFIG


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
    services.add_parsers(sub)
    captures.add_parsers(sub)
    admin.add_parsers(sub)
    logs.add_parser(sub)
    alerts.add_parsers(sub)
    demo.add_parsers(sub)
    doctor.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, MissingExtra, BrokerNotConfigured) as exc:
        # Set-up problems, each message naming the fix: no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
