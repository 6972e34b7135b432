"""The engine driven by event time over recorded runs and anomalies (pure): what each receiver
would have been sent. `sentinel analyze` uses it; nothing is sent.

Messages are applied in event-time order (a run snapshot by its `updated_at`, an anomaly by its
`detected_at`; snapshots first on a tie), and before each one the engine's timers that fell due
are run at their own time. After the last message, time runs on long enough for the last
groups to flush and for ended runs to resolve — not for repeat intervals. Every message counts
as delivered at the time it was decided (a Slack bot thread gets a made-up ``ts``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from runtime.alerting_config import AlertingConfig
from schemas.messages import Anomaly, RunState
from sinks.alerts.engine import AlertEngine
from sinks.alerts.notification import Notification
from sinks.alerts.routing import Route
from sinks.alerts.templates import Rendered, check_templates

Event = tuple[RunState | Anomaly, int]
MAX_STEPS = 100_000


@dataclass(frozen=True)
class Simulated:
    notification: Notification
    rendered: Rendered
    channel_type: str
    at: datetime

    def view(self) -> dict[str, object]:
        return {
            "receiver": self.notification.receiver,
            "channel": self.channel_type,
            "at": self.at.isoformat(),
            "status": self.notification.status,
            "reason": self.notification.reason,
            "group_key": self.notification.group_key,
            "sequence": self.notification.sequence,
            "title": self.rendered.title,
            "text": self.rendered.text,
            "anomaly_ids": self.notification.anomaly_ids,
            "run_ids": self.notification.run_ids,
        }


def event_time(message: RunState | Anomaly) -> datetime:
    return message.updated_at if isinstance(message, RunState) else message.detected_at


def backtest(config: AlertingConfig, events: Iterable[Event]) -> list[Simulated]:
    renderers = check_templates(config)
    engine = AlertEngine(config)
    kinds = {receiver.name: receiver.kind for receiver in config.receivers}
    sent: list[Simulated] = []

    def deliver(notifications: list[Notification], at: datetime) -> None:
        for notification in notifications:
            rendered = renderers[notification.receiver].render(notification)
            sent.append(Simulated(notification, rendered, kinds[notification.receiver], at))
            ts = f"sim.{len(sent)}" if kinds[notification.receiver] == "slack_bot" else None
            engine.completed(notification, True, at, thread_ts=ts, thread_channel="sim")

    def run_until(until: datetime) -> None:
        for _ in range(MAX_STEPS):
            due = engine.next_due()
            if due is None or due > until:
                return
            deliver(engine.tick(due), due)

    ordered = sorted(events, key=lambda e: (event_time(e[0]), isinstance(e[0], Anomaly)))
    last: datetime | None = None
    for message, partition in ordered:
        at = event_time(message)
        run_until(at)
        if isinstance(message, RunState):
            engine.observe_run(message, partition, at)
        else:
            engine.observe_anomaly(message, partition, at)
        deliver(engine.tick(at), at)
        last = at
    if last is not None:
        run_until(last + _settling_time(config, engine.tree))
    return sent


def _settling_time(config: AlertingConfig, tree: Route) -> timedelta:
    routes = tree.walk()
    wait = max(route.group_wait_s for route in routes)
    interval = max(route.group_interval_s for route in routes)
    judge = max(config.pipeline_judge_wait_s, config.run_wait_s)
    return timedelta(seconds=judge + wait + 2 * interval + 1)
