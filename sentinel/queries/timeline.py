"""The run timeline: stages, pods with their phases and ticks, anomaly markers (pure).

Pod phases come from the Pod objects and core Events stored in `k8s_events` for the run's
correlation keys: pending (created, not yet scheduled), scheduled (PodScheduled, until an image
pull or a container start), pulling (the kubelet's Pulling .. Pulled Events), running (first
container start .. all containers terminated) and terminated. Restarts (a container's
`lastState.terminated`), OOMKills, evictions and Warning Events are ticks. Without stored
objects the run snapshot's `PodState` gives created / started / finished and the last restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.k8s_time import parse_k8s_time
from schemas.messages import Anomaly, PodState, RunState
from schemas.utc import as_utc
from sentinel.queries.common import aware
from sentinel.queries.models import AnomalyMarker, PodLane, PodPhase, PodTick, StageBar

OOM = "OOMKilled"
_NEVER = datetime.max.replace(tzinfo=UTC)


def k8s_rows_sql(database: str) -> str:
    return (
        "SELECT event_time, kind, name, uid, reason, message, object"
        f" FROM {database}.k8s_events WHERE correlation_key IN {{keys:Array(String)}}"
        " AND kind IN ('Pod', 'Event') ORDER BY event_time"
    )


def run_span(run: RunState, pods: Sequence[PodState] = ()) -> tuple[datetime, datetime]:
    """[start, end] of everything known about the run."""
    starts = [run.first_event_at, run.created_at, run.started_at]
    starts += [pod.created_at for pod in pods]
    start = min(as_utc(t) for t in starts if t is not None)
    ends = [run.finished_at, run.updated_at, run.last_activity_at]
    ends += [t for pod in pods for t in (pod.finished_at, pod.updated_at)]
    end = max(as_utc(t) for t in ends if t is not None)
    return start, max(end, start)


def stage_bars(run: RunState) -> list[StageBar]:
    bars = [
        StageBar(
            stage_id=stage.stage_id,
            name=stage.name,
            status=stage.status.value,
            start=as_utc(stage.started_at) if stage.started_at else None,
            end=as_utc(stage.finished_at) if stage.finished_at else None,
            duration_s=stage.duration_s,
        )
        for stage in run.stages
    ]
    return sorted(bars, key=lambda b: (b.start is None, b.start or run.first_event_at, b.name))


@dataclass
class _PodFacts:
    created: datetime | None = None
    scheduled: datetime | None = None
    pull_start: datetime | None = None
    pull_end: datetime | None = None
    running: datetime | None = None
    terminated: datetime | None = None
    # Times the kubelet's Events gave: used where the Pod's own status says nothing (the
    # status is the kubelet's record of the same moments, to the second).
    from_events: dict[str, datetime] = field(default_factory=dict)
    ticks: dict[tuple[str, str, str], PodTick] = field(default_factory=dict)

    def earliest(self, name: str, when: datetime | None) -> None:
        if when is not None:
            current = getattr(self, name)
            setattr(self, name, when if current is None else min(current, when))

    def tick(self, tick: PodTick) -> None:
        self.ticks.setdefault((tick.at.isoformat(), tick.container or "", tick.reason), tick)


def pod_lanes(run: RunState, rows: Sequence[dict[str, Any]]) -> list[PodLane]:
    """One lane per pod of the run, oldest first."""
    facts = {pod.uid: _PodFacts() for pod in run.pods}
    names = {(pod.namespace or "", pod.name): pod.uid for pod in run.pods}
    for row in rows:
        obj = _object(row)
        if row["kind"] == "Pod" and row["uid"] in facts:
            _read_pod(facts[row["uid"]], obj)
        elif row["kind"] == "Event":
            involved = obj.get("involvedObject") or {}
            uid = involved.get("uid")
            if uid not in facts:
                uid = names.get((involved.get("namespace") or "", involved.get("name") or ""))
            if uid in facts and involved.get("kind", "Pod") == "Pod":
                _read_event(facts[uid], obj, aware(row["event_time"]))
    for event in run.k8s_events:
        uid = names.get((run.namespace or "", event.involved_name or ""))
        if uid is None:
            uid = next((u for (_, n), u in names.items() if n == event.involved_name), None)
        if uid in facts and event.involved_kind in (None, "Pod"):
            kind = "oom" if "OOM" in (event.reason or "") else "warning"
            at = as_utc(event.first_seen or event.last_seen)
            facts[uid].tick(
                PodTick(at=at, kind=kind, reason=event.reason or "Warning", message=event.message)
            )
    lanes = [_lane(pod, facts[pod.uid]) for pod in run.pods]
    return sorted(lanes, key=lambda lane: (_first(lane), lane.name))


def _first(lane: PodLane) -> datetime:
    times = [phase.start for phase in lane.phases] + [tick.at for tick in lane.ticks]
    return min(times) if times else _NEVER


def _object(row: dict[str, Any]) -> dict[str, Any]:
    value = row.get("object")
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parse_k8s_time(value)
    except ValueError:
        return None
    return as_utc(parsed) if parsed is not None else None


def _read_pod(facts: _PodFacts, obj: dict[str, Any]) -> None:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    facts.earliest("created", _time(meta.get("creationTimestamp")))
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            facts.earliest("scheduled", _time(condition.get("lastTransitionTime")))
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in statuses:
        name = container.get("name")
        state, last = container.get("state") or {}, container.get("lastState") or {}
        facts.earliest("running", _time((state.get("running") or {}).get("startedAt")))
        for done, restarted in ((state.get("terminated"), False), (last.get("terminated"), True)):
            if not done:
                continue
            facts.earliest("running", _time(done.get("startedAt")))
            at = _time(done.get("finishedAt"))
            reason = str(done.get("reason") or "")
            if at is not None and (restarted or reason == OOM):
                kind = "oom" if reason == OOM else "restart"
                facts.tick(
                    PodTick(
                        at=at,
                        kind=kind,
                        container=name,
                        reason=reason or "Restarted",
                        message=done.get("message"),
                    )
                )
    main = list(status.get("containerStatuses") or [])
    if main and all((c.get("state") or {}).get("terminated") for c in main):
        finished = [_time(c["state"]["terminated"].get("finishedAt")) for c in main]
        known = [t for t in finished if t is not None]
        if known:
            facts.terminated = max(known)
    if status.get("reason") == "Evicted":
        at = facts.terminated or _time(meta.get("deletionTimestamp"))
        if at is not None:
            facts.tick(
                PodTick(at=at, kind="evicted", reason="Evicted", message=status.get("message"))
            )


def _read_event(facts: _PodFacts, obj: dict[str, Any], at: datetime) -> None:
    reason = str(obj.get("reason") or "")
    when = _time(obj.get("eventTime")) or _time(obj.get("firstTimestamp")) or at
    moments = {"Scheduled": "scheduled", "Pulling": "pull_start", "Pulled": "pull_end"}
    moments["Started"] = "running"
    if reason in moments:
        name = moments[reason]
        known = facts.from_events.get(name)
        facts.from_events[name] = when if known is None else min(known, when)
    elif obj.get("type") == "Warning":
        kind = "oom" if "OOM" in reason else ("evicted" if reason == "Evicted" else "warning")
        facts.tick(PodTick(at=when, kind=kind, reason=reason, message=obj.get("message")))


def _lane(pod: PodState, facts: _PodFacts) -> PodLane:
    for name, when in facts.from_events.items():
        if getattr(facts, name) is None:
            setattr(facts, name, when)
    created = facts.created or (as_utc(pod.created_at) if pod.created_at else None)
    running = facts.running or (as_utc(pod.started_at) if pod.started_at else None)
    terminated = facts.terminated
    if terminated is None and pod.terminated and pod.finished_at is not None:
        terminated = as_utc(pod.finished_at)
    for container in pod.containers:  # the snapshot's last restart, if no object showed it
        if container.last_finished_at is not None and container.last_reason:
            at = as_utc(container.last_finished_at)
            kind = "oom" if container.last_reason == OOM else "restart"
            facts.tick(
                PodTick(at=at, kind=kind, container=container.name, reason=container.last_reason)
            )
        if container.reason == OOM and container.finished_at is not None:
            facts.tick(
                PodTick(
                    at=as_utc(container.finished_at),
                    kind="oom",
                    container=container.name,
                    reason=OOM,
                )
            )
    marks: list[tuple[str, datetime | None]] = [
        ("pending", created),
        ("scheduled", facts.scheduled),
        ("pulling", facts.pull_start if facts.pull_end != facts.pull_start else None),
        ("running", running),
        ("terminated", terminated),
    ]
    return PodLane(
        uid=pod.uid,
        namespace=pod.namespace,
        name=pod.name,
        node=pod.node,
        stage_id=pod.stage_id,
        phase=pod.phase,
        phases=phases(marks),
        ticks=_dedup_ticks(facts.ticks.values()),
        restarts=sum(container.restarts for container in pod.containers),
    )


def phases(marks: Sequence[tuple[str, datetime | None]]) -> list[PodPhase]:
    """Consecutive phases from the times each began (unknown ones skipped; a phase that began
    before the previous one is folded into it)."""
    known = [(name, at) for name, at in marks if at is not None]
    out: list[PodPhase] = []
    for index, (name, at) in enumerate(known):
        assert at is not None
        if out and at < out[-1].start:
            continue
        nxt = next((t for _, t in known[index + 1 :] if t is not None and t >= at), None)
        out.append(PodPhase(phase=name, start=at, end=nxt))
    return [p for p in out if p.end is None or p.end > p.start or p.phase == "terminated"]


def _dedup_ticks(ticks: Iterable[PodTick]) -> list[PodTick]:
    """Ticks by time; an OOM reported by both the container status and an Event within a few
    seconds is one tick."""
    out: list[PodTick] = []
    for tick in sorted(ticks, key=lambda t: (t.at, t.kind)):
        if any(t.kind == tick.kind and abs((t.at - tick.at).total_seconds()) <= 5 for t in out):
            continue
        out.append(tick)
    return out


def markers(anomalies: Sequence[Anomaly], run: RunState) -> list[AnomalyMarker]:
    pods = {pod.name for pod in run.pods}
    stages = {stage.name: stage.stage_id for stage in run.stages}
    stages.update({stage.stage_id: stage.stage_id for stage in run.stages})
    out = []
    for anomaly in anomalies:
        out.append(
            AnomalyMarker(
                anomaly_id=anomaly.anomaly_id,
                type=anomaly.type,
                category=anomaly.category.value,
                severity=anomaly.severity.value,
                subject=anomaly.subject,
                summary=anomaly.summary,
                start=as_utc(anomaly.window_start),
                end=as_utc(anomaly.window_end),
                lane=_lane_of(anomaly.subject, pods, stages),
            )
        )
    return out


def _lane_of(subject: str, pods: set[str], stages: dict[str, str]) -> str | None:
    parts = subject.split("/")
    for part in parts[:2]:
        if part in pods:
            return f"pod:{part}"
    if subject in stages:
        return f"stage:{stages[subject]}"
    return None
