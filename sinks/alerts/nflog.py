"""Whether a receiver must be told about a group now (Alertmanager's `notify.DedupStage`, pure).

`needs_update` is `needsUpdate` of Alertmanager's notify/notify.go against the receiver's entry
of the notification log (`NotificationLogEntry`: what it was last sent, and when):

- never told about the group: only if something fires;
- something fires that was not in the last message: yes (the firing set is not a subset);
- nothing fires any more but the last message had firing alerts: yes — the "all resolved"
  message (logged even when `send_resolved` is off, then without sending, so the log is clear);
- with `send_resolved`, an alert resolved that the last message did not show resolved: yes;
- otherwise only once `repeat_interval` has passed since the last message.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from schemas.messages import NotificationLogEntry


def needs_update(
    entry: NotificationLogEntry | None,
    firing: Collection[str],
    resolved: Collection[str],
    send_resolved: bool,
    repeat_interval_s: float,
    now: datetime,
) -> bool:
    if entry is None:
        return len(firing) > 0
    if not set(firing) <= set(entry.firing_ids):
        return True
    if not firing:
        return len(entry.firing_ids) > 0
    if send_resolved and not set(resolved) <= set(entry.resolved_ids):
        return True
    # `<=` rather than Alertmanager's strict "before": a resend interval equal to the flush
    # interval (Alertmanager receivers, both 60 s) must resend at every flush.
    return entry.sent_at <= now - timedelta(seconds=repeat_interval_s)
