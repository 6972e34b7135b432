"""Builders for the alert tests: runs, anomalies and alerting configs in a few words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from processors.anomalies.ids import anomaly_id
from runtime.alerting_config import AlertingConfig
from schemas.messages import Anomaly, AnomalyCategory, RunState, RunStatus, Severity

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run_state(
    run_id: str = "github:acme/shop:1:1",
    status: RunStatus = RunStatus.RUNNING,
    version: int = 1,
    when: float = 0.0,
    pipeline: str = "ci",
    branch: str = "main",
    labels: dict[str, str] | None = None,
    **fields: Any,
) -> RunState:
    finished = at(when) if status.terminal else None
    return RunState(
        run_id=run_id,
        provider="github",
        provider_run_id=run_id.split(":")[-2] if run_id.count(":") >= 2 else run_id,
        repository="acme/shop",
        pipeline=pipeline,
        branch=branch,
        status=status,
        url=f"https://github.com/acme/shop/actions/runs/{version}",
        labels=labels or {},
        started_at=T0,
        finished_at=finished,
        duration_s=(finished - T0).total_seconds() if finished else None,
        first_event_at=T0,
        updated_at=at(when),
        version=version,
        **fields,
    )


def anomaly(
    kind: str = "oom_killed",
    subject: str = "pod-a/pytest",
    run_id: str = "github:acme/shop:1:1",
    when: float = 1.0,
    severity: Severity = Severity.ERROR,
    category: AnomalyCategory = AnomalyCategory.INFRA,
    evidence: dict[str, Any] | None = None,
) -> Anomaly:
    start = at(when)
    return Anomaly(
        anomaly_id=anomaly_id(run_id, kind, subject, start, start),
        run_id=run_id,
        category=category,
        type=kind,
        severity=severity,
        subject=subject,
        summary=f"{kind} on {subject}",
        evidence=evidence if evidence is not None else {"message": f"{kind} seen on {subject}"},
        window_start=start,
        window_end=start,
        detected_at=start,
    )


def alerting(**values: Any) -> AlertingConfig:
    """An alerting config from plain values (validated as the YAML would be)."""
    return AlertingConfig.model_validate(values)
