"""`GET /api/stats`: what the store says (runs by status, alert deliveries) and the pure
assembly of broker offsets into messages in/out and lag per consumer group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sentinel.queries.common import TIME_PARAM
from sentinel.queries.models import GroupStat, PartitionLag, TopicStat


def runs_by_status_sql(database: str) -> str:
    return (
        f"SELECT status, countIf(sort_at >= {{hour:{TIME_PARAM}}}) AS last_hour, count() AS"
        " last_day FROM (SELECT status, ifNull(created_at, first_event_at) AS sort_at"
        f" FROM {database}.runs FINAL) WHERE sort_at >= {{day:{TIME_PARAM}}} GROUP BY status"
    )


def deliveries_by_outcome_sql(database: str) -> str:
    return (
        f"SELECT outcome, countIf(attempted_at >= {{day:{TIME_PARAM}}}) AS last_day,"
        f" count() AS total FROM {database}.alert_deliveries FINAL GROUP BY outcome"
    )


def counts_by(rows: Sequence[Mapping[str, Any]], key: str, column: str) -> dict[str, int]:
    """{row[key]: row[column]} for the rows with a count, sorted by key."""
    return {str(r[key]): int(r[column]) for r in sorted(rows, key=lambda r: r[key]) if r[column]}


Offsets = Mapping[tuple[str, int], int]


def topic_stats(ends: Offsets) -> list[TopicStat]:
    """Per topic: partitions and messages written (sum of end offsets)."""
    topics: dict[str, list[int]] = {}
    for (topic, _partition), end in ends.items():
        topics.setdefault(topic, []).append(end)
    return [
        TopicStat(topic=topic, partitions=len(values), messages=sum(values))
        for topic, values in sorted(topics.items())
    ]


def group_stats(groups: Mapping[str, Offsets], ends: Offsets) -> list[GroupStat]:
    """Per consumer group: committed offsets against the partitions' ends. A partition the
    group never committed counts as lagging by everything written to it."""
    out = []
    for group, committed in sorted(groups.items()):
        partitions = []
        for (topic, partition), offset in sorted(committed.items()):
            end = ends.get((topic, partition), 0)
            known = offset if offset >= 0 else None
            lag = max(0, end - (known or 0))
            partitions.append(
                PartitionLag(topic=topic, partition=partition, committed=known, end=end, lag=lag)
            )
        out.append(
            GroupStat(
                group=group,
                consumed=sum(p.committed or 0 for p in partitions),
                lag=sum(p.lag for p in partitions),
                partitions=partitions,
            )
        )
    return out
