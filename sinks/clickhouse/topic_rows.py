"""Pure conversion of the non-run topics (and a run's stages) to ClickHouse rows.

Like `sinks.clickhouse.rows`: one function per table from raw Kafka value bytes to rows, no
client and no broker. A value that does not validate raises `RowConversionError` (dead letter).
Optional values the columns hold as plain strings become ``''`` rather than NULL, so they can be
part of ORDER BY keys; fields from newer producers land in the `extra` JSON column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from schemas.messages import (
    AlertDelivery,
    Anomaly,
    K8sObjectEvent,
    LogLine,
    Message,
    RunState,
    StageState,
    TestResult,
)
from schemas.topics import TopicNames
from sinks.clickhouse.rows import (
    RUNS_ROUTE,
    Row,
    RowConversionError,
    TableRoute,
    _json,
    _summarise,
    _utc,
    parse_run_state,
)

M = TypeVar("M", bound=Message)

STAGE_COLUMNS: tuple[str, ...] = (
    "run_id",
    "stage_id",
    "name",
    "status",
    "conclusion",
    "runner_name",
    "started_at",
    "finished_at",
    "duration_s",
    "updated_at",
    "step_count",
    "steps",
    "url",
    "provider",
    "repository",
    "pipeline",
    "branch",
    "run_version",
    "extra",
)
K8S_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event_type",
    "kind",
    "api_version",
    "namespace",
    "name",
    "uid",
    "resource_version",
    "correlation_key",
    "cluster",
    "node",
    "phase",
    "reason",
    "message",
    "labels",
    "annotations",
    "owner_refs",
    "object",
    "received_at",
    "schema_version",
    "extra",
)
LOG_COLUMNS: tuple[str, ...] = (
    "event_time",
    "run_id",
    "namespace",
    "pod",
    "container",
    "line",
    "truncated",
    "level",
    "template_id",
    "template",
    "correlation_key",
    "received_at",
    "schema_version",
    "extra",
)
TEST_COLUMNS: tuple[str, ...] = (
    "run_id",
    "suite",
    "name",
    "attempt",
    "status",
    "duration_s",
    "message",
    "source",
    "event_time",
    "received_at",
    "schema_version",
    "extra",
)
ANOMALY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "anomaly_id",
    "category",
    "type",
    "severity",
    "subject",
    "summary",
    "node",
    "evidence",
    "window_start",
    "window_end",
    "detected_at",
    "schema_version",
    "extra",
)
DELIVERY_COLUMNS: tuple[str, ...] = (
    "channel",
    "group_key",
    "delivery_id",
    "attempt",
    "anomaly_ids",
    "outcome",
    "status_code",
    "error",
    "attempted_at",
    "schema_version",
    "extra",
    "channel_type",
    "run_ids",
    "status",
    "title",
    "retry_in_s",
    "silence_ids",
)

# LogLine fields a log processor may add (extra fields) that have their own columns.
LOG_ANNOTATIONS = ("level", "template_id", "template")


def parse(model: type[M], raw: bytes | None) -> M:
    """Validate one raw value as `model`; raise `RowConversionError` saying what is wrong."""
    name = model.__name__
    if raw is None:
        raise RowConversionError(f"{name} value is empty (tombstone)")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RowConversionError(f"invalid {name}: {_summarise(exc)}") from exc


def stage_rows(state: RunState) -> list[Row]:
    """One `stages` row per stage of a run snapshot, versioned by the snapshot's version."""
    return [_stage_row(state, stage) for stage in state.stages]


def _stage_row(state: RunState, stage: StageState) -> Row:
    return {
        "run_id": state.run_id,
        "stage_id": stage.stage_id,
        "name": stage.name,
        "status": stage.status.value,
        "conclusion": stage.conclusion,
        "runner_name": stage.runner_name,
        "started_at": _utc(stage.started_at),
        "finished_at": _utc(stage.finished_at),
        "duration_s": stage.duration_s,
        "updated_at": _utc(stage.updated_at),
        "step_count": len(stage.steps),
        "steps": _json([step.model_dump(mode="json") for step in stage.steps]),
        "url": stage.url,
        "provider": state.provider,
        "repository": state.repository,
        "pipeline": state.pipeline,
        "branch": state.branch,
        "run_version": state.version,
        "extra": _json(stage.model_extra or {}),
    }


def k8s_row(event: K8sObjectEvent) -> Row:
    obj = event.object
    node, phase, reason, message = k8s_facts(event.kind, event.name, obj)
    return {
        "event_time": _utc(event.event_time),
        "event_type": event.event_type.value,
        "kind": event.kind,
        "api_version": event.api_version,
        "namespace": event.namespace or "",
        "name": event.name,
        "uid": event.uid,
        "resource_version": event.resource_version,
        "correlation_key": event.correlation_key or "",
        "cluster": event.cluster or "",
        "node": node,
        "phase": phase,
        "reason": reason,
        "message": message,
        "labels": dict(event.labels),
        "annotations": dict(event.annotations),
        "owner_refs": _json(event.owner_refs),
        "object": _json(obj),
        "received_at": _utc(event.received_at),
        "schema_version": event.schema_version,
        "extra": _json(event.model_extra or {}),
    }


def k8s_facts(kind: str, name: str, obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(node, phase, reason, message) the dashboards filter on, pulled out of the object.

    Pod: its node and phase, and the reason of the first container that is waiting or was
    terminated abnormally (OOMKilled, CrashLoopBackOff, ImagePullBackOff), else the pod's own
    status reason (Evicted). Event: its reason, message and reporting host. Node: its name.
    """
    if kind == "Node":
        return name, "", "", ""
    if kind == "Event":
        source = _dict(obj.get("source"))
        host = source.get("host") or obj.get("reportingInstance") or ""
        return str(host), "", str(obj.get("reason") or ""), str(obj.get("message") or "")
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    node = str(spec.get("nodeName") or "")
    phase = str(status.get("phase") or "") if kind == "Pod" else ""
    reason, message = _container_reason(status)
    if not reason:
        reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
    return node, phase, reason, message


def _container_reason(status: Mapping[str, Any]) -> tuple[str, str]:
    containers = [
        *_list(status.get("initContainerStatuses")),
        *_list(status.get("containerStatuses")),
    ]
    for container in containers:
        state = _dict(_dict(container).get("state"))
        waiting = _dict(state.get("waiting"))
        if waiting.get("reason"):
            return str(waiting["reason"]), str(waiting.get("message") or "")
        terminated = _dict(state.get("terminated"))
        if terminated.get("reason") and terminated.get("reason") != "Completed":
            return str(terminated["reason"]), str(terminated.get("message") or "")
    return "", ""


def log_row(line: LogLine) -> Row:
    annotations = line.model_extra or {}
    return {
        "event_time": _utc(line.event_time),
        "run_id": line.run_id or "",
        "namespace": line.namespace,
        "pod": line.pod,
        "container": line.container,
        "line": line.line,
        "truncated": line.truncated,
        "level": str(annotations.get("level") or "").lower(),
        "template_id": str(annotations.get("template_id") or ""),
        "template": str(annotations.get("template") or ""),
        "correlation_key": line.correlation_key or "",
        "received_at": _utc(line.received_at),
        "schema_version": line.schema_version,
        "extra": _json({k: v for k, v in annotations.items() if k not in LOG_ANNOTATIONS}),
    }


def result_row(result: TestResult) -> Row:
    return {
        "run_id": result.run_id,
        "suite": result.suite or "",
        "name": result.name,
        "attempt": result.attempt,
        "status": result.status.value,
        "duration_s": result.duration_s,
        "message": result.message,
        "source": result.source,
        "event_time": _utc(result.event_time),
        "received_at": _utc(result.received_at),
        "schema_version": result.schema_version,
        "extra": _json(result.model_extra or {}),
    }


def anomaly_row(anomaly: Anomaly) -> Row:
    node = anomaly.evidence.get("node")
    return {
        "run_id": anomaly.run_id,
        "anomaly_id": anomaly.anomaly_id,
        "category": anomaly.category.value,
        "type": anomaly.type,
        "severity": anomaly.severity.value,
        "subject": anomaly.subject,
        "summary": anomaly.summary,
        "node": node if isinstance(node, str) else "",
        "evidence": _json(anomaly.evidence),
        "window_start": _utc(anomaly.window_start),
        "window_end": _utc(anomaly.window_end),
        "detected_at": _utc(anomaly.detected_at),
        "schema_version": anomaly.schema_version,
        "extra": _json(anomaly.model_extra or {}),
    }


def delivery_row(delivery: AlertDelivery) -> Row:
    return {
        "channel": delivery.channel,
        "group_key": delivery.group_key,
        "delivery_id": delivery.delivery_id,
        "attempt": delivery.attempt,
        "anomaly_ids": list(delivery.anomaly_ids),
        "outcome": delivery.outcome.value,
        "status_code": delivery.status_code,
        "error": delivery.error,
        "attempted_at": _utc(delivery.attempted_at),
        "schema_version": delivery.schema_version,
        "extra": _json(delivery.model_extra or {}),
        "channel_type": delivery.channel_type or "",
        "run_ids": list(delivery.run_ids),
        "status": delivery.status or "",
        "title": delivery.title or "",
        "retry_in_s": delivery.retry_in_s,
        "silence_ids": list(delivery.silence_ids),
    }


def _one(model: type[M], convert: Callable[[M], Row]) -> Callable[[bytes | None], Row]:
    def to_row(raw: bytes | None) -> Row:
        return convert(parse(model, raw))

    return to_row


def _stages_from_bytes(raw: bytes | None) -> list[Row]:
    return stage_rows(parse_run_state(raw))


STAGES_ROUTE = TableRoute("stages", STAGE_COLUMNS, to_rows=_stages_from_bytes)
K8S_ROUTE = TableRoute("k8s_events", K8S_COLUMNS, to_row=_one(K8sObjectEvent, k8s_row))
LOGS_ROUTE = TableRoute("log_lines", LOG_COLUMNS, to_row=_one(LogLine, log_row))
TESTS_ROUTE = TableRoute("test_results", TEST_COLUMNS, to_row=_one(TestResult, result_row))
ANOMALIES_ROUTE = TableRoute("anomalies", ANOMALY_COLUMNS, to_row=_one(Anomaly, anomaly_row))
DELIVERIES_ROUTE = TableRoute(
    "alert_deliveries", DELIVERY_COLUMNS, to_row=_one(AlertDelivery, delivery_row)
)


def routes_for(names: TopicNames) -> dict[str, tuple[TableRoute, ...]]:
    """Every topic that lands in ClickHouse, with the table(s) each feeds."""
    return {
        names.runs: (RUNS_ROUTE, STAGES_ROUTE),
        names.k8s: (K8S_ROUTE,),
        names.logs: (LOGS_ROUTE,),
        names.tests: (TESTS_ROUTE,),
        names.anomalies: (ANOMALIES_ROUTE,),
        names.alert_deliveries: (DELIVERIES_ROUTE,),
    }


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
