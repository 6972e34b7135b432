"""The full schema, the trend views and the documented analyst queries, on the embedded engine.

Rows are seeded through the sink's own converters (`routes_for`), so what is asserted here is
what the sink would store. Every analyst query in `schemas/queries` is executed and checked
against what its documentation promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from runtime.config import Settings
from schemas.messages import (
    AlertDelivery,
    Anomaly,
    AnomalyCategory,
    DeliveryOutcome,
    K8sEventType,
    K8sObjectEvent,
    LogLine,
    Message,
    RunState,
    RunStatus,
    Severity,
    StageState,
    TestResult,
)
from schemas.messages import (
    TestStatus as Outcome,
)
from schemas.topics import TopicNames
from sentinel.query import analyst_queries
from sinks.clickhouse import Store, migrate, open_store
from sinks.clickhouse.topic_rows import routes_for
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
TABLES = (
    "runs",
    "stages",
    "k8s_events",
    "log_lines",
    "log_templates",
    "test_results",
    "anomalies",
    "alert_deliveries",
    "pipeline_daily",
    "test_daily",
)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(store={"log_ttl_days": 9})


def insert(store: Store, topic_suffix: str, *messages: Message) -> None:
    """Insert `messages` the way the sink would, through the routes of their topic."""
    names = TopicNames("x.")
    for route in routes_for(names)[f"x.{topic_suffix}"]:
        rows = [row for m in messages for row in route.convert(m.to_bytes())]
        store.insert(route.table, rows, route.columns)


def run(
    run_id: str,
    status: RunStatus,
    *,
    pipeline: str = "ci",
    version: int = 1,
    duration: float | None = 60.0,
    commit: str | None = None,
    started: datetime = NOW - timedelta(hours=2),
    stages: list[StageState] | None = None,
) -> RunState:
    return RunState(
        run_id=run_id,
        provider="github",
        provider_run_id=run_id,
        repository="acme/app",
        pipeline=pipeline,
        commit_sha=commit,
        status=status,
        started_at=started,
        duration_s=duration if status.terminal else None,
        first_event_at=started,
        updated_at=started + timedelta(seconds=version),
        version=version,
        stages=stages or [],
    )


def result(
    run_id: str,
    name: str,
    status: Outcome,
    duration: float | None,
    *,
    attempt: int = 1,
    at: datetime = NOW - timedelta(hours=1),
) -> TestResult:
    return TestResult(
        run_id=run_id,
        suite="api",
        name=name,
        status=status,
        duration_s=duration,
        attempt=attempt,
        source="junit-xml",
        event_time=at,
    )


def infra(run_id: str, subject: str, type_: str, node: str | None = None) -> Anomaly:
    return Anomaly(
        anomaly_id=f"{run_id}:{type_}:{subject}",
        run_id=run_id,
        category=AnomalyCategory.INFRA,
        type=type_,
        severity=Severity.ERROR,
        subject=subject,
        summary=f"{type_} on {subject}",
        evidence={"node": node} if node else {},
        window_start=NOW - timedelta(hours=1),
        window_end=NOW - timedelta(minutes=50),
    )


def pod(namespace: str, name: str, node: str, reason: str = "") -> K8sObjectEvent:
    state = {"terminated": {"reason": reason, "exitCode": 137}} if reason else {"running": {}}
    return K8sObjectEvent(
        event_type=K8sEventType.MODIFIED,
        kind="Pod",
        api_version="v1",
        namespace=namespace,
        name=name,
        uid=f"uid-{name}",
        resource_version="7",
        correlation_key="run-x",
        object={
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "c", "state": state}]},
        },
        event_time=NOW - timedelta(hours=1),
    )


def query(store: Store, name: str) -> list[dict[str, object]]:
    sql = analyst_queries()[name]
    return store.query_rows(sql.strip().rstrip(";"))


def test_every_table_is_created_with_every_column_commented(store: Store) -> None:
    columns = store.query_rows(
        "SELECT table, name, comment FROM system.columns WHERE database = {db:String}",
        {"db": store.database},
    )
    tables = {c["table"] for c in columns}
    assert set(TABLES) <= tables
    uncommented = [
        f"{c['table']}.{c['name']}" for c in columns if c["table"] in TABLES and not c["comment"]
    ]
    assert uncommented == []


def test_log_lines_have_the_configured_ttl(store: Store) -> None:
    ddl = str(store.command("SHOW CREATE TABLE log_lines"))
    assert "TTL toDateTime(event_time) + toIntervalDay(9)" in ddl


def test_every_converter_row_fits_its_table(store: Store) -> None:
    stage = StageState(stage_id="j1", name="build", status=RunStatus.SUCCEEDED, updated_at=NOW)
    insert(store, "runs", run("r1", RunStatus.SUCCEEDED, stages=[stage]))
    insert(store, "k8s", pod("ci", "p1", "node-a", "OOMKilled"))
    insert(
        store,
        "logs",
        LogLine.model_validate(
            {
                "namespace": "ci",
                "pod": "p1",
                "container": "c",
                "line": "ERROR db timeout after 30s",
                "run_id": "r1",
                "event_time": NOW,
                "level": "ERROR",
                "template_id": "t-1",
                "template": "ERROR db timeout after <*>",
            }
        ),
    )
    insert(store, "tests", result("r1", "test_a", Outcome.PASSED, 1.5))
    insert(store, "anomalies", infra("r1", "ci/p1", "oom_killed"))
    insert(
        store,
        "alert-deliveries",
        AlertDelivery(
            delivery_id="d1",
            channel="slack",
            group_key="r1",
            anomaly_ids=["a1"],
            outcome=DeliveryOutcome.SENT,
            status_code=200,
        ),
    )
    counts = {t: int(store.command(f"SELECT count() FROM {t}")) for t in TABLES}
    assert counts == dict.fromkeys(TABLES, 1)
    (event,) = store.query_rows("SELECT node, phase, reason FROM k8s_events")
    assert event == {"node": "node-a", "phase": "Failed", "reason": "OOMKilled"}
    (template,) = store.query_rows(
        "SELECT template_id, template, line_count, error_count FROM log_templates FINAL"
    )
    assert template == {
        "template_id": "t-1",
        "template": "ERROR db timeout after <*>",
        "line_count": 1,
        "error_count": 1,
    }


def test_stages_keep_the_latest_run_version(store: Store) -> None:
    running = StageState(stage_id="j1", name="build", status=RunStatus.RUNNING, updated_at=NOW)
    done = running.model_copy(update={"status": RunStatus.SUCCEEDED, "duration_s": 12.0})
    insert(store, "runs", run("r1", RunStatus.RUNNING, version=1, stages=[running]))
    insert(store, "runs", run("r1", RunStatus.SUCCEEDED, version=2, stages=[done]))
    rows = store.query_rows("SELECT stage_id, status, duration_s, run_version FROM stages FINAL")
    assert rows == [{"stage_id": "j1", "status": "succeeded", "duration_s": 12.0, "run_version": 2}]


def test_pipeline_trend_counts_each_run_once_in_its_final_state(store: Store) -> None:
    # r1: three snapshots, the terminal one re-emitted (a late stage event bumped the version).
    insert(
        store,
        "runs",
        run("r1", RunStatus.PENDING, version=1),
        run("r1", RunStatus.RUNNING, version=2),
    )
    insert(store, "runs", run("r1", RunStatus.FAILED, version=3, duration=100.0))
    insert(store, "runs", run("r1", RunStatus.FAILED, version=4, duration=100.0))
    insert(
        store,
        "runs",
        run("r2", RunStatus.SUCCEEDED, duration=50.0),
        run("r3", RunStatus.RUNNING),  # still running: not in the trend yet
        run("r4", RunStatus.TIMED_OUT, pipeline="nightly", duration=3600.0),
    )
    rows = store.query_rows(
        "SELECT pipeline, runs, succeeded, failed, timed_out, failure_rate, duration_p50_s "
        "FROM pipeline_daily_trends ORDER BY pipeline"
    )
    assert [{k: v for k, v in r.items() if k != "duration_p50_s"} for r in rows] == [
        {
            "pipeline": "ci",
            "runs": 2,
            "succeeded": 1,
            "failed": 1,
            "timed_out": 0,
            "failure_rate": 0.5,
        },
        {
            "pipeline": "nightly",
            "runs": 1,
            "succeeded": 0,
            "failed": 0,
            "timed_out": 1,
            "failure_rate": 0.0,
        },
    ]
    assert rows[1]["duration_p50_s"] == pytest.approx(3600.0)
    exact = store.query_rows("SELECT pipeline, runs, failed FROM pipeline_daily_exact ORDER BY 1")
    assert exact == [
        {"pipeline": "ci", "runs": 2, "failed": 1},
        {"pipeline": "nightly", "runs": 1, "failed": 0},
    ]


def test_test_trend_counts_outcomes_and_flaky_runs(store: Store) -> None:
    insert(
        store,
        "tests",
        result("r1", "test_a", Outcome.FAILED, 2.0, attempt=1),
        result("r1", "test_a", Outcome.PASSED, 2.0, attempt=2),  # pass on retry: flaky
        result("r2", "test_a", Outcome.PASSED, 4.0),
        result("r2", "test_b", Outcome.SKIPPED, None),
    )
    rows = store.query_rows(
        "SELECT name, results, passed, failed, skipped, flaky_runs, duration_p50_s "
        "FROM test_daily_trends ORDER BY name"
    )
    assert rows[0] | {"duration_p50_s": round(float(str(rows[0]["duration_p50_s"])))} == {
        "name": "test_a",
        "results": 3,
        "passed": 2,
        "failed": 1,
        "skipped": 0,
        "flaky_runs": 1,
        "duration_p50_s": 2,
    }
    assert rows[1]["skipped"] == 1 and rows[1]["flaky_runs"] == 0


def test_slowest_tests_this_week(store: Store) -> None:
    insert(
        store,
        "tests",
        *[result(f"r{i}", "test_slow", Outcome.PASSED, 30.0 + i) for i in range(3)],
        *[result(f"r{i}", "test_fast", Outcome.PASSED, 0.1) for i in range(3)],
        result("r9", "test_mid", Outcome.FAILED, 5.0),
        result("r9", "test_nodur", Outcome.PASSED, None),
        # Slowest of all, but two weeks old: not this week.
        result("old", "test_ancient", Outcome.PASSED, 999.0, at=NOW - timedelta(days=14)),
    )
    rows = query(store, "slowest_tests_this_week")
    assert [r["name"] for r in rows] == ["test_slow", "test_mid", "test_fast"]
    assert rows[0] == {
        "suite": "api",
        "name": "test_slow",
        "results": 3,
        "p50_s": 31.0,
        "p90_s": 32.0,
        "max_s": 32.0,
        "slowest_run": "r2",
    }


def test_flakiest_tests(store: Store) -> None:
    insert(
        store,
        "runs",
        run("r1", RunStatus.FAILED, commit="c1"),
        run("r2", RunStatus.SUCCEEDED, commit="c1"),
        run("r3", RunStatus.FAILED, commit="c2"),
        run("r4", RunStatus.SUCCEEDED, commit="c2"),
        run("r5", RunStatus.FAILED, commit="c3"),
    )
    insert(
        store,
        "tests",
        # test_flaky: passes and fails on c1 and on c2 (two flaky commits).
        result("r1", "test_flaky", Outcome.FAILED, 1.0),
        result("r2", "test_flaky", Outcome.PASSED, 1.0),
        result("r3", "test_flaky", Outcome.ERROR, 1.0),
        result("r4", "test_flaky", Outcome.PASSED, 1.0),
        # test_retry: fails then passes on retry within r5 (one flaky commit).
        result("r5", "test_retry", Outcome.FAILED, 1.0, attempt=1),
        result("r5", "test_retry", Outcome.PASSED, 1.0, attempt=2),
        # test_broken: fails everywhere, never passes: broken, not flaky.
        *[result(r, "test_broken", Outcome.FAILED, 1.0) for r in ("r1", "r2", "r3")],
        # test_stable: always passes.
        *[result(r, "test_stable", Outcome.PASSED, 1.0) for r in ("r1", "r2")],
    )
    rows = query(store, "flakiest_tests")
    assert [(r["name"], r["flaky_commits"], r["failures"]) for r in rows] == [
        ("test_flaky", 2, 2),
        ("test_retry", 1, 1),
    ]
    assert sorted(str(c) for c in rows[0]["sample_commits"]) == ["c1", "c2"]  # type: ignore[attr-defined]


def test_failure_rate_by_pipeline(store: Store) -> None:
    insert(
        store,
        "runs",
        *[run(f"ci-{i}", RunStatus.SUCCEEDED, duration=60.0) for i in range(3)],
        run("ci-f", RunStatus.FAILED, duration=60.0),
        run("n-1", RunStatus.TIMED_OUT, pipeline="nightly", duration=7200.0),
        run("n-2", RunStatus.FAILED, pipeline="nightly", duration=7200.0),
        run("n-3", RunStatus.RUNNING, pipeline="nightly"),
        # 40 days ago: outside the 30-day window.
        run("old", RunStatus.FAILED, pipeline="ci", started=NOW - timedelta(days=40)),
    )
    insert(store, "runs", run("ci-f", RunStatus.FAILED, version=2, duration=60.0))  # re-emitted
    rows = query(store, "failure_rate_by_pipeline")
    assert [
        (
            r["pipeline"],
            r["finished_runs"],
            r["failed_runs"],
            r["timed_out_runs"],
            r["failure_rate"],
        )
        for r in rows
    ] == [("nightly", 2, 1, 1, 1.0), ("ci", 4, 1, 0, 0.25)]
    assert rows[0]["duration_p50_p90_p99_s"] == [7200.0, 7200.0, 7200.0]


def test_infra_failures_by_node(store: Store) -> None:
    insert(
        store,
        "runs",
        run("r1", RunStatus.FAILED),
        run("r2", RunStatus.FAILED),
        run("r3", RunStatus.TIMED_OUT),
        run("r4", RunStatus.SUCCEEDED),  # infra trouble but the run passed: not a failure
        run("r5", RunStatus.FAILED),  # failed with no infra anomaly: not infra-caused
    )
    insert(
        store,
        "k8s",
        pod("ci", "p1", "node-a", "OOMKilled"),
        pod("ci", "p2", "node-a", "Evicted"),
        pod("ci", "p4", "node-b", "OOMKilled"),
    )
    insert(
        store,
        "anomalies",
        infra("r1", "ci/p1", "oom_killed"),  # node from the pod's events: node-a
        infra("r2", "ci/p2", "evicted"),  # node-a
        infra("r2", "ci/p2", "evicted"),  # the same finding twice: one anomaly
        infra("r3", "node/node-c", "node_not_ready", node="node-c"),  # node from the evidence
        infra("r4", "ci/p4", "oom_killed"),
    )
    rows = query(store, "infra_failures_by_node")
    assert rows == [
        {
            "node": "node-a",
            "failed_runs": 2,
            "infra_anomalies": 2,
            "anomaly_types": ["evicted", "oom_killed"],
        },
        {
            "node": "node-c",
            "failed_runs": 1,
            "infra_anomalies": 1,
            "anomaly_types": ["node_not_ready"],
        },
    ]


def sentinel_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["SENTINEL_EMBEDDED__DATA_DIR"] = str(settings.embedded.data_dir)
    env["SENTINEL_STORE__DATABASE"] = settings.store.database
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sentinel_query_prints_table_csv_and_json(settings: Settings) -> None:
    opened = open_store(settings)
    try:
        migrate(opened)
        insert(opened, "runs", run("r1", RunStatus.FAILED), run("r2", RunStatus.SUCCEEDED))
    finally:
        opened.close()
    sql = "SELECT run_id, status FROM runs FINAL ORDER BY run_id"

    as_json = sentinel_cli(settings, "query", sql, "--format", "json")
    as_csv = sentinel_cli(settings, "query", sql, "--format", "csv")
    as_table = sentinel_cli(settings, "query", sql)
    analyst = sentinel_cli(
        settings, "query", "-f", "schemas/queries/failure_rate_by_pipeline.sql", "--format", "json"
    )

    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {"run_id": "r1", "status": "failed"},
        {"run_id": "r2", "status": "succeeded"},
    ]
    assert as_csv.stdout.splitlines() == ["run_id,status", "r1,failed", "r2,succeeded"]
    lines = as_table.stdout.splitlines()
    assert lines[0].split("|")[0].strip() == "run_id" and lines[-1] == "(2 rows)"
    assert [r["failure_rate"] for r in json.loads(analyst.stdout)] == [0.5]
    bad = sentinel_cli(settings, "query", "SELECT nope FROM runs")
    assert bad.returncode == 1 and "nope" in bad.stderr


def test_sentinel_query_names_the_fix_when_the_store_is_in_use(settings: Settings) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from runtime.config import load_settings;"
            "from sinks.clickhouse import open_store;"
            "s = open_store(load_settings()); print('open', flush=True); time.sleep(60)",
        ],
        cwd=REPO,
        env=dict(os.environ, SENTINEL_EMBEDDED__DATA_DIR=str(settings.embedded.data_dir)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        started = time.monotonic()
        locked = sentinel_cli(settings, "query", "SELECT 1")
    finally:
        holder.kill()
        holder.wait(10)
    assert locked.returncode == 1
    assert "in use by another process" in locked.stderr
    assert "sentinel up" in locked.stderr and "store.dsn" in locked.stderr
    assert time.monotonic() - started < 60
