"""`sentinel alerts` (the alert dispatcher) and `sentinel silence add|list|expire`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.log_setup import setup_logging
from sentinel.cli.common import EXIT_CONFIG, on_signals, settings_from


def parse_duration(text: str) -> timedelta:
    from sinks.alerts.silence_rules import SilenceError
    from sinks.alerts.silence_rules import parse_duration as parse

    try:
        return parse(text)
    except SilenceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone offset (add Z or +02:00)")
    return value


def cmd_alerts(args: argparse.Namespace) -> int:
    from runtime.ops_server import Heartbeat
    from sentinel.cli.ops import broker_check, start_ops
    from sinks.alerts.service import AlertDispatcher

    settings = settings_from(args)
    setup_logging(settings.logging.level, settings.logging.format, "alerts")
    dispatcher = AlertDispatcher(settings)  # a bad template or missing secret: exit 2 here
    heartbeat = Heartbeat("alerts")  # beaten by the dispatch loop: /health fails if it hangs
    start_ops(
        settings,
        "alerts",
        heartbeat,
        {"broker": broker_check(settings)},
        progress=(settings.alerts_group_id, dispatcher.ownership),
    )
    stop = threading.Event()
    on_signals(stop.set)
    dispatcher.run_forever(stop, heartbeat.beat)
    return 0


def cmd_silence_add(args: argparse.Namespace) -> int:
    from sinks.alerts.silence_rules import SilenceError, new_silence, parse_matchers
    from sinks.alerts.silence_store import SilenceStore

    settings = settings_from(args)
    setup_logging("WARNING", "text")
    try:
        silence = new_silence(
            parse_matchers(args.matchers),
            created_by=args.author or getpass.getuser(),
            comment=args.comment,
            now=datetime.now(UTC),
            starts_at=args.start,
            ends_at=args.until,
            duration=args.duration,
        )
    except SilenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    store = SilenceStore(settings)
    try:
        store.put(silence)
    finally:
        store.close()
    print(silence.silence_id)
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    from sinks.alerts.silence_store import SilenceStore

    settings = settings_from(args)
    setup_logging("WARNING", "text")
    now = datetime.now(UTC)
    silences = sorted(SilenceStore(settings).all().values(), key=lambda s: s.starts_at)
    if not args.all:
        silences = [s for s in silences if s.state_at(now) != "expired"]
    if args.json:
        print(json.dumps([_view(s, now) for s in silences], indent=2))
        return 0
    for silence in silences:
        matchers = " ".join(str(m) for m in silence.matchers)
        print(
            f"{silence.silence_id}  {silence.state_at(now):<8} until {silence.ends_at.isoformat()}"
            f"  {matchers}  by {silence.created_by}: {silence.comment}"
        )
    if not silences:
        print("no silences" + ("" if args.all else " (active or pending; --all for expired)"))
    return 0


def cmd_silence_expire(args: argparse.Namespace) -> int:
    from sinks.alerts.silence_store import SilenceStore

    settings = settings_from(args)
    setup_logging("WARNING", "text")
    store = SilenceStore(settings)
    try:
        ended = store.expire(args.silence_id, datetime.now(UTC))
    finally:
        store.close()
    if ended is None:
        print(f"error: no silence with id {args.silence_id!r}", file=sys.stderr)
        return 1
    print(f"{ended.silence_id} expired at {ended.ends_at.isoformat()}")
    return 0


def _view(silence: Any, now: datetime) -> dict[str, Any]:
    view: dict[str, Any] = silence.model_dump(mode="json")
    view["state"] = silence.state_at(now)
    return view


def add_parsers(sub: Any) -> None:
    sub.add_parser(
        "alerts", help="the alert dispatcher: routes anomalies to Slack, email, webhooks..."
    ).set_defaults(func=cmd_alerts)
    silence = sub.add_parser("silence", help="mute alerts by label (docs/alerts.md)")
    actions = silence.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help='silence alerts matching every matcher, e.g. team="web"')
    add.add_argument("matchers", nargs="+", help='name="value", name!="v", name=~"re", name!~"re"')
    add.add_argument("--comment", "-m", required=True, help="why (shown to everyone)")
    add.add_argument("--author", "-a", help="who (default: the current user)")
    add.add_argument("--start", type=parse_time, help="RFC 3339 start (default: now)")
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--duration", "-d", type=parse_duration, help="e.g. 2h, 30m, 1d")
    until.add_argument("--until", type=parse_time, help="RFC 3339 end time")
    add.set_defaults(func=cmd_silence_add)
    listing = actions.add_parser("list", help="active and pending silences")
    listing.add_argument("--all", action="store_true", help="include expired silences")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_silence_list)
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("silence_id")
    expire.set_defaults(func=cmd_silence_expire)
