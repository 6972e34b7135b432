"""Pure conversion of topic messages to ClickHouse rows (no client, no broker: unit-testable).

Each table the sink writes has a `TableRoute`: the table name, its column list and a function
turning one raw Kafka value into one row (`to_row`) or into any number of rows (`to_rows`, e.g.
the stages of a run snapshot). A value the function cannot convert raises `RowConversionError`;
the sink sends it to the dead letter topic with that message. The routes of the other topics
are in `sinks.clickhouse.topic_rows`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas.messages import RunState

Row = dict[str, Any]


class RowConversionError(ValueError):
    """A raw message that cannot become a row; the text says why (it ends up in the DLQ)."""


@dataclass(frozen=True)
class TableRoute:
    """Where one topic's messages go: `table`, with `columns`; rows built by `to_row` (exactly
    one per message) or `to_rows` (zero or more per message). Set exactly one of the two."""

    table: str
    columns: tuple[str, ...]
    to_row: Callable[[bytes | None], Row] | None = None
    to_rows: Callable[[bytes | None], list[Row]] | None = None

    def __post_init__(self) -> None:
        if (self.to_row is None) == (self.to_rows is None):
            raise ValueError(f"route to {self.table}: set exactly one of to_row and to_rows")

    def convert(self, raw: bytes | None) -> list[Row]:
        """The rows for one raw message value; raises what the converter raises."""
        if self.to_row is not None:
            return [self.to_row(raw)]
        assert self.to_rows is not None
        return self.to_rows(raw)


RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "schema_version",
    "provider",
    "provider_run_id",
    "attempt",
    "repository",
    "pipeline",
    "namespace",
    "branch",
    "commit_sha",
    "trigger",
    "actor",
    "status",
    "conclusion",
    "url",
    "created_at",
    "started_at",
    "finished_at",
    "duration_s",
    "stages",
    "stage_count",
    "labels",
    "correlation_keys",
    "pods",
    "k8s_events",
    "markers",
    "tests_total",
    "tests_passed",
    "tests_failed",
    "tests_skipped",
    "tests_error",
    "attribution",
    "closed_by",
    "first_event_at",
    "updated_at",
    "last_activity_at",
    "version",
    "extra",
)


# RunState fields with no column: tracker bookkeeping, not run history.
RUN_FIELDS_NOT_STORED = frozenset({"merge_keys", "watermark", "log_activity"})
# RunState fields stored in more than one column (or under another name).
RUN_FIELDS_SPLIT = frozenset({"tests"})
_TIME_COLUMNS = (
    "created_at",
    "started_at",
    "finished_at",
    "first_event_at",
    "updated_at",
    "last_activity_at",
)
_TEST_STATUSES = ("total", "passed", "failed", "skipped", "error")


def parse_run_state(raw: bytes | None) -> RunState:
    """Validate a `sentinel.runs` value; raise `RowConversionError` saying what is wrong."""
    if raw is None:
        # A compacted topic's tombstone: there is no state to store.
        raise RowConversionError("RunState value is empty (tombstone)")
    try:
        state: RunState = RunState.model_validate_json(raw)
    except ValidationError as exc:
        raise RowConversionError(f"invalid RunState: {_summarise(exc)}") from exc
    return state


def run_state_to_row(state: RunState) -> Row:
    """One `runs` row: scalars as they are, times in UTC, stages as a JSON string."""
    stages = [stage.model_dump(mode="json") for stage in state.stages]
    return {
        "run_id": state.run_id,
        "schema_version": state.schema_version,
        "provider": state.provider,
        "provider_run_id": state.provider_run_id,
        "attempt": state.attempt,
        "repository": state.repository,
        "pipeline": state.pipeline,
        "namespace": state.namespace,
        "branch": state.branch,
        "commit_sha": state.commit_sha,
        "trigger": state.trigger,
        "actor": state.actor,
        "status": state.status.value,
        "conclusion": state.conclusion,
        "url": state.url,
        "created_at": _utc(state.created_at),
        "started_at": _utc(state.started_at),
        "finished_at": _utc(state.finished_at),
        "duration_s": state.duration_s,
        "stages": _json(stages),
        "stage_count": len(stages),
        "labels": dict(state.labels),
        "correlation_keys": list(state.correlation_keys),
        "pods": _json([pod.model_dump(mode="json") for pod in state.pods]),
        "k8s_events": _json([event.model_dump(mode="json") for event in state.k8s_events]),
        "markers": _json({name: _iso(when) for name, when in state.markers.items()}),
        **{f"tests_{name}": getattr(state.tests, name) for name in _TEST_STATUSES},
        "attribution": state.attribution.model_dump_json() if state.attribution else "",
        "closed_by": state.closed_by,
        "first_event_at": _utc(state.first_event_at),
        "updated_at": _utc(state.updated_at),
        "last_activity_at": _utc(state.last_activity_at),
        "version": state.version,
        # Fields from newer producers are kept rather than dropped (see schemas.messages).
        "extra": _json(state.model_extra or {}),
    }


def row_to_run_state(row: Mapping[str, Any]) -> RunState:
    """The inverse of `run_state_to_row`: a `runs` row (from a query) back into a `RunState`."""
    data: dict[str, Any] = json.loads(row.get("extra") or "{}")
    data.update((name, row[name]) for name in RUN_COLUMNS if name in row and name != "extra")
    data["stages"] = json.loads(data.get("stages") or "[]")
    data.pop("stage_count", None)
    data["labels"] = dict(data.get("labels") or {})
    data["pods"] = json.loads(data.get("pods") or "[]")
    data["k8s_events"] = json.loads(data.get("k8s_events") or "[]")
    data["attribution"] = json.loads(data["attribution"]) if data.get("attribution") else None
    data["markers"] = json.loads(data.get("markers") or "{}")
    data["correlation_keys"] = list(data.get("correlation_keys") or [])
    data["tests"] = {name: data.pop(f"tests_{name}", 0) or 0 for name in _TEST_STATUSES}
    for name in _TIME_COLUMNS:
        data[name] = _aware_utc(data.get(name))
    return RunState.model_validate(data)


def run_row_from_bytes(raw: bytes | None) -> Row:
    return run_state_to_row(parse_run_state(raw))


RUNS_ROUTE = TableRoute(table="runs", columns=RUN_COLUMNS, to_row=run_row_from_bytes)


def dedup_token(
    topic: str, partition: int, first_offset: int, last_offset: int, table: str | None = None
) -> str:
    """Insert deduplication token for one partition's slice of a batch (into `table`).

    The same offset range always yields the same token, so re-inserting a batch after a failed
    or unacknowledged insert is dropped by ClickHouse instead of landing twice. ClickHouse keeps
    deduplication per table; naming the table anyway keeps one topic's two tables (runs and
    stages) apart in logs and in `system.part_log`.
    """
    if first_offset > last_offset:
        raise ValueError(f"first_offset {first_offset} is after last_offset {last_offset}")
    token = f"{topic}:{partition}:{first_offset}-{last_offset}"
    return f"{token}:{table}" if table else token


def _utc(value: datetime | None) -> datetime | None:
    # Models only hold aware datetimes; normalising to UTC makes the row independent of the
    # producer's offset and matches the DateTime64(3, 'UTC') columns.
    return None if value is None else value.astimezone(UTC)


def _aware_utc(value: Any) -> Any:
    # A client returning naive datetimes (tz_mode="naive_utc") means UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        location = ".".join(str(part) for part in error["loc"]) or "(value)"
        parts.append(f"{location}: {error['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)
