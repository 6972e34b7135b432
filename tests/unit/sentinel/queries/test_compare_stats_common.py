"""Compare, stats assembly, cursors and the store's time range (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.messages import (
    ContainerState,
    PodState,
    RunState,
    RunStatus,
    StageState,
)
from schemas.messages import (
    TestStatus as Status,
)
from sentinel.queries import compare as cq
from sentinel.queries import stats as sq
from sentinel.queries.common import BadRequest, decode_cursor, encode_cursor, in_store_range
from sentinel.queries.models import LogLineView, TestAttempt, TestCase

T0 = datetime(2026, 2, 4, 6, 0, tzinfo=UTC)


def run(run_id: str, **changes: Any) -> RunState:
    values: dict[str, Any] = {
        "run_id": run_id,
        "provider": "github",
        "provider_run_id": run_id,
        "pipeline": "ci",
        "branch": "main",
        "status": RunStatus.SUCCEEDED,
        "first_event_at": T0,
        "updated_at": T0,
    }
    values.update(changes)
    return RunState(**values)


def case(key: str, *statuses: str) -> TestCase:
    attempts = [TestAttempt(attempt=i + 1, status=Status(s)) for i, s in enumerate(statuses)]
    flaky = "passed" in statuses and ("failed" in statuses or "error" in statuses)
    return TestCase(
        key=key,
        suite="",
        name=key,
        status=attempts[-1].status,
        attempts=attempts,
        flaky=flaky,
        infra_caused=False,
    )


def line(n: int, text: str, level: str = "error") -> LogLineView:
    return LogLineView(
        n=n,
        event_time=T0,
        namespace="ci",
        pod="p",
        container="c",
        level=level,
        template_id="",
        template="",
        line=text,
    )


def stage(name: str, duration: float | None) -> StageState:
    return StageState(
        stage_id=name, name=name, status=RunStatus.SUCCEEDED, duration_s=duration, updated_at=T0
    )


def test_compare_names_changed_tests_new_templates_stage_deltas_restarts() -> None:
    now = run(
        "b",
        stages=[stage("build", 70), stage("e2e", 300)],
        pods=[
            PodState(
                uid="u",
                name="e2e-1",
                updated_at=T0,
                containers=[ContainerState(name="tests", restarts=1, last_reason="OOMKilled")],
            )
        ],
    )
    before = run("a", stages=[stage("build", 60), stage("lint", 5)])
    result = cq.compare(
        now,
        before,
        "last_successful",
        (
            [case("t_ok", "passed"), case("t_flaky", "failed", "passed"), case("t_new", "failed")],
            [case("t_ok", "passed"), case("t_flaky", "passed"), case("t_gone", "passed")],
        ),
        (
            [line(1, "connection refused to db-7:5432"), line(2, "disk full on /var/lib/x1")],
            [line(1, "connection refused to db-3:5432")],
        ),
    )
    assert [(c.key, c.status, c.baseline_status) for c in result.tests_changed] == [
        ("t_new", "failed", "new"),
        ("t_flaky", "flaky", "passed"),
        ("t_gone", "missing", "passed"),
    ]
    assert [(s.name, s.delta_s) for s in result.stages] == [
        ("build", 10),
        ("e2e", None),
        ("lint", None),
    ]
    [new] = result.new_templates
    assert "disk full" in new.template and new.errors == 1
    [restarted] = result.restarted_pods
    assert (restarted.name, restarted.restarts, restarted.reason) == ("e2e-1", 1, "OOMKilled")


def test_the_baseline_query_is_the_same_pipeline_and_branch_before_the_run() -> None:
    sql, params = cq.baseline_sql("db", run("b", created_at=T0, repository="acme/app"))
    assert "status = 'succeeded'" in sql and "run_id != {run_id:String}" in sql
    assert (params["pipeline"], params["branch"], params["repository"]) == (
        "ci",
        "main",
        "acme/app",
    )
    assert params["before"] == T0
    assert cq.no_baseline(run("b"), "none yet").baseline_chosen == "none"


def test_lag_per_group_and_partition_from_offsets() -> None:
    ends = {("s.runs", 0): 10, ("s.runs", 1): 5, ("s.dlq", 0): 2}
    groups = {"s.sink": {("s.runs", 0): 7, ("s.runs", 1): -1001}}
    [group] = sq.group_stats(groups, ends)
    assert (group.consumed, group.lag) == (7, 3 + 5)
    assert [(p.partition, p.committed, p.lag) for p in group.partitions] == [
        (0, 7, 3),
        (1, None, 5),
    ]
    topics = sq.topic_stats(ends)
    assert [(t.topic, t.partitions, t.messages) for t in topics] == [
        ("s.dlq", 1, 2),
        ("s.runs", 2, 15),
    ]
    rows = [{"status": "failed", "last_hour": 0, "last_day": 2}]
    assert sq.counts_by(rows, "status", "last_hour") == {}
    assert sq.counts_by(rows, "status", "last_day") == {"failed": 2}


def test_cursors_round_trip_and_refuse_what_the_api_did_not_make() -> None:
    cursor = encode_cursor(T0, "run-1")
    assert decode_cursor(cursor, (datetime, str)) == (T0, "run-1")
    assert decode_cursor(encode_cursor(7), (int,)) == (7,)
    for bad, kinds in (("!!", (int,)), (encode_cursor("x"), (int,)), (cursor, (int,))):
        with pytest.raises(BadRequest, match="cursor"):
            decode_cursor(bad, kinds)


def test_times_outside_the_stores_range_are_client_mistakes() -> None:
    assert in_store_range(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(BadRequest, match="since: 0001-01-01"):
        in_store_range(datetime(1, 1, 1, tzinfo=UTC), "since")
    with pytest.raises(BadRequest):
        in_store_range(datetime(2300, 1, 1, tzinfo=UTC) + timedelta(days=1))
