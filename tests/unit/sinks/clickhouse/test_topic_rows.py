from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.messages import (
    AlertDelivery,
    Anomaly,
    AnomalyCategory,
    DeliveryOutcome,
    K8sEventType,
    K8sObjectEvent,
    LogLine,
    RunState,
    RunStatus,
    Severity,
    StageState,
    StepInfo,
    TestResult,
)
from schemas.messages import TestStatus as Outcome
from schemas.topics import TopicNames
from sinks.clickhouse.rows import RUNS_ROUTE, RowConversionError, TableRoute
from sinks.clickhouse.sink import normalise_routes
from sinks.clickhouse.topic_rows import (
    ANOMALIES_ROUTE,
    DELIVERIES_ROUTE,
    K8S_ROUTE,
    LOGS_ROUTE,
    STAGES_ROUTE,
    TESTS_ROUTE,
    k8s_facts,
    routes_for,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def test_every_stored_topic_has_routes_and_runs_feed_two_tables() -> None:
    names = TopicNames("p.")
    routes = routes_for(names)
    assert set(routes) == {
        names.runs,
        names.k8s,
        names.logs,
        names.tests,
        names.anomalies,
        names.alert_deliveries,
    }
    assert [r.table for r in routes[names.runs]] == ["runs", "stages"]
    assert names.ci not in routes and names.dlq not in routes


def test_stages_are_one_row_per_stage_with_the_run_version() -> None:
    stage = StageState(
        stage_id="j1",
        name="build",
        status=RunStatus.SUCCEEDED,
        started_at=datetime(2024, 5, 1, 14, 0, tzinfo=PLUS_TWO),
        duration_s=4.0,
        updated_at=T0,
        steps=[StepInfo(name="checkout", status=RunStatus.SUCCEEDED)],
        runner="r-1",  # a field this schema does not know
    )
    state = RunState(
        run_id="r",
        provider="github",
        provider_run_id="1",
        pipeline="ci",
        status=RunStatus.RUNNING,
        first_event_at=T0,
        updated_at=T0,
        version=7,
        stages=[stage, stage.model_copy(update={"stage_id": "j2"})],
    )
    rows = STAGES_ROUTE.convert(state.to_bytes())
    assert [r["stage_id"] for r in rows] == ["j1", "j2"]
    assert tuple(rows[0]) == STAGES_ROUTE.columns
    assert rows[0]["run_version"] == 7 and rows[0]["pipeline"] == "ci"
    assert rows[0]["started_at"] == T0  # normalised to UTC
    assert rows[0]["step_count"] == 1 and json.loads(rows[0]["steps"])[0]["name"] == "checkout"
    assert json.loads(rows[0]["extra"]) == {"runner": "r-1"}
    no_stages = state.model_copy(update={"stages": []})
    assert STAGES_ROUTE.convert(no_stages.to_bytes()) == []


def pod_object(state: dict[str, object], status_reason: str | None = None) -> dict[str, object]:
    status: dict[str, object] = {"phase": "Running", "containerStatuses": [{"state": state}]}
    if status_reason:
        status["reason"] = status_reason
    return {"spec": {"nodeName": "node-1"}, "status": status}


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [
        (
            "Pod",
            pod_object({"terminated": {"reason": "OOMKilled", "message": "oom"}}),
            ("node-1", "Running", "OOMKilled", "oom"),
        ),
        (
            "Pod",
            pod_object({"waiting": {"reason": "CrashLoopBackOff"}}),
            ("node-1", "Running", "CrashLoopBackOff", ""),
        ),
        (
            "Pod",
            pod_object({"terminated": {"reason": "Completed"}}, status_reason="Evicted"),
            ("node-1", "Running", "Evicted", ""),
        ),
        (
            "Event",
            {"reason": "FailedScheduling", "message": "0/3 nodes", "source": {"host": "n2"}},
            ("n2", "", "FailedScheduling", "0/3 nodes"),
        ),
        ("Node", {"status": {}}, ("the-node", "", "", "")),
        ("Job", {"status": "not a mapping"}, ("", "", "", "")),
    ],
)
def test_k8s_facts(kind: str, obj: dict[str, object], expected: tuple[str, ...]) -> None:
    assert k8s_facts(kind, "the-node", obj) == expected


def test_k8s_row_keeps_the_object_and_blank_keys_for_missing_values() -> None:
    event = K8sObjectEvent(
        event_type=K8sEventType.DELETED,
        kind="Pod",
        api_version="v1",
        name="p",
        uid="u",
        resource_version="9",
        labels={"a": "b"},
        object=pod_object({"running": {}}),
        event_time=T0,
    )
    (row,) = K8S_ROUTE.convert(event.to_bytes())
    assert tuple(row) == K8S_ROUTE.columns
    assert row["namespace"] == "" and row["correlation_key"] == "" and row["cluster"] == ""
    assert row["node"] == "node-1" and row["labels"] == {"a": "b"}
    assert json.loads(row["object"]) == event.object


def test_log_row_takes_the_miner_annotations_into_columns() -> None:
    line = LogLine.model_validate(
        {
            "namespace": "ci",
            "pod": "p",
            "container": "c",
            "line": "boom 42",
            "event_time": T0,
            "level": "ERROR",
            "template_id": "t1",
            "template": "boom <*>",
            "other": 1,
        }
    )
    (row,) = LOGS_ROUTE.convert(line.to_bytes())
    assert (row["level"], row["template_id"], row["template"]) == ("error", "t1", "boom <*>")
    assert json.loads(row["extra"]) == {"other": 1}
    assert row["run_id"] == ""


def test_test_anomaly_and_delivery_rows_have_their_columns() -> None:
    result = TestResult(
        run_id="r", name="t", status=Outcome.FAILED, source="junit-xml", event_time=T0
    )
    anomaly = Anomaly(
        anomaly_id="a",
        run_id="r",
        category=AnomalyCategory.INFRA,
        type="oom_killed",
        severity=Severity.ERROR,
        subject="ci/p",
        summary="s",
        evidence={"node": "n1", "observed": 3},
        window_start=T0,
        window_end=T0,
    )
    delivery = AlertDelivery(
        delivery_id="d",
        channel="slack",
        group_key="g",
        anomaly_ids=["a"],
        outcome=DeliveryOutcome.RETRYING,
        status_code=429,
    )
    for route, message in (
        (TESTS_ROUTE, result),
        (ANOMALIES_ROUTE, anomaly),
        (DELIVERIES_ROUTE, delivery),
    ):
        (row,) = route.convert(message.to_bytes())
        assert tuple(row) == route.columns
    assert TESTS_ROUTE.convert(result.to_bytes())[0]["suite"] == ""
    (row,) = ANOMALIES_ROUTE.convert(anomaly.to_bytes())
    assert row["node"] == "n1" and json.loads(row["evidence"])["observed"] == 3


@pytest.mark.parametrize(
    "route", [STAGES_ROUTE, K8S_ROUTE, LOGS_ROUTE, TESTS_ROUTE, ANOMALIES_ROUTE, DELIVERIES_ROUTE]
)
def test_invalid_and_empty_values_are_conversion_errors(route: TableRoute) -> None:
    with pytest.raises(RowConversionError, match="invalid"):
        route.convert(b'{"schema_version": 1}')
    with pytest.raises(RowConversionError, match="tombstone"):
        route.convert(None)


def test_a_route_needs_exactly_one_converter() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TableRoute("t", ("a",))
    with pytest.raises(ValueError, match="exactly one"):
        TableRoute("t", ("a",), to_row=lambda raw: {}, to_rows=lambda raw: [])


def test_routes_merge_per_topic_and_refuse_a_table_twice() -> None:
    merged = normalise_routes([("runs", RUNS_ROUTE), ("runs", STAGES_ROUTE), ("k", K8S_ROUTE)])
    assert merged == {"runs": (RUNS_ROUTE, STAGES_ROUTE), "k": (K8S_ROUTE,)}
    assert normalise_routes({"runs": RUNS_ROUTE}) == {"runs": (RUNS_ROUTE,)}
    with pytest.raises(ValueError, match="same table twice"):
        normalise_routes([("runs", RUNS_ROUTE), ("runs", RUNS_ROUTE)])
