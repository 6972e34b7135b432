"""Administration subcommands: config check, topics, migrations and queries of the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runtime.config import ConfigError, load_settings
from runtime.log_setup import setup_logging
from sentinel.cli.common import EXIT_CONFIG, settings_from


def cmd_config_check(args: argparse.Namespace) -> int:
    from sinks.alerts.templates import check_templates

    try:
        check_templates(load_settings(args.file).alerting, args.file)
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{args.file}: OK")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from sinks.clickhouse.migrations import migrate
    from sinks.clickhouse.store import open_store

    settings = settings_from(args)
    setup_logging(settings.logging.level, "text")
    store = open_store(settings)
    try:
        applied = migrate(store)
    finally:
        store.close()
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from sentinel.query import OutputFormat, render, run_query
    from sinks.clickhouse.store import StoreLockedError, store_errors

    if (args.sql is None) == (args.file is None):
        print("error: give the SQL as an argument or with --file, not both", file=sys.stderr)
        return EXIT_CONFIG
    sql = args.sql if args.sql is not None else Path(args.file).read_text()
    settings = settings_from(args)
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


def cmd_topics_create(args: argparse.Namespace) -> int:
    from sentinel.topic_admin import ensure_topics

    settings = settings_from(args)
    setup_logging(settings.logging.level, "text")
    created = ensure_topics(settings)
    print("created: " + (", ".join(created) if created else "nothing (all exist)"))
    return 0


def add_parsers(sub: Any) -> None:
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

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True
    )
    check = config.add_parser("check", help="validate a config file; exit 2 listing bad keys")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
