"""`sentinel doctor`: check config, Kafka, ClickHouse, Kubernetes, webhooks and alert channels."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from runtime import troubleshooting as guide
from runtime.config import ConfigError, Settings, load_settings
from runtime.log_setup import setup_logging


def run_checks(settings: Settings, send_test: bool = False) -> list[Any]:
    from sentinel.doctor import probes
    from sentinel.doctor.report import fail

    # Each probe with the guide's section for when the probe itself fails.
    steps: list[tuple[str, str, Callable[[], list[Any]]]] = [
        ("kafka", guide.BROKER_UNREACHABLE, lambda: probes.check_kafka(settings)),
        ("store", guide.STORE_UNREACHABLE, lambda: probes.check_store(settings)),
        ("kubernetes", guide.KUBERNETES_CONNECTION, lambda: probes.check_kubernetes(settings)),
        ("webhooks", guide.CONFIG_INVALID, lambda: probes.check_webhooks(settings)),
        ("alerts", guide.ALERTS_NOT_SENDING, lambda: probes.check_channels(settings, send_test)),
    ]
    checks: list[Any] = []
    for name, anchor, probe in steps:
        try:
            checks.extend(probe())
        except Exception as exc:  # a probe's own failure is a finding, never a traceback
            fix = "see the message; run with SENTINEL_LOGGING__LEVEL=DEBUG for details"
            checks.append(fail(name, f"the check itself failed: {exc!r}"[:300], fix, anchor))
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    from sentinel.doctor.report import exit_code, fail, ok, render_json, render_text

    setup_logging("ERROR", "text", "doctor")
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)
    source = args.config or "defaults and environment"
    try:
        settings = load_settings(args.config)
        from sinks.alerts.templates import check_templates

        check_templates(settings.alerting, source)
    except ConfigError as exc:
        checks = [
            fail(
                "config",
                f"{exc.source}: " + "; ".join(exc.problems),
                "fix the keys named (config.example.yaml documents each)",
                guide.CONFIG_INVALID,
            )
        ]
        print(render_json(checks) if args.json else render_text(checks))
        return 1
    checks = [ok("config", f"{source}: valid")]
    checks += run_checks(settings, send_test=args.send_test)
    print(render_json(checks) if args.json else render_text(checks))
    return exit_code(checks)


def add_parsers(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check config, Kafka, ClickHouse, Kubernetes access, webhook secrets and alert "
        "channels; exit 1 if something is wrong",
    )
    doctor.add_argument(
        "--send-test",
        action="store_true",
        help="send a test message through every alert receiver (default: only connect)",
    )
    doctor.add_argument("--json", action="store_true", help="the checks as one JSON document")
    doctor.set_defaults(func=cmd_doctor)
