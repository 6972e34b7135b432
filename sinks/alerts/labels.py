"""What an alert is made of: labels for routing, grouping and silences, and one line of evidence.

Labels of an anomaly's alert: ``category``, ``type``, ``severity``, ``subject``, ``scope`` (run or
pipeline) and the run's ``run_id``, ``provider``, ``repository``, ``pipeline``, ``branch``,
``namespace``, then the run's own labels (a ``team`` label on its pods or CI event) and the
labels of the first matching `alerting.owners` rule. Built-in labels win over a run label of the
same name; owner labels never override a label the run carries. A run's end (``run_finished``,
for routes with ``run_summary``) has ``category=run``, ``type=run_finished``, its final
``status`` and a severity from it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from runtime.alerting_config import OwnerRule
from schemas.messages import AlertInstance, AlertRun, Anomaly, Severity

RUN_FINISHED = "run_finished"
_RUN_FIELDS = ("run_id", "provider", "repository", "pipeline", "branch", "namespace")
_STATUS_SEVERITY = {
    "failed": Severity.ERROR,
    "timed_out": Severity.ERROR,
    "cancelled": Severity.WARNING,
}
EVIDENCE_MAX = 300


def run_labels(run: AlertRun, owners: Sequence[OwnerRule] = ()) -> dict[str, str]:
    """The labels every alert of this run carries (run labels, owners, then built-ins)."""
    builtin = {name: str(getattr(run, name) or "") for name in _RUN_FIELDS}
    builtin = {name: value for name, value in builtin.items() if value}
    labels = dict(run.labels)
    for rule in owners:
        subject = {**labels, **builtin}
        if all(fnmatch.fnmatchcase(subject.get(k, ""), glob) for k, glob in rule.match.items()):
            for name, value in rule.labels.items():
                labels.setdefault(name, value)
            break
    labels.update(builtin)
    return labels


def anomaly_alert(
    anomaly: Anomaly,
    run: AlertRun,
    scope: str,
    owners: Sequence[OwnerRule],
    received_at: datetime,
) -> AlertInstance:
    labels = run_labels(run, owners)
    labels.update(
        category=anomaly.category.value,
        type=anomaly.type,
        severity=anomaly.severity.value,
        subject=anomaly.subject,
        scope=scope,
        run_id=anomaly.run_id,
    )
    return AlertInstance(
        alert_id=anomaly.anomaly_id,
        kind="anomaly",
        scope="pipeline" if scope == "pipeline" else "run",
        run_id=anomaly.run_id,
        labels=labels,
        summary=anomaly.summary,
        subject=anomaly.subject,
        evidence=evidence_line(anomaly.evidence),
        severity=anomaly.severity,
        starts_at=anomaly.window_start,
        received_at=received_at,
        detected_at=anomaly.detected_at,
    )


def run_finished_alert(
    run: AlertRun, owners: Sequence[OwnerRule], received_at: datetime
) -> AlertInstance:
    status = run.status or "unknown"
    severity = _STATUS_SEVERITY.get(status, Severity.INFO)
    labels = run_labels(run, owners)
    labels.update(
        category="run",
        type=RUN_FINISHED,
        severity=severity.value,
        status=status,
        scope="run",
        run_id=run.run_id,
    )
    name = run.pipeline or run.run_id
    duration = f" in {human_duration(run.duration_s)}" if run.duration_s is not None else ""
    tests = ""
    if run.tests is not None and run.tests.total:
        tests = f"; tests: {run.tests.passed} passed, {run.tests.failed + run.tests.error} failed"
    ended = run.finished_at or run.ended_seen or received_at
    return AlertInstance(
        alert_id=f"run-finished:{run.run_id}",
        kind=RUN_FINISHED,
        scope="run",
        run_id=run.run_id,
        labels=labels,
        summary=f"{name} {status}{duration}{tests}",
        subject=run.run_id,
        severity=severity,
        starts_at=ended,
        received_at=received_at,
        detected_at=ended,
    )


def evidence_line(evidence: Mapping[str, Any]) -> str:
    """One line that shows what was seen: the kubelet's or log's own words when there are some,
    else observed against baseline and threshold, else the first plain values."""
    for key in ("message", "sample_lines", "template", "reason", "last_reason"):
        value = evidence.get(key)
        if isinstance(value, list):
            value = next((item for item in value if isinstance(item, str) and item), None)
        if isinstance(value, str) and value.strip():
            return _cut(" ".join(value.split()))
    parts = [
        f"{key} {_plain(evidence[key])}"
        for key in ("observed", "observed_s", "baseline", "threshold", "threshold_s", "ratio")
        if key in evidence and _plain(evidence[key])
    ]
    if not parts:
        parts = [
            f"{key}={_plain(value)}"
            for key, value in evidence.items()
            if isinstance(value, str | int | float) and not isinstance(value, bool)
        ][:4]
    return _cut(", ".join(parts))


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, Mapping):
        inner = [f"{k} {_plain(v)}" for k, v in value.items() if isinstance(v, str | int | float)]
        return "(" + ", ".join(inner[:3]) + ")" if inner else ""
    return ""


def _cut(text: str) -> str:
    return text if len(text) <= EVIDENCE_MAX else text[: EVIDENCE_MAX - 1] + "…"


def human_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
