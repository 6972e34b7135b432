"""Infrastructure detectors and infra attribution (pure: no Faust, no Kafka, no I/O).

`detect_infra` reads one `RunState` (its pods as the kubelet last reported them and the Warning
Events about its pods and Jobs) and returns every infrastructure finding as an `Anomaly` of
category `infra`, sorted by anomaly id. `attribute` says whether a failed run was
infrastructure-caused; `overlaps` lets other detectors ask whether a window was infra-affected.
All time is event time: `now` is the watermark the caller has reached, never the wall clock;
`detected_at` is the time of the evidence, so a replay gives the same anomalies as living it.

Rules (subject in brackets; "anchor" = the pod's creationTimestamp, else startTime, else the
time of its latest update)
    oom_killed          [pod/container] a container's current state is terminated with reason
                        OOMKilled, or its lastState was (``last_reason``), or an ``OOMKilling``
                        Event names a pod and no container of that pod shows the OOM. Window:
                        the dead instance's start..finish.
    crash_loop          [pod/container] a container waiting in CrashLoopBackOff. Window: the
                        anchor (one finding per container and pod, however long it loops).
    restart_burst       [pod/container] at least ``restart_burst`` restarts per
                        ``restart_window_s`` (see "Restart bursts"). Window: anchor ..
                        anchor + restart_window_s.
    pending_too_long    [pod] from creation to the first container start (or to ``now``, or to
                        the pod's end, while no container ever started) longer than
                        ``pending_limit_s``. Window: anchor .. anchor + pending_limit_s.
    image_pull_failure  [pod] a container waiting in ErrImagePull, ImagePullBackOff,
                        InvalidImageName or ErrImageNeverPull, or a kubelet Event about a pull
                        (reason Failed/BackOff/ErrImageNeverPull/InspectFailed whose message
                        mentions a pull or an image). Window: the anchor (an Event's time
                        while the pod is not known yet); the id is made from the run and pod
                        alone.
    evicted             [pod] pod reason Evicted or an ``Evicted`` Event. Window: the pod's
                        start .. eviction time (its containers' last finish, else the Event's
                        first time, else the pod's end); the Event alone: its time. The id is
                        made from the run and pod alone, so the Event and the status that
                        arrive in either order are one finding (its newest report, made
                        from both, gives the window).
    failed_scheduling   [pod] a ``FailedScheduling`` Event, reported only when the pod stayed
                        unscheduled longer than ``pending_limit_s`` (scheduled late, or still
                        unscheduled at ``now``) or ended without ever being scheduled. A
                        transient failure (the autoscaler added a node, a preemption freed
                        room) that resolved within the limit is noise and is not reported.
                        Window: anchor .. anchor + pending_limit_s.
    job_backoff_limit   [job/<provider run id>] the run's conclusion is BackoffLimitExceeded
                        (a Job's Failed condition) or a ``BackoffLimitExceeded`` Event. Window:
                        the run's start; the id is made from the run and subject alone (a
                        run's Job reaches its limit once, and the run's start is not known
                        yet when the Event comes first).
    node_not_ready      [node name] a ``NodeNotReady`` Event (the node lifecycle
                        controller records one on each pod of a NotReady node) whose time
                        overlaps the run's active window. One finding per node (its id is
                        made from the run and node alone). Window: the Events' first .. last
                        time. An Event waits for its pod's status when it names no node.

Identity
    ``anomaly_id`` = 32 hex chars of sha256 over run id, type, subject and window. Windows are
    built from facts that later updates of the same pod do not move (creation time, a dead
    container instance's start and finish, an Event's first time) or from those plus a
    configured span, like the structure detectors: the same finding made while a pod is still
    Pending and again after it started has one id. A second OOM of a restarted container is
    a new instance with its own times, hence a new finding.

Restart bursts
    A container status carries only a restart count and the current instance's times, not
    when each restart happened. The restarts happened between the pod's start and the current
    instance's start (running or terminated) or, when it waits in back-off, the pod's latest
    update. If ``restarts >= restart_burst * ceil(span / restart_window_s)``, then by the
    pigeonhole principle some window of ``restart_window_s`` held at least ``restart_burst``
    restarts: the rule never reports a burst that did not happen, and a span within one window
    reduces to ``restarts >= restart_burst``. It can miss a burst hidden inside a long, mostly
    quiet span.

Judgment calls
    * Severity defaults: oom_killed, evicted, node_not_ready, image_pull_failure, crash_loop,
      job_backoff_limit are errors; failed_scheduling, pending_too_long, restart_burst are
      warnings. ``config.severity[type]`` overrides (an unknown severity raises ValueError).
    * "Pending" ends at the first container start, not at the pod's startTime: startTime is
      when the kubelet accepted the pod, before image pulls, and a slow pull is exactly what
      this rule is for. Only instances that never restarted give that time (a restarted
      container's start is a later instance's; a pod that is Running or shows restarts but no
      first start falls back to its startTime). Init containers count: once one runs, the pod
      has its node and its images.
    * Image pull failures and crash loops are per pod / per container, not per Event object or
      per status update: a kubelet retrying a pull every few seconds is one problem.
    * Events about a pod and the pod's own status that tell the same story are one finding:
      OOMKilling and Evicted Events become evidence of the status finding when the status shows
      it; an Event alone is a finding of its own.
    * A Job's backoff limit is reported whatever the pods say, but is not in `INFRA_CAUSES`:
      it is the consequence of failing pods, not a cause. Crash loops and restart bursts are
      not causes either: an application that exits non-zero loops the same way.
    * ``now`` None means "the latest event time this run has seen" (its watermark or last
      update): a pod shown Pending in the run's latest snapshot was Pending then.

Not detectable from this input
    * A NotReady node without a NodeNotReady Event on one of the run's pods (the Node object
      is not watched), and a NotReady node that came back before the controller's grace period.
      A NodeNotReady Event that names no node, about a pod whose status never showed one.
    * An ``OOMKilling`` Event that reaches the run before its pod's OOMKilled status stays a
      finding of its own (subject: the pod; the status's is pod/container): two findings where
      the other order gives one. Not in the scenario captures (their OOMs have no such Event).
    * OOM kills of a non-main process in a container that kept running (no status change;
      only a node-problem-detector Event on the Node would say so).
    * When a container's previous instance started and ended: ``lastState`` times are not in
      `ContainerState`. A ``last_reason`` OOM is windowed on the extra fields
      ``last_started_at``/``last_finished_at``/``last_exit_code`` when the producer adds them,
      else on the current instance's start (running) or the anchor (waiting) — so such an OOM
      seen first waiting and then running again may get two ids.
    * Exact restart times (see "Restart bursts") and restarts of containers whose status was
      garbage-collected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from processors.anomalies.ids import anomaly_id
from processors.anomalies.tests import result_key
from runtime.config import InfraDetectorsConfig
from schemas.messages import (
    Anomaly,
    AnomalyCategory,
    ContainerState,
    K8sEventInfo,
    PodState,
    RunState,
    RunStatus,
    Severity,
    TestResult,
    TestStatus,
)
from schemas.utc import as_utc as _utc

OOM_KILLED = "oom_killed"
CRASH_LOOP = "crash_loop"
RESTART_BURST = "restart_burst"
PENDING_TOO_LONG = "pending_too_long"
IMAGE_PULL_FAILURE = "image_pull_failure"
EVICTED = "evicted"
FAILED_SCHEDULING = "failed_scheduling"
JOB_BACKOFF_LIMIT = "job_backoff_limit"
NODE_NOT_READY = "node_not_ready"

DEFAULT_SEVERITY: dict[str, Severity] = {
    OOM_KILLED: Severity.ERROR,
    EVICTED: Severity.ERROR,
    NODE_NOT_READY: Severity.ERROR,
    IMAGE_PULL_FAILURE: Severity.ERROR,
    CRASH_LOOP: Severity.ERROR,
    JOB_BACKOFF_LIMIT: Severity.ERROR,
    FAILED_SCHEDULING: Severity.WARNING,
    PENDING_TOO_LONG: Severity.WARNING,
    RESTART_BURST: Severity.WARNING,
}

INFRA_CAUSES = frozenset({OOM_KILLED, EVICTED, NODE_NOT_READY, IMAGE_PULL_FAILURE})
"""Anomaly types that make a failure infrastructure-caused (not flaky, not a regression)."""

IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
_PULL_EVENT_REASONS = frozenset({"Failed", "BackOff", "ErrImageNeverPull", "InspectFailed"})
_PULL_WORDS = ("pull", "invalidimagename")  # "Failed to pull image", "Back-off pulling image"
_ATTRIBUTED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})
_SAMPLE_EVENTS = 5  # Events quoted in evidence per finding
# The identity instant of a finding its subject can have only once (a Job's backoff limit, a
# pod's eviction or image pull failure): run, type and subject identify it, whatever was known
# when it was first found. An Event that arrives before its Job or pod (they travel on
# different partitions) knows neither the run's start nor the pod's creation.
_ONCE = datetime(1970, 1, 1, tzinfo=UTC)


class Attribution(BaseModel):
    """Why a failed run failed, when the infrastructure explains it."""

    model_config = ConfigDict(frozen=True)

    cause: Literal["infrastructure"] = "infrastructure"
    anomaly_ids: tuple[str, ...]
    types: tuple[str, ...]
    summary: str


# --- public API ------------------------------------------------------------------------------


def detect_infra(
    run: RunState, now: datetime | None, config: InfraDetectorsConfig
) -> list[Anomaly]:
    """Every infrastructure finding about `run`, sorted by anomaly id (duplicates once)."""
    if not config.enabled:
        return []
    ctx = _Context(run, _effective_now(run, now), config)
    found: dict[str, Anomaly] = {}
    for finding in _findings(ctx):
        anomaly = _anomaly(ctx, finding)
        found.setdefault(anomaly.anomaly_id, anomaly)
    return [found[key] for key in sorted(found)]


def overlaps(anomaly: Anomaly, start: datetime | None, end: datetime | None) -> bool:
    """True when the anomaly's window meets [start, end] (closed; None = unbounded)."""
    if end is not None and _utc(anomaly.window_start) > _utc(end):
        return False
    return start is None or _utc(anomaly.window_end) >= _utc(start)


def infra_affected_tests(
    results: Sequence[TestResult], anomalies: Sequence[Anomaly]
) -> dict[str, list[str]]:
    """Failed tests (any attempt failed or errored) that ran while an `INFRA_CAUSES` fault of
    their run was happening: test key (``suite::name``) -> ids of those faults. A test's window
    is [reported - duration, reported] (just the report time when no duration is known). Such a
    test is the infrastructure's, not flaky and not a regression, even when the run as a whole
    passed (a retry on a healthy pod)."""
    causes = [a for a in anomalies if a.type in INFRA_CAUSES]
    affected: dict[str, set[str]] = {}
    for result in results:
        if result.status not in (TestStatus.FAILED, TestStatus.ERROR):
            continue
        end = _utc(result.event_time)
        start = end - timedelta(seconds=result.duration_s or 0.0)
        hits = {
            a.anomaly_id for a in causes if a.run_id == result.run_id and overlaps(a, start, end)
        }
        if hits:
            affected.setdefault(result_key(result.suite, result.name), set()).update(hits)
    return {key: sorted(ids) for key, ids in sorted(affected.items())}


def attribute(run: RunState, anomalies: Sequence[Anomaly]) -> Attribution | None:
    """Infrastructure attribution of a failed or timed-out run: the `INFRA_CAUSES` anomalies of
    this run whose window overlaps the run's [start, end]; None when there are none or the run
    did not fail."""
    if run.status not in _ATTRIBUTED_STATUSES:
        return None
    start = run.started_at or run.created_at or run.first_event_at
    end = run.finished_at or run.watermark or run.updated_at
    causes = sorted(
        (
            a
            for a in anomalies
            if a.run_id == run.run_id and a.type in INFRA_CAUSES and overlaps(a, start, end)
        ),
        key=lambda a: (_utc(a.window_start), a.anomaly_id),
    )
    if not causes:
        return None
    ids = tuple(sorted({a.anomaly_id for a in causes}))
    types = tuple(sorted({a.type for a in causes}))
    first = causes[0].summary
    more = f" (+{len(causes) - 1} more)" if len(causes) > 1 else ""
    return Attribution(
        anomaly_ids=ids,
        types=types,
        summary=f"run {run.status.value} with infrastructure faults: {first}{more}",
    )


# --- plumbing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Finding:
    kind: str
    subject: str
    summary: str
    evidence: dict[str, Any]
    start: datetime
    end: datetime
    seen_at: datetime  # the evidence time: becomes detected_at
    # When set, the id is made from this instant instead of the window: a fact that whichever
    # input comes first (an Event or the pod's status, on different partitions) agrees on.
    identity_at: datetime | None = None


@dataclass
class _Context:
    run: RunState
    now: datetime
    config: InfraDetectorsConfig
    pods_by_name: dict[str, PodState] = field(init=False)

    def __post_init__(self) -> None:
        self.pods_by_name = {pod.name: pod for pod in self.run.pods}

    def pod_events(self, pod: PodState, reasons: Iterable[str]) -> list[K8sEventInfo]:
        wanted = frozenset(reasons)
        return [
            e
            for e in self.run.k8s_events
            if e.reason in wanted and e.involved_name == pod.name and _about_pod(e)
        ]


def _findings(ctx: _Context) -> Iterator[_Finding]:
    for pod in ctx.run.pods:
        yield from _oom_from_status(ctx, pod)
        yield from _crash_loops(pod)
        yield from _restart_bursts(ctx, pod)
        yield from _pending_too_long(ctx, pod)
        yield from _image_pull_from_status(ctx, pod)
        yield from _evicted_from_status(ctx, pod)
    yield from _events_without_status(ctx)
    yield from _failed_scheduling(ctx)
    yield from _job_backoff_limit(ctx)
    yield from _node_not_ready(ctx)


def _anomaly(ctx: _Context, finding: _Finding) -> Anomaly:
    return Anomaly(
        anomaly_id=anomaly_id(
            ctx.run.run_id,
            finding.kind,
            finding.subject,
            finding.identity_at or finding.start,
            finding.identity_at or finding.end,
        ),
        run_id=ctx.run.run_id,
        category=AnomalyCategory.INFRA,
        type=finding.kind,
        severity=_severity(ctx.config, finding.kind),
        subject=finding.subject,
        summary=finding.summary,
        evidence=finding.evidence,
        window_start=finding.start,
        window_end=finding.end,
        detected_at=finding.seen_at,
    )


def _severity(config: InfraDetectorsConfig, kind: str) -> Severity:
    override = config.severity.get(kind)
    return Severity(override) if override is not None else DEFAULT_SEVERITY[kind]


def _effective_now(run: RunState, now: datetime | None) -> datetime:
    if now is not None:
        return _utc(now)
    known = [run.updated_at, *(t for t in (run.watermark, run.last_activity_at) if t)]
    return max(_utc(t) for t in known)


# --- container findings ----------------------------------------------------------------------


def _oom_from_status(ctx: _Context, pod: PodState) -> Iterator[_Finding]:
    events = ctx.pod_events(pod, ("OOMKilling",))
    for container in pod.containers:
        if container.state == "terminated" and container.reason == "OOMKilled":
            finish = container.finished_at or container.started_at or _anchor(pod)
            start = container.started_at or finish
            yield _oom(pod, container, container.exit_code, (start, finish), events, "current")
        if container.last_reason == "OOMKilled":
            yield _oom(pod, container, *_last_instance(pod, container), events, "previous")


def _last_instance(
    pod: PodState, container: ContainerState
) -> tuple[int | None, tuple[datetime, datetime]]:
    exit_code = container.last_exit_code
    finished = _extra_time(container.last_finished_at)
    if finished is not None:
        started = _extra_time(container.last_started_at) or finished
        return exit_code, (started, finished)
    # The previous instance ended no later than the current one started.
    point = container.started_at if container.state == "running" else None
    point = point or _anchor(pod)
    return exit_code, (point, point)


def _oom(
    pod: PodState,
    container: ContainerState,
    exit_code: int | None,
    window: tuple[datetime, datetime],
    events: list[K8sEventInfo],
    instance: str,
) -> _Finding:
    code = f" (exit {exit_code})" if exit_code is not None else ""
    previous = " (its previous instance)" if instance == "previous" else ""
    summary = (
        f"pod {pod.name} container {container.name} was OOMKilled{code}{previous}"
        f"{_on_node(pod.node)}"
    )
    evidence = _container_evidence(pod, container) | {
        "observed": "OOMKilled",
        "instance": instance,
        "exit_code": exit_code,
        "instance_started_at": _iso(window[0]),
        "instance_finished_at": _iso(window[1]),
        "events": _event_evidence(events),
    }
    subject = f"{pod.name}/{container.name}"
    return _Finding(OOM_KILLED, subject, summary, evidence, window[0], window[1], window[1])


def _crash_loops(pod: PodState) -> Iterator[_Finding]:
    for container in pod.containers:
        if container.state != "waiting" or container.reason != "CrashLoopBackOff":
            continue
        last = f", last exit: {container.last_reason}" if container.last_reason else ""
        summary = (
            f"pod {pod.name} container {container.name} is in CrashLoopBackOff after "
            f"{container.restarts} restarts{last}{_on_node(pod.node)}"
        )
        evidence = _container_evidence(pod, container) | {
            "observed": "CrashLoopBackOff",
            "last_reason": container.last_reason,
            "message": _message(container),
        }
        anchor = _anchor(pod)
        subject = f"{pod.name}/{container.name}"
        yield _Finding(CRASH_LOOP, subject, summary, evidence, anchor, anchor, pod.updated_at)


def _restart_bursts(ctx: _Context, pod: PodState) -> Iterator[_Finding]:
    threshold = ctx.config.restart_burst
    window_s = ctx.config.restart_window_s
    first_start = pod.started_at or _anchor(pod)
    for container in pod.containers:
        if container.restarts < threshold:
            continue
        latest = container.started_at if container.state != "waiting" else None
        span_end = max(_utc(latest or pod.updated_at), _utc(first_start))
        span_s = (span_end - _utc(first_start)).total_seconds()
        windows = max(1, math.ceil(span_s / window_s))
        if container.restarts < threshold * windows:
            continue
        summary = (
            f"pod {pod.name} container {container.name} restarted {container.restarts} times "
            f"in {_secs(span_s)} (threshold {threshold} per {_secs(window_s)}){_on_node(pod.node)}"
        )
        evidence = _container_evidence(pod, container) | {
            "observed": container.restarts,
            "threshold": threshold,
            "window_s": window_s,
            "span_s": span_s,
            "span_start": _iso(first_start),
            "span_end": _iso(span_end),
            "last_reason": container.last_reason,
        }
        anchor = _anchor(pod)
        end = anchor + timedelta(seconds=window_s)
        subject = f"{pod.name}/{container.name}"
        yield _Finding(RESTART_BURST, subject, summary, evidence, anchor, end, span_end)


def _image_pull_from_status(ctx: _Context, pod: PodState) -> Iterator[_Finding]:
    stuck = [c for c in pod.containers if c.state == "waiting" and c.reason in IMAGE_PULL_REASONS]
    events = [e for e in ctx.pod_events(pod, _PULL_EVENT_REASONS) if _is_pull_event(e)]
    if stuck or events:
        yield _image_pull(pod.name, pod, stuck, events)


def _image_pull(
    name: str, pod: PodState | None, stuck: list[ContainerState], events: list[K8sEventInfo]
) -> _Finding:
    anchor = _anchor(pod) if pod is not None else _event_start(events)
    what = ", ".join(f"{c.name} ({c.reason})" for c in stuck) or _first_message(events)
    summary = f"pod {name} could not pull its image: {what}" + _on_node(
        pod.node if pod else _event_node(events)
    )
    evidence: dict[str, Any] = {
        "pod": name,
        "namespace": pod.namespace if pod else None,
        "node": pod.node if pod else _event_node(events),
        "observed": sorted(
            {c.reason for c in stuck if c.reason} | {e.reason or "" for e in events}
        ),
        "containers": [
            {"container": c.name, "reason": c.reason, "message": _message(c)} for c in stuck
        ],
        "events": _event_evidence(events),
    }
    seen = max([_utc(e.last_seen) for e in events] + ([_utc(pod.updated_at)] if pod else []))
    # One per pod (see the module's judgment calls), also when the kubelet's pull Events
    # arrive before the pod itself.
    return _Finding(IMAGE_PULL_FAILURE, name, summary, evidence, anchor, anchor, seen, _ONCE)


def _is_pull_event(event: K8sEventInfo) -> bool:
    message = (event.message or "").lower()
    return event.reason in ("ErrImageNeverPull", "InspectFailed") or any(
        word in message for word in _PULL_WORDS
    )


# --- pod findings ----------------------------------------------------------------------------


def _pending_too_long(ctx: _Context, pod: PodState) -> Iterator[_Finding]:
    created = pod.created_at
    if created is None:
        return
    end, still_pending = _pending_end(ctx, pod)
    pending_s = (_utc(end) - _utc(created)).total_seconds()
    limit = ctx.config.pending_limit_s
    if pending_s <= limit:
        return
    waiting = sorted({c.reason for c in pod.containers if c.state == "waiting" and c.reason})
    state = "still Pending" if still_pending else "Pending"
    why = f" ({', '.join(waiting)})" if waiting else ""
    summary = (
        f"pod {pod.name} was {state} for {_secs(pending_s)} (limit {_secs(limit)}){why}"
        + _on_node(pod.node)
    )
    evidence = _pod_evidence(pod) | {
        "observed": pending_s,
        "threshold": limit,
        "still_pending": still_pending,
        "pending_until": _iso(end),
        "waiting_reasons": waiting,
    }
    start = _utc(created)
    window_end = start + timedelta(seconds=limit)
    yield _Finding(PENDING_TOO_LONG, pod.name, summary, evidence, start, window_end, end)


def _pending_end(ctx: _Context, pod: PodState) -> tuple[datetime, bool]:
    """When the pod stopped waiting for infrastructure, and whether it still is."""
    first_starts = [c.started_at for c in pod.containers if c.started_at and c.restarts == 0]
    if first_starts:
        return min(_utc(t) for t in first_starts), False
    if pod.phase in ("Running", "Succeeded") or any(_has_run(c) for c in pod.containers):
        # Started, but the first start is gone (every container restarted, or the status only
        # shows the back-off): the pod's startTime (scheduled) is the best lower bound.
        return _utc(pod.started_at or _anchor(pod)), False
    if pod.terminated:
        return _utc(pod.finished_at or pod.updated_at), False
    return _run_capped(ctx, ctx.now), True


def _has_run(container: ContainerState) -> bool:
    return container.started_at is not None or container.restarts > 0 or bool(container.last_reason)


def _evicted_from_status(ctx: _Context, pod: PodState) -> Iterator[_Finding]:
    events = ctx.pod_events(pod, ("Evicted",))
    if pod.reason != "Evicted":
        return
    message = _text(pod.message) or _first_message(events)
    ends = [c.finished_at for c in pod.containers if c.finished_at is not None]
    if ends and len(ends) == len(pod.containers):
        evicted_at = max(_utc(t) for t in ends)
    elif events:
        evicted_at = _event_start(events)
    else:
        evicted_at = _utc(pod.finished_at or pod.updated_at)
    start = min(_utc(pod.started_at or _anchor(pod)), evicted_at)
    yield _evicted(pod.name, pod, message, events, (start, evicted_at))


def _evicted(
    name: str,
    pod: PodState | None,
    message: str | None,
    events: list[K8sEventInfo],
    window: tuple[datetime, datetime],
) -> _Finding:
    node = pod.node if pod else _event_node(events)
    why = f": {message}" if message else ""
    summary = f"pod {name} was evicted{_on_node(node)}{why}"
    # A pod is evicted once: the pod identifies the finding, whether the kubelet's Evicted
    # Event or the pod's status (they travel on different partitions) is seen first.
    evidence: dict[str, Any] = {
        "pod": name,
        "namespace": pod.namespace if pod else None,
        "node": node,
        "observed": "Evicted",
        "message": message,
        "evicted_at": _iso(window[1]),
        "events": _event_evidence(events),
    }
    return _Finding(EVICTED, name, summary, evidence, window[0], window[1], window[1], _ONCE)


def _events_without_status(ctx: _Context) -> Iterator[_Finding]:
    """OOM, eviction and pull Events whose pod's status does not tell the story itself."""
    by_pod: dict[str, list[K8sEventInfo]] = {}
    for event in ctx.run.k8s_events:
        if _about_pod(event) and event.involved_name:
            by_pod.setdefault(event.involved_name, []).append(event)
    for name, events in sorted(by_pod.items()):
        pod = ctx.pods_by_name.get(name)
        ooms = [e for e in events if e.reason == "OOMKilling"]
        if ooms and not (pod and _shows_oom(pod)):
            yield _oom_event(name, pod, ooms)
        evictions = [e for e in events if e.reason == "Evicted"]
        if evictions and not (pod and pod.reason == "Evicted"):
            at = _event_start(evictions)
            yield _evicted(name, pod, _first_message(evictions), evictions, (at, at))
        pulls = [e for e in events if e.reason in _PULL_EVENT_REASONS and _is_pull_event(e)]
        if pulls and pod is None:
            yield _image_pull(name, None, [], pulls)


def _shows_oom(pod: PodState) -> bool:
    return any(
        (c.state == "terminated" and c.reason == "OOMKilled") or c.last_reason == "OOMKilled"
        for c in pod.containers
    )


def _oom_event(name: str, pod: PodState | None, events: list[K8sEventInfo]) -> _Finding:
    at = _event_start(events)
    node = (pod.node if pod else None) or _event_node(events)
    summary = f"pod {name} had a process OOM-killed{_on_node(node)}: {_first_message(events)}"
    evidence: dict[str, Any] = {
        "pod": name,
        "namespace": pod.namespace if pod else None,
        "node": node,
        "observed": "OOMKilling",
        "events": _event_evidence(events),
    }
    last = max(_utc(e.last_seen) for e in events)
    return _Finding(OOM_KILLED, name, summary, evidence, at, at, last)


def _failed_scheduling(ctx: _Context) -> Iterator[_Finding]:
    by_pod: dict[str, list[K8sEventInfo]] = {}
    for event in ctx.run.k8s_events:
        if event.reason == "FailedScheduling" and _about_pod(event) and event.involved_name:
            by_pod.setdefault(event.involved_name, []).append(event)
    limit = ctx.config.pending_limit_s
    for name, events in sorted(by_pod.items()):
        pod = ctx.pods_by_name.get(name)
        start = _utc(pod.created_at) if pod and pod.created_at else _event_start(events)
        until, outcome = _unscheduled_until(ctx, pod, events)
        unscheduled_s = (until - start).total_seconds()
        if outcome != "never scheduled" and unscheduled_s <= limit:
            continue  # transient: resolved (or may still resolve) within the limit
        summary = (
            f"pod {name} could not be scheduled for {_secs(unscheduled_s)} ({outcome}): "
            f"{_first_message(events)}"
        )
        evidence: dict[str, Any] = {
            "pod": name,
            "namespace": pod.namespace if pod else None,
            "node": pod.node if pod else None,
            "observed": unscheduled_s,
            "threshold": limit,
            "outcome": outcome,
            "unscheduled_until": _iso(until),
            "events": _event_evidence(events),
        }
        end = start + timedelta(seconds=limit)
        yield _Finding(FAILED_SCHEDULING, name, summary, evidence, start, end, until)


def _unscheduled_until(
    ctx: _Context, pod: PodState | None, events: list[K8sEventInfo]
) -> tuple[datetime, str]:
    if pod is not None and pod.started_at is not None:
        return _utc(pod.started_at), "scheduled late"
    if pod is not None and pod.node:
        # Scheduled at an unknown time: the failures lasted at least until the last one.
        return max(_utc(e.last_seen) for e in events), "scheduled late"
    ended = (pod is not None and pod.terminated) or ctx.run.status.terminal
    if ended:
        end = (pod.finished_at if pod else None) or ctx.run.finished_at or ctx.now
        return _utc(end), "never scheduled"
    return ctx.now, "still unscheduled"


# --- run findings ----------------------------------------------------------------------------


def _job_backoff_limit(ctx: _Context) -> Iterator[_Finding]:
    run = ctx.run
    events = [e for e in run.k8s_events if e.reason == "BackoffLimitExceeded"]
    if run.conclusion != "BackoffLimitExceeded" and not events:
        return
    jobs = sorted({e.involved_name for e in events if e.involved_name})
    job = ", ".join(jobs) or run.pipeline or run.provider_run_id
    message = _first_message(events) or "Job has reached the specified backoff limit"
    failed_pods = [p.name for p in run.pods if p.phase == "Failed"]
    summary = f"job {job} reached its backoff limit after {len(failed_pods)} failed pods: {message}"
    evidence: dict[str, Any] = {
        "observed": "BackoffLimitExceeded",
        "jobs": jobs,
        "conclusion": run.conclusion,
        "closed_by": run.closed_by,
        "failed_pods": failed_pods,
        "events": _event_evidence(events),
    }
    start = _utc(run.started_at or run.created_at or run.first_event_at)
    seen = [_utc(e.last_seen) for e in events]
    if run.finished_at is not None:
        seen.append(_utc(run.finished_at))
    subject = f"job/{run.provider_run_id}"
    yield _Finding(
        JOB_BACKOFF_LIMIT,
        subject,
        summary,
        evidence,
        start,
        start,
        max(seen or [start]),
        _ONCE,
    )


def _node_not_ready(ctx: _Context) -> Iterator[_Finding]:
    run = ctx.run
    active_start = run.started_at or run.created_at or run.first_event_at
    active_end = run.finished_at or ctx.now
    by_subject: dict[str, list[K8sEventInfo]] = {}
    for event in run.k8s_events:
        if event.reason != "NodeNotReady" or not _about_pod(event):
            continue
        start, end = _event_start([event]), _utc(event.last_seen)
        if end < _utc(active_start) or start > _utc(active_end):
            continue
        pod = ctx.pods_by_name.get(event.involved_name or "")
        node = event.node or (pod.node if pod else None)
        if node is None:
            # Which node, the pod's status will say (it travels on another partition): named
            # after the pod now, the finding would be a second one once the node is known.
            continue
        by_subject.setdefault(node, []).append(event)
    for subject, events in sorted(by_subject.items()):
        start = _event_start(events)
        end = max(_utc(e.last_seen) for e in events)
        pods = sorted({e.involved_name for e in events if e.involved_name})
        summary = f"node {subject} went NotReady during the run (pods affected: {', '.join(pods)})"
        evidence: dict[str, Any] = {
            "node": subject,
            "observed": "NodeNotReady",
            "pods": pods,
            "events": _event_evidence(events),
        }
        # One per node: more Events (or a later one seen first) widen the window, not the id.
        yield _Finding(NODE_NOT_READY, subject, summary, evidence, start, end, end, _ONCE)


# --- helpers ---------------------------------------------------------------------------------


def _about_pod(event: K8sEventInfo) -> bool:
    return event.involved_kind in (None, "Pod")


def _anchor(pod: PodState) -> datetime:
    return _utc(pod.created_at or pod.started_at or pod.updated_at)


def _run_capped(ctx: _Context, when: datetime) -> datetime:
    end = ctx.run.finished_at if ctx.run.status.terminal else None
    return min(_utc(when), _utc(end)) if end is not None else _utc(when)


def _event_start(events: Sequence[K8sEventInfo]) -> datetime:
    return min(_utc(e.first_seen or e.last_seen) for e in events)


def _event_node(events: Sequence[K8sEventInfo]) -> str | None:
    return next((e.node for e in events if e.node), None)


def _first_message(events: Sequence[K8sEventInfo]) -> str | None:
    ordered = sorted(events, key=lambda e: (_utc(e.first_seen or e.last_seen), e.uid))
    return next((e.message for e in ordered if e.message), None)


def _event_evidence(events: Sequence[K8sEventInfo]) -> list[dict[str, Any]]:
    ordered = sorted(events, key=lambda e: (_utc(e.first_seen or e.last_seen), e.uid))
    return [
        {
            "reason": e.reason,
            "message": e.message,
            "count": e.count,
            "involved": f"{e.involved_kind or 'Pod'}/{e.involved_name}",
            "node": e.node,
            "first_seen": _iso(e.first_seen) if e.first_seen else None,
            "last_seen": _iso(e.last_seen),
        }
        for e in ordered[:_SAMPLE_EVENTS]
    ]


def _pod_evidence(pod: PodState) -> dict[str, Any]:
    return {
        "pod": pod.name,
        "namespace": pod.namespace,
        "node": pod.node,
        "phase": pod.phase,
        "created_at": _iso(pod.created_at) if pod.created_at else None,
        "started_at": _iso(pod.started_at) if pod.started_at else None,
    }


def _container_evidence(pod: PodState, container: ContainerState) -> dict[str, Any]:
    return {
        "pod": pod.name,
        "namespace": pod.namespace,
        "node": pod.node,
        "container": container.name,
        "init_container": container.init,
        "restarts": container.restarts,
    }


def _message(container: ContainerState) -> str | None:
    return _text(container.message)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _extra_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, str) and value:
        try:
            return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _on_node(node: str | None) -> str:
    return f" on node {node}" if node else ""


def _iso(when: datetime) -> str:
    return _utc(when).isoformat(timespec="microseconds")


def _secs(seconds: float) -> str:
    text = f"{seconds:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "s"
