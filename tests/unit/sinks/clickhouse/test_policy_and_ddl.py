from __future__ import annotations

from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from runtime.config import load_settings
from sinks.clickhouse.ddl import DdlOptions, render
from sinks.clickhouse.migrations import load_migrations
from sinks.clickhouse.policy import parse_plan, plan_metadata, rejection_reason
from sinks.clickhouse.store import insert_settings, open_store


def test_a_plan_round_trips_through_commit_metadata() -> None:
    assert parse_plan(plan_metadata(120, 179), committed_offset=120) == (120, 179)


@pytest.mark.parametrize(
    ("metadata", "committed"),
    [
        (None, 5),
        ("", 5),
        ("something else", 5),
        (plan_metadata(5, 9), 10),  # committed past the plan: it was carried out
        ("sentinel-sink/plan:9-5", 9),
        ("sentinel-sink/plan:x-5", 9),
    ],
)
def test_stale_or_foreign_metadata_is_no_plan(metadata: str | None, committed: int) -> None:
    assert parse_plan(metadata, committed) is None


def test_server_errors_about_the_data_reject_the_rows() -> None:
    constraint = DatabaseError(
        "Code: 469. DB::Exception: Constraint `c` is violated at row 1. (VIOLATED_CONSTRAINT)",
        code=469,
    )
    reason = rejection_reason(constraint)
    assert reason is not None and "VIOLATED_CONSTRAINT" in reason
    # Code only in the text (clickhouse-connect over chdb leaves `code` unset sometimes).
    assert rejection_reason(DatabaseError("Code: 6. DB::Exception: Cannot parse text")) is not None


def test_client_serialization_errors_reject_the_rows_with_their_cause() -> None:
    try:
        try:
            raise OverflowError("ubyte format requires 0 <= number <= 255")
        except OverflowError as cause:
            raise DataError("Unable to create native array for column `x`") from cause
    except DataError as exc:
        reason = rejection_reason(exc)
    assert reason is not None and "column `x`" in reason and "0 <= number <= 255" in reason


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError("Error HTTPConnectionPool(...): Connection refused"),
        OperationalError("Code: 469. looks like data, but the server was unreachable", code=469),
        DatabaseError("Code: 241. DB::Exception: Memory limit exceeded", code=241),
        DatabaseError("Code: 60. DB::Exception: Unknown table", code=60),
        ConnectionResetError("reset by peer"),
    ],
)
def test_unavailability_is_not_a_rejection(exc: BaseException) -> None:
    assert rejection_reason(exc) is None


SQL = """CREATE TABLE IF NOT EXISTS {database}.t
(x UInt8, TTL_days UInt8 DEFAULT {log_ttl_days})
ENGINE = ReplacingMergeTree(version)
ORDER BY x;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.v TO {database}.t AS SELECT 1 AS x;
CREATE TABLE IF NOT EXISTS {database}.a (x AggregateFunction(uniq, String))
ENGINE = AggregatingMergeTree ORDER BY tuple();
CREATE TABLE IF NOT EXISTS {database}.m (x UInt8) ENGINE = MergeTree ORDER BY x;"""


def test_render_fills_placeholders_and_leaves_the_rest() -> None:
    rendered = render(SQL, DdlOptions(database="db", log_ttl_days=9))
    assert "db.t" in rendered and "DEFAULT 9" in rendered
    assert "ON CLUSTER" not in rendered and "Replicated" not in rendered


def test_render_for_a_cluster_adds_on_cluster_and_replicated_engines() -> None:
    rendered = render(SQL, DdlOptions(database="db", cluster="prod", replicated=True))
    assert "CREATE TABLE IF NOT EXISTS db.t ON CLUSTER 'prod'" in rendered
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS db.v ON CLUSTER 'prod' TO db.t" in rendered
    assert "ENGINE = ReplicatedReplacingMergeTree(version)" in rendered
    assert "ENGINE = ReplicatedAggregatingMergeTree ORDER BY" in rendered
    assert "ENGINE = ReplicatedMergeTree ORDER BY" in rendered


def test_every_shipped_statement_renders_for_a_cluster() -> None:
    options = DdlOptions(database="db", cluster="prod", replicated=True)
    for migration in load_migrations():
        for statement in migration.statements(options):
            assert "{database}" not in statement and "{log_ttl_days}" not in statement
            if statement.startswith("CREATE"):
                assert "ON CLUSTER 'prod'" in statement, statement[:80]
            if "ENGINE" in statement:
                assert "ENGINE = Replicated" in statement, statement[:80]


@pytest.mark.parametrize("store", [{"cluster": "prod"}, {"replicated": True}])
def test_the_embedded_engine_refuses_cluster_options(
    store: dict[str, object], tmp_path: Path
) -> None:
    settings = load_settings(None, store=store, embedded={"data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match=r"need a ClickHouse server \(store.dsn\)"):
        open_store(settings)
    assert not (tmp_path / "clickhouse").exists()  # refused before opening anything


def test_async_inserts_are_always_waited_for() -> None:
    settings = load_settings(
        None, store={"async_insert": True, "insert_settings": {"max_insert_threads": "4"}}
    )
    assert insert_settings(settings) == {
        "max_insert_threads": "4",
        "async_insert": 1,
        "wait_for_async_insert": 1,
        "async_insert_deduplicate": 1,
    }
    assert insert_settings(load_settings(None)) == {}
