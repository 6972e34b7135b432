"""Builders for the alert tests: runs, anomalies and alerting configs in a few words."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from processors.anomalies.ids import anomaly_id
from runtime.alerting_config import AlertingConfig
from schemas.messages import (
    AlertDelivery,
    Anomaly,
    AnomalyCategory,
    RunState,
    RunStatus,
    Severity,
)
from sinks.alerts.delivery import Outcome
from sinks.alerts.engine import AlertEngine
from sinks.alerts.notification import Notification

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


def group_messages(
    config: AlertingConfig, anomalies: int, later: int = 0, run_id: str = "github:acme/shop:1:1"
) -> list[Notification]:
    """What the engine decides for one run: a first message with `anomalies` alerts, then
    `later` follow-ups with one more alert each (as if each earlier one was delivered)."""
    engine = AlertEngine(config)
    engine.observe_run(run_state(run_id), 0, at(0))
    for index in range(anomalies):
        engine.observe_anomaly(anomaly(subject=f"pod-{index}", run_id=run_id), 0, at(1))
    decided = engine.tick(at(10_000))
    messages = list(decided)
    for step in range(later):
        for note in decided:
            engine.completed(note, True, at(10_000 + step * 1000), "1.1", "C0ALERTS")
        engine.observe_anomaly(anomaly(subject=f"late-{step}", run_id=run_id), 0, at(2))
        decided = engine.tick(at(10_000 + (step + 1) * 1000))
        messages.extend(decided)
    return messages


@dataclass
class DeliveryRun:
    records: list[AlertDelivery] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


def deliver(
    config: AlertingConfig,
    receiver: str,
    notifications: list[Notification],
    timeout_s: float = 60.0,
) -> DeliveryRun:
    """Deliver through the receiver's real channel and queue, as the dispatcher does."""
    from sinks.alerts.channels.factory import build_channels
    from sinks.alerts.delivery import DeliveryQueue
    from sinks.alerts.templates import check_templates

    run = DeliveryRun()
    channel = build_channels(config)[receiver]
    queue = DeliveryQueue(
        config.receiver(receiver),
        channel,
        check_templates(config)[receiver],
        config.delivery,
        run.records.append,
        run.outcomes.append,
        lambda: datetime.now(UTC),
    )

    async def main() -> None:
        worker = asyncio.create_task(queue.run())
        for note in notifications:
            queue.put(note)
        await asyncio.wait_for(queue.queue.join(), timeout_s)
        worker.cancel()
        await channel.close()

    asyncio.run(main())
    return run
