from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.messages import RunState, RunStatus, StageState
from sinks.clickhouse.rows import (
    RUN_COLUMNS,
    RUN_FIELDS_NOT_STORED,
    RUN_FIELDS_SPLIT,
    RUNS_ROUTE,
    RowConversionError,
    dedup_token,
    parse_run_state,
    row_to_run_state,
    run_state_to_row,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_state(**changes: object) -> RunState:
    fields: dict[str, object] = {
        "run_id": "github:acme/app:42:1",
        "provider": "github",
        "provider_run_id": "42",
        "repository": "acme/app",
        "pipeline": "CI",
        "branch": "main",
        "status": RunStatus.RUNNING,
        "created_at": T0,
        "first_event_at": T0,
        "updated_at": T0 + timedelta(seconds=5),
        "labels": {"team": "core"},
        "version": 3,
    }
    fields.update(changes)
    return RunState.model_validate(fields)


def test_row_has_exactly_the_run_columns() -> None:
    row = run_state_to_row(make_state())
    assert tuple(row) == RUN_COLUMNS
    assert RUNS_ROUTE.columns == RUN_COLUMNS
    assert RUNS_ROUTE.table == "runs"


def test_every_run_state_field_is_stored_or_explicitly_left_out() -> None:
    test_columns = {c for c in RUN_COLUMNS if c.startswith("tests_")}
    stored = set(RUN_COLUMNS) - {"stage_count", "extra"} - test_columns | RUN_FIELDS_SPLIT
    assert set(RunState.model_fields) == stored | RUN_FIELDS_NOT_STORED
    assert not stored & RUN_FIELDS_NOT_STORED


def test_row_converts_back_to_the_same_state() -> None:
    stage = StageState(stage_id="j", name="build", status=RunStatus.SUCCEEDED, updated_at=T0)
    raw = make_state(stages=[stage]).model_dump(mode="json") | {"new_field": [1, 2]}
    state = parse_run_state(json.dumps(raw).encode())
    assert row_to_run_state(run_state_to_row(state)) == state


def test_naive_times_from_a_client_are_read_as_utc() -> None:
    row = run_state_to_row(make_state())
    row["created_at"] = row["created_at"].replace(tzinfo=None)
    assert row_to_run_state(row).created_at == T0


def test_scalars_are_copied_and_status_is_its_value() -> None:
    row = run_state_to_row(make_state())
    assert row["run_id"] == "github:acme/app:42:1"
    assert row["status"] == "running"
    assert type(row["status"]) is str
    assert row["version"] == 3
    assert row["attempt"] == 1
    assert row["schema_version"] == 1
    assert row["labels"] == {"team": "core"}
    assert row["started_at"] is None
    assert row["finished_at"] is None
    assert row["duration_s"] is None


def test_times_are_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    row = run_state_to_row(make_state(created_at=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)))
    assert row["created_at"] == T0
    assert row["created_at"].utcoffset() == timedelta(0)


def test_stages_become_a_json_array_with_a_count() -> None:
    stage = StageState(
        stage_id="job-1", name="build", status=RunStatus.SUCCEEDED, updated_at=T0, duration_s=1.5
    )
    row = run_state_to_row(make_state(stages=[stage, stage.model_copy(update={"name": "test"})]))
    stages = json.loads(row["stages"])
    assert row["stage_count"] == 2
    assert [s["name"] for s in stages] == ["build", "test"]
    assert stages[0]["status"] == "succeeded"
    assert stages[0]["updated_at"] == "2024-05-01T12:00:00Z"


def test_unknown_fields_are_kept_in_extra() -> None:
    raw = make_state().model_dump(mode="json") | {"new_field": {"a": 1}}
    row = run_state_to_row(parse_run_state(json.dumps(raw).encode()))
    assert json.loads(row["extra"]) == {"new_field": {"a": 1}}
    assert json.loads(run_state_to_row(make_state())["extra"]) == {}


def test_parse_round_trips_to_bytes() -> None:
    state = make_state()
    assert parse_run_state(state.to_bytes()) == state


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "invalid RunState"),
        (b'{"run_id": "x"}', "provider: Field required"),
        (None, "tombstone"),
    ],
)
def test_parse_failures_say_why(raw: bytes | None, reason: str) -> None:
    with pytest.raises(RowConversionError, match=reason):
        parse_run_state(raw)


def test_route_converts_bytes_to_a_row() -> None:
    assert RUNS_ROUTE.to_row(make_state().to_bytes())["run_id"] == "github:acme/app:42:1"


def test_dedup_token_is_deterministic_per_partition_range() -> None:
    assert dedup_token("t", 0, 5, 9) == dedup_token("t", 0, 5, 9)
    tokens = {
        dedup_token("t", 0, 5, 9),
        dedup_token("t", 1, 5, 9),
        dedup_token("u", 0, 5, 9),
        dedup_token("t", 0, 5, 10),
        dedup_token("t", 0, 6, 9),
    }
    assert len(tokens) == 5


def test_dedup_token_rejects_a_reversed_range() -> None:
    with pytest.raises(ValueError, match="after"):
        dedup_token("t", 0, 9, 5)
