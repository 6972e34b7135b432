"""One message to one receiver about one group: what the engine decided to send (pure data)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from schemas.messages import AlertInstance, AlertRun, Severity

SEVERITY_ORDER = (Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL)
Reason = Literal["new", "update", "resolved", "repeat"]


@dataclass(frozen=True)
class Notification:
    """A flush of a group for one receiver.

    `firing` and `resolved` are the group's whole current state (silenced alerts left out);
    `new_firing` / `new_resolved` are what the receiver was not told yet. `sequence` counts the
    group's messages to this receiver (1 = the first, which Slack bot mode posts at the top of
    the channel; later ones go into its thread, `thread_ts`).
    """

    delivery_id: str
    receiver: str
    group_key: str
    partition: int
    route_id: str
    group_labels: dict[str, str]
    firing: tuple[AlertInstance, ...]
    resolved: tuple[AlertInstance, ...]
    new_firing: frozenset[str]
    new_resolved: frozenset[str]
    runs: tuple[AlertRun, ...]
    reason: Reason
    sequence: int
    created_at: datetime
    send_resolved: bool = True
    thread_ts: str | None = None
    thread_channel: str | None = None
    first_message_id: str = field(default="")

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    @property
    def alerts(self) -> tuple[AlertInstance, ...]:
        return self.firing + (self.resolved if self.send_resolved else ())

    @property
    def anomaly_ids(self) -> list[str]:
        return [alert.alert_id for alert in self.alerts if alert.kind == "anomaly"]

    @property
    def run_ids(self) -> list[str]:
        return [run.run_id for run in self.runs]

    @property
    def worst_severity(self) -> Severity:
        pool = self.firing or self.resolved
        if not pool:
            return Severity.INFO
        return max((alert.severity for alert in pool), key=SEVERITY_ORDER.index)


def delivery_id(
    group_key: str, receiver: str, firing: list[str], resolved: list[str], sequence: int
) -> str:
    """The same flush decided again (after a restart) gets the same id, so a receiver can drop
    a message it already has (webhook `X-Sentinel-Delivery`, email Message-ID)."""
    parts = [group_key, receiver, sorted(firing), sorted(resolved), sequence]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def thread_id(group_key: str, receiver: str) -> str:
    """A stable id of a group's conversation with a receiver (email threads)."""
    return hashlib.sha256(json.dumps([group_key, receiver]).encode()).hexdigest()[:32]
