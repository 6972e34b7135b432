"""What the worker tells its partition watchdog (`runtime.progress_monitor`): the input
partitions its consumer owns (table changelogs are Faust's own, read only while recovering),
and that it stands still on purpose while it recovers its tables from their changelogs."""

from __future__ import annotations

from typing import Any

from faust.exceptions import ConsumerNotStarted

from runtime.progress_monitor import Ownership

RECOVERING = "recovering its tables from their changelogs"


def worker_ownership(app: Any) -> Ownership:
    """Called on the worker's event loop (its heartbeat timer), never from another thread."""
    try:
        assigned = app.consumer.assignment()
    except ConsumerNotStarted:
        return Ownership(excuse="starting")
    changelogs = set(app.tables.changelog_topics)
    partitions = frozenset(
        (tp.topic, tp.partition) for tp in assigned if tp.topic not in changelogs
    )
    return Ownership(partitions, RECOVERING if app.in_recovery else None)
