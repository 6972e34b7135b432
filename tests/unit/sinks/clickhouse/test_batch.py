"""The sink's batch bookkeeping (pure: no broker, no store)."""

from __future__ import annotations

from sinks.clickhouse.rows import RUNS_ROUTE
from sinks.clickhouse.sink import Batch, Origin, PartitionSlice, TableRows
from sinks.clickhouse.topic_rows import STAGES_ROUTE


def test_tokens_name_the_range_and_the_table() -> None:
    part = PartitionSlice("sentinel.runs", 2, 10, 19)
    assert part.token("runs") == "sentinel.runs:2:10-19:runs"
    assert part.token("stages") == "sentinel.runs:2:10-19:stages"
    assert part.token() == "sentinel.runs:2:10-19"


def test_a_planned_slice_is_ready_only_once_it_reaches_its_last_offset() -> None:
    part = PartitionSlice("t", 0, 100, 100, planned_last=104, plan_committed=True)
    assert not part.ready and not part.frozen
    part.extend_to(103)
    assert not part.ready
    part.extend_to(104)
    assert part.ready and part.frozen  # complete: later offsets wait for the next batch


def test_an_unplanned_slice_is_ready_and_open() -> None:
    part = PartitionSlice("t", 0, 5, 9)
    assert part.ready and not part.frozen


def test_rows_of_every_table_and_dropping_counts_messages() -> None:
    batch = Batch()
    part = batch.slice_for("t", 0, 7)
    part.messages.append(Origin(7, b"k", b"v"))
    part.tables["runs"] = TableRows(RUNS_ROUTE, rows=[{"a": 1}], origins=[0])
    part.tables["stages"] = TableRows(STAGES_ROUTE, rows=[{"b": 1}, {"b": 2}], origins=[0, 0])
    assert len(part.rows) == 3
    assert batch.messages == 1
    assert batch.drop([("t", 0)]) == 1
    assert batch.messages == 0 and batch.started_at is None
