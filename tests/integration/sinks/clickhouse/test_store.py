"""The store and its migrations against the embedded ClickHouse engine (chdb) in a temp dir.

chdb hosts one engine path per process: every test opens its own data dir and closes the store,
so the next test can open another one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from runtime.config import Settings
from schemas.messages import RunState, RunStatus
from sinks.clickhouse import MigrationError, Store, migrate, open_store
from sinks.clickhouse.migrations import load_migrations, split_statements
from sinks.clickhouse.rows import RUN_COLUMNS, dedup_token, row_to_run_state, run_state_to_row

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(make_settings: Callable[..., Settings]) -> Iterator[Store]:
    opened = open_store(make_settings())
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped migrations."""
    target = tmp_path / "sql"
    target.mkdir()
    for entry in (resources.files("schemas") / "sql").iterdir():
        if entry.name.endswith(".sql"):
            (target / entry.name).write_text(entry.read_text("utf-8"))
    return target


def run_state(run_id: str, version: int, status: RunStatus) -> RunState:
    return RunState(
        run_id=run_id,
        provider="github",
        provider_run_id=run_id,
        repository="acme/app",
        status=status,
        created_at=T0,
        first_event_at=T0,
        updated_at=T0 + timedelta(seconds=version),
        labels={"team": "core"},
        version=version,
    )


def insert_states(store: Store, *states: RunState, token: str | None = None) -> None:
    rows = [run_state_to_row(state) for state in states]
    store.insert("runs", rows, RUN_COLUMNS, dedup_token=token)


def count_runs(store: Store) -> int:
    return int(store.command("SELECT count() FROM runs"))


def test_open_store_creates_the_database_in_the_data_dir(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(store={"database": "sentinel_test"})
    store = open_store(settings)
    try:
        assert store.database == "sentinel_test"
        assert store.ping()
        assert store.query_rows("SELECT currentDatabase() AS db") == [{"db": "sentinel_test"}]
        assert (settings.embedded.data_dir / "clickhouse").is_dir()
    finally:
        store.close()


def test_migrations_apply_once(store: Store) -> None:
    assert migrate(store) == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert migrate(store) == []
    history = store.query_rows("SELECT version, name FROM schema_migrations FINAL ORDER BY 1")
    assert history == [
        {"version": "0001", "name": "runs"},
        {"version": "0002", "name": "pipeline_tables"},
        {"version": "0003", "name": "trends"},
        {"version": "0004", "name": "run_sources"},
        {"version": "0005", "name": "run_infra"},
        {"version": "0006", "name": "alert_delivery_details"},
    ]


def test_runs_table_has_every_column_commented(store: Store) -> None:
    migrate(store)
    columns = store.query_rows(
        "SELECT name, type, comment FROM system.columns "
        "WHERE database = {db:String} AND table = 'runs' ORDER BY position",
        {"db": store.database},
    )
    names = [c["name"] for c in columns]
    assert names == [*RUN_COLUMNS, "ingested_at"]
    assert all(c["comment"] for c in columns)
    types = {c["name"]: c["type"] for c in columns}
    assert types["status"] == "LowCardinality(String)"
    assert types["created_at"] == "Nullable(DateTime64(3, 'UTC'))"
    assert types["labels"] == "Map(String, String)"


def test_changed_migration_is_refused(store: Store, sql_dir: Path) -> None:
    migrate(store, sql_dir)
    path = sql_dir / "0001_runs.sql"
    path.write_text(path.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match=r"0001_runs\.sql: changed after it was applied"):
        migrate(store, sql_dir)


def test_only_new_files_apply_with_several_statements(store: Store, sql_dir: Path) -> None:
    migrate(store, sql_dir)
    (sql_dir / "0100_extra.sql").write_text(
        "-- two statements, one comment\n"
        "CREATE TABLE IF NOT EXISTS {database}.a (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
        "-- between\n"
        "CREATE TABLE IF NOT EXISTS {database}.b (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
    )
    assert migrate(store, sql_dir) == ["0100"]
    assert migrate(store, sql_dir) == []
    tables = store.query_rows("SHOW TABLES")
    assert {"a", "b", "runs", "schema_migrations"} <= {t["name"] for t in tables}


def test_badly_named_and_duplicate_files_are_refused(sql_dir: Path) -> None:
    (sql_dir / "2_oops.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"2_oops\.sql"):
        load_migrations(sql_dir)
    (sql_dir / "2_oops.sql").unlink()
    shutil.copy(sql_dir / "0001_runs.sql", sql_dir / "0001_again.sql")
    with pytest.raises(MigrationError, match="version 0001"):
        load_migrations(sql_dir)


def test_split_statements_ignores_comments_and_blank_tails() -> None:
    sql = "-- head\nSELECT 1;\n\n  -- note\nSELECT\n  2 ;  \n-- tail\n"
    assert split_statements(sql) == ["SELECT 1", "SELECT\n  2"]


def test_insert_with_the_same_token_lands_once(store: Store) -> None:
    migrate(store)
    state = run_state("r1", 1, RunStatus.RUNNING)
    token = dedup_token("sentinel.runs", 0, 10, 10)
    insert_states(store, state, token=token)
    insert_states(store, state, token=token)
    assert count_runs(store) == 1
    insert_states(store, state, token=dedup_token("sentinel.runs", 0, 11, 11))
    assert count_runs(store) == 2


def test_final_returns_the_latest_version(store: Store) -> None:
    migrate(store)
    insert_states(
        store, run_state("r1", 1, RunStatus.PENDING), run_state("r2", 1, RunStatus.FAILED)
    )
    insert_states(store, run_state("r1", 3, RunStatus.SUCCEEDED))
    insert_states(store, run_state("r1", 2, RunStatus.RUNNING))  # arrives late, loses
    rows = store.query_rows("SELECT run_id, version, status FROM runs FINAL ORDER BY run_id")
    assert rows == [
        {"run_id": "r1", "version": 3, "status": "succeeded"},
        {"run_id": "r2", "version": 1, "status": "failed"},
    ]


def test_row_round_trips(store: Store) -> None:
    migrate(store)
    state = run_state("r1", 1, RunStatus.RUNNING)
    insert_states(store, state)
    (row,) = store.query_rows("SELECT * FROM runs FINAL WHERE run_id = {id:String}", {"id": "r1"})
    expected = run_state_to_row(state)
    assert {name: row[name] for name in RUN_COLUMNS} == expected
    assert row["created_at"].tzinfo is not None
    assert row["ingested_at"] > T0
    assert row_to_run_state(row) == state
