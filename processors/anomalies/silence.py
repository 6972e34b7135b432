"""Log silence: a running pod of an active run that logged before and has gone quiet (pure).

Judged on the run's state, not on its error lines: `RunState.log_activity` holds, per pod, the
start of the latest activity bucket it logged in (ACTIVITY signals come once per
``activity_bucket_s`` per container, stamped with the bucket start), so a pod counts as quiet
from the *end* of that bucket — it may have logged until then.

    log_silence  [pod] the run is not finished, the pod is Running (not ended, not deleted), it
                 logged before, and event time (the watermark) is at least ``silence_s`` past
                 the end of its latest activity bucket. Window: quiet-from .. quiet-from +
                 silence_s. A pod that logs again and goes quiet again is a new finding (a new
                 window); the same silence is one anomaly however often it is checked.

Pods that have ended are never silent (a finished step of a long pipeline is quiet by
design), nor are pods that never logged (nothing says they should). Severity warning,
category app, ids as every detector's (processors.anomalies.ids).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from processors.anomalies.ids import anomaly_id
from schemas.messages import Anomaly, AnomalyCategory, PodState, RunState, Severity
from schemas.utc import as_utc as _utc
from schemas.utc import utc_iso

LOG_SILENCE = "log_silence"


def detect_log_silence(
    run: RunState, now: datetime | None, silence_s: float, bucket_s: float
) -> list[Anomaly]:
    """The log silences of `run` that hold at watermark `now`, sorted by anomaly id."""
    if now is None or run.status.terminal:
        return []
    now = _utc(now)
    found = []
    for pod, quiet_from in _quiet_since(run, bucket_s):
        end = quiet_from + timedelta(seconds=silence_s)
        if now < end:
            continue
        silent_s = (now - quiet_from).total_seconds()
        found.append(
            Anomaly(
                anomaly_id=anomaly_id(run.run_id, LOG_SILENCE, pod.name, quiet_from, end),
                run_id=run.run_id,
                category=AnomalyCategory.APP,
                type=LOG_SILENCE,
                severity=Severity.WARNING,
                subject=pod.name,
                summary=(
                    f"No log line from running pod {pod.name} for at least {silent_s:.0f} s "
                    f"(limit {silence_s:g} s) while the run is active"
                ),
                evidence={
                    "pipeline": run.pipeline,
                    "pod": pod.name,
                    "node": pod.node,
                    "phase": pod.phase,
                    "last_log_bucket": utc_iso(run.log_activity[pod.name]),
                    "quiet_from": utc_iso(quiet_from),
                    "observed_s": silent_s,
                    "threshold_s": silence_s,
                    "activity_bucket_s": bucket_s,
                },
                window_start=quiet_from,
                window_end=end,
                detected_at=end,
            )
        )
    return sorted(found, key=lambda anomaly: anomaly.anomaly_id)


def silence_deadlines(run: RunState, silence_s: float, bucket_s: float) -> list[datetime]:
    """When each running pod's current quiet spell becomes a silence (for the timer index)."""
    if run.status.terminal:
        return []
    limit = timedelta(seconds=silence_s)
    return [quiet_from + limit for _pod, quiet_from in _quiet_since(run, bucket_s)]


def _quiet_since(run: RunState, bucket_s: float) -> list[tuple[PodState, datetime]]:
    bucket = timedelta(seconds=bucket_s)
    return [
        (pod, _utc(run.log_activity[pod.name]) + bucket)
        for pod in run.pods
        if _running(pod) and pod.name in run.log_activity
    ]


def _running(pod: PodState) -> bool:
    return pod.phase == "Running" and not pod.terminated
