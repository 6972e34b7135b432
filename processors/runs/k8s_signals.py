"""Run signals from Kubernetes objects (pure: no Faust, no Kafka, no I/O).

`signals_from_k8s` turns one `K8sObjectEvent` into the `RunSignal`s the run tracker folds in.
Where a correlation key goes is `processors.runs.correlation`.

Kubernetes rules
    Pod   one POD signal (phase, reason, node, times, containers with init ones flagged, deleted).
          A Tekton TaskRun pod (label ``tekton.dev/taskRun``) also gives a STAGE signal for its
          TaskRun: Pending/Running/Succeeded/Failed map to pending/running/succeeded/failed, a pod
          deleted before it ended is cancelled.
    Job   one JOB signal: ``Complete``/``Failed`` conditions decide the outcome (the Failed
          condition's reason, e.g. BackoffLimitExceeded, is the conclusion), ``Suspended`` is
          pending, ``active`` or a start time is running; deleted before it ended is cancelled.
    Event a Warning core/v1 Event (and the few notable Normal ones) about a run's object gives a
          K8S_EVENT signal.
    Other kinds (Services) carry no run state here: [].
    Each signal also describes the run for the case that no CI system does (provider,
    pipeline, namespace, ``sentinel.io/`` labels); for keys that wait for a CI event the CI
    system describes the run, so provider and pipeline stay None.

Judgment calls
    * Signal ids are hashes of object uid + resourceVersion + event type, never of arrival order
      or wall-clock time: a redelivered input gives the same id and is applied once, and a replay
      gives the same ids as the live run.
    * A finished-looking pod or Job (Succeeded/Failed, Complete/Failed, deleted) without any
      finish time in the object gets the event time as its finish time, so that durations and
      quiet periods can still be computed. A pod's end is its main containers' latest end (an
      init container's end is not, unless a failed init container ended the pod).
    * A failed Tekton stage's conclusion is what a user looks for first: the pod's reason
      (Evicted) or the first failed container's reason (OOMKilled, Error); a cancelled one's is
      ``deleted``, as is a deleted Job's.
    * Pipeline fallbacks beyond the label rules: a bare Tekton TaskRun is named by its Task
      (``tekton.dev/task``), an Argo pod without a template label by its workflow; a raw
      ``sentinel.io/run-id`` key uses the Job rules when the object belongs to a Job.
    * Pipeline precedence, whatever the order of arrival (each signal carries its
      `pipeline_rank`): a ``sentinel.io/pipeline`` label (4) > what the object itself knows
      (3: a Job names its CronJob owner, or is its own pipeline when it has none; Tekton and
      Argo labels) > a pod whose Job is named like a CronJob's Job, ``<cronjob>-<8-digit
      scheduled minutes>`` (2) > a pod's ``job-name`` label (1). A pod shows only its Job as
      owner, so before its Job is seen the name is the best guess; the Job settles it (a bare
      Job named like ``backup-12345678`` is its own pipeline once the Job is seen).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from processors.runs.correlation import LINK_PREFIXES, provider_of, route, signal_digest
from schemas.k8s_time import parse_k8s_time as parse_time
from schemas.messages import (
    ContainerState,
    K8sEventInfo,
    K8sEventType,
    K8sObjectEvent,
    PodState,
    RunSignal,
    RunStatus,
    SignalKind,
)

K8S_SOURCE = "k8s"
LABEL_PREFIX = "sentinel.io/"
PIPELINE_LABEL = "sentinel.io/pipeline"
TEKTON_TASKRUN = "tekton.dev/taskRun"
TEKTON_PIPELINE_TASK = "tekton.dev/pipelineTask"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


# ---------------------------------------------------------------------------------------------
# Kubernetes objects


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _maps(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _owner_name(event: K8sObjectEvent, kind: str) -> str | None:
    for owner in event.owner_refs:
        if owner.get("kind") == kind and owner.get("name"):
            return str(owner["name"])
    return None


# How sure a source is of the run's pipeline (RunSignal.pipeline_rank): the fold keeps the
# highest-ranked claim whatever the order of arrival, so a run's pipeline never depends on which
# of its objects was seen last.
RANK_EXPLICIT = 4  # a sentinel.io/pipeline label
RANK_OWNER = 3  # the object knows: a Job names its CronJob (or has none), Tekton/Argo labels
RANK_CRON_NAME = 2  # a pod whose Job is named like a CronJob's: <cronjob>-<scheduled minutes>
RANK_JOB_LABEL = 1  # a pod's job-name label: its Job, which may belong to a CronJob
CRONJOB_SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# The CronJob controller names a Job <cronjob>-<minutes since the epoch> (8 digits from 1989 to
# 2160); a CronJob's name is at most 52 characters so that the Job's fits 63.
_CRON_JOB_NAME = re.compile(r"^(?P<cron>[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?)-(?P<minutes>\d{8})$")


def cronjob_of(job_name: str) -> str | None:
    """The CronJob a Job's name says created it (``nightly-e2e-29411520`` -> ``nightly-e2e``)."""
    match = _CRON_JOB_NAME.match(job_name)
    return match.group("cron") if match else None


def _pipeline(event: K8sObjectEvent, key: str) -> tuple[str | None, int]:
    """(pipeline, rank) of the run this object belongs to, as far as the object can tell."""
    labels = event.labels
    if labels.get(PIPELINE_LABEL):
        return labels[PIPELINE_LABEL], RANK_EXPLICIT
    if key.startswith(LINK_PREFIXES):
        return None, 0
    if key.startswith(("tekton:", "tekton-taskrun:")):
        # A bare TaskRun has no pipeline: its Task is what repeats from run to run.
        found = labels.get("tekton.dev/pipeline") or labels.get("tekton.dev/task") or None
        return found, RANK_OWNER
    if key.startswith("argo:"):
        found = (
            labels.get("workflows.argoproj.io/workflow-template")
            or labels.get("workflows.argoproj.io/workflow")
            or None
        )
        return found, RANK_OWNER
    cron = _owner_name(event, "CronJob")
    if cron is not None:
        return cron, RANK_OWNER
    if event.kind == "Job":
        if event.annotations.get(CRONJOB_SCHEDULED):  # a CronJob's Job whose owner was removed
            return cronjob_of(event.name) or event.name, RANK_OWNER
        return event.name, RANK_OWNER  # no CronJob: the Job is the pipeline
    job = next((labels[name] for name in JOB_NAME_LABELS if labels.get(name)), None)
    if job is None:
        return None, 0
    cron = cronjob_of(job)
    return (cron, RANK_CRON_NAME) if cron is not None else (job, RANK_JOB_LABEL)


def _k8s_signal(
    event: K8sObjectEvent, key: str, signal_id: str, kind: SignalKind, **fields: Any
) -> RunSignal:
    run_id, _ = route(key)
    pipeline, rank = _pipeline(event, key)
    return RunSignal(
        signal_id=signal_id,
        kind=kind,
        run_id=run_id,
        correlation_key=key,
        source=K8S_SOURCE,
        event_time=event.event_time,
        provider=provider_of(key),
        pipeline=pipeline,
        pipeline_rank=rank if pipeline is not None else 0,
        namespace=event.namespace,
        labels={k: v for k, v in event.labels.items() if k.startswith(LABEL_PREFIX)},
        **fields,
    )


def signals_from_k8s(event: K8sObjectEvent) -> list[RunSignal]:
    """The run signals one Kubernetes watch event carries ([] for unrelated objects)."""
    key = event.correlation_key
    if not key:
        return []
    base_id = signal_digest(event.kind, event.uid, event.resource_version, event.event_type.value)
    if event.kind == "Pod":
        return _pod_signals(event, key, base_id)
    if event.kind == "Job":
        return [_job_signal(event, key, base_id)]
    if event.kind == "Event":
        found = _event_signal(event, key, base_id)
        return [found] if found is not None else []
    return []


_CONTAINER_STATES: tuple[Literal["terminated", "running", "waiting"], ...] = (
    "terminated",
    "running",
    "waiting",
)


def _container(raw: Mapping[str, Any], init: bool) -> ContainerState:
    state = _map(raw.get("state"))
    which = next((w for w in _CONTAINER_STATES if w in state), None)
    detail = _map(state.get(which)) if which else {}
    last = _map(_map(raw.get("lastState")).get("terminated"))
    exit_code = detail.get("exitCode")
    last_code = last.get("exitCode")
    message = _str(detail.get("message"))
    return ContainerState(
        name=str(raw.get("name") or ""),
        init=init,
        state=which,
        reason=_str(detail.get("reason")),
        message=message[:_MAX_EVENT_MESSAGE] if message else None,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        restarts=int(raw.get("restartCount") or 0),
        last_reason=_str(last.get("reason")),
        last_exit_code=last_code if isinstance(last_code, int) else None,
        last_started_at=parse_time(last.get("startedAt")),
        last_finished_at=parse_time(last.get("finishedAt")),
        started_at=parse_time(detail.get("startedAt")),
        finished_at=parse_time(detail.get("finishedAt")),
    )


def _containers(status: Mapping[str, Any]) -> list[ContainerState]:
    init = [_container(c, True) for c in _maps(status.get("initContainerStatuses"))]
    main = [_container(c, False) for c in _maps(status.get("containerStatuses"))]
    return init + main


def _pod_finished_at(
    phase: str | None, deleted: bool, containers: list[ContainerState], event_time: datetime
) -> datetime | None:
    if phase not in ("Succeeded", "Failed") and not deleted:
        return None
    if phase in ("Succeeded", "Failed"):
        main = [c.finished_at for c in containers if not c.init]
        if main and all(main):
            return max(c.finished_at for c in containers if c.finished_at is not None)
        # Main containers never started: a failed init container ended the pod.
        failed_init = [
            c.finished_at
            for c in containers
            if c.init and c.finished_at is not None and c.exit_code not in (None, 0)
        ]
        if failed_init:
            return max(failed_init)
    # Evicted or deleted without a container saying when (an init container's end is not it).
    return event_time


_PHASE_STATUS = {
    "Pending": RunStatus.PENDING,
    "Running": RunStatus.RUNNING,
    "Succeeded": RunStatus.SUCCEEDED,
    "Failed": RunStatus.FAILED,
}


def _pod_state(event: K8sObjectEvent) -> PodState:
    obj = event.object
    status = _map(obj.get("status"))
    phase = _str(status.get("phase"))
    deleted = event.event_type is K8sEventType.DELETED
    containers = _containers(status)
    return PodState(
        uid=event.uid,
        namespace=event.namespace,
        name=event.name,
        phase=phase,
        reason=_str(status.get("reason")),
        message=_str(status.get("message")),
        node=_str(_map(obj.get("spec")).get("nodeName")),
        stage_id=event.labels.get(TEKTON_TASKRUN) or None,
        created_at=parse_time(_map(obj.get("metadata")).get("creationTimestamp")),
        started_at=parse_time(status.get("startTime")),
        finished_at=_pod_finished_at(phase, deleted, containers, event.event_time),
        deleted=deleted,
        resource_version=event.resource_version or None,
        containers=containers,
        updated_at=event.event_time,
    )


def _pod_failure_reason(pod: PodState) -> str | None:
    if pod.reason:
        return pod.reason  # Evicted, DeadlineExceeded: the pod-level reason says the most
    for container in pod.containers:
        if container.state == "terminated" and container.exit_code not in (None, 0):
            return container.reason or f"exit code {container.exit_code}"
    return None


def _pod_signals(event: K8sObjectEvent, key: str, base_id: str) -> list[RunSignal]:
    pod = _pod_state(event)
    signals = [_k8s_signal(event, key, base_id, SignalKind.POD, pod=pod)]
    if pod.stage_id is None:
        return signals
    status = _PHASE_STATUS.get(pod.phase or "Pending", RunStatus.UNKNOWN)
    conclusion: str | None = None
    if pod.deleted and not status.terminal:
        status, conclusion = RunStatus.CANCELLED, "deleted"
    elif status is RunStatus.FAILED:
        conclusion = _pod_failure_reason(pod)
    stage = _k8s_signal(
        event,
        key,
        f"{base_id}-stage",
        SignalKind.STAGE,
        status=status,
        conclusion=conclusion,
        stage_id=pod.stage_id,
        stage_name=event.labels.get(TEKTON_PIPELINE_TASK) or pod.stage_id,
        started_at=pod.started_at,
        finished_at=pod.finished_at if status.terminal else None,
    )
    return [*signals, stage]


def _true_condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in _maps(status.get("conditions")):
        if condition.get("type") == kind and str(condition.get("status")) == "True":
            return condition
    return None


def _job_status(status: Mapping[str, Any]) -> tuple[RunStatus, str | None, datetime | None]:
    """(status, conclusion, finished_at) from a Job's status block."""
    complete = _true_condition(status, "Complete")
    failed = _true_condition(status, "Failed")
    ended = complete or failed
    if ended is not None:
        finished = parse_time(status.get("completionTime")) or parse_time(
            ended.get("lastTransitionTime")
        )
        if failed is not None:
            return RunStatus.FAILED, _str(failed.get("reason")), finished
        return RunStatus.SUCCEEDED, None, finished
    if _true_condition(status, "Suspended") is not None:
        return RunStatus.PENDING, "suspended", None
    active = status.get("active")
    if (isinstance(active, int) and active > 0) or status.get("startTime"):
        return RunStatus.RUNNING, None, None
    return RunStatus.PENDING, None, None


def _job_signal(event: K8sObjectEvent, key: str, base_id: str) -> RunSignal:
    status_block = _map(event.object.get("status"))
    status, conclusion, finished_at = _job_status(status_block)
    if event.event_type is K8sEventType.DELETED and not status.terminal:
        # Deleting a running Job kills its pods: the run was stopped, not failed by itself.
        status, conclusion, finished_at = RunStatus.CANCELLED, "deleted", event.event_time
    elif status.terminal and finished_at is None:
        finished_at = event.event_time
    return _k8s_signal(
        event,
        key,
        base_id,
        SignalKind.JOB,
        status=status,
        conclusion=conclusion,
        started_at=parse_time(status_block.get("startTime")),
        finished_at=finished_at,
    )


# Normal Events are routine (Scheduled, Pulled, Started); these few Normal ones are not.
_NOTABLE_NORMAL_REASONS = frozenset({"NodeNotReady", "Evicted", "Preempted"})
_MAX_EVENT_MESSAGE = 1000


def _event_signal(event: K8sObjectEvent, key: str, signal_id: str) -> RunSignal | None:
    """A Warning core/v1 Event about one of the run's objects (a deleted Event is not news)."""
    obj = event.object
    kind = _str(obj.get("type"))
    reason = _str(obj.get("reason"))
    if event.event_type.value == "DELETED":
        return None
    if kind != "Warning" and reason not in _NOTABLE_NORMAL_REASONS:
        return None
    involved = _map(obj.get("involvedObject") or obj.get("regarding"))
    source = _map(obj.get("source"))
    series = _map(obj.get("series"))
    first = parse_time(obj.get("firstTimestamp")) or parse_time(obj.get("eventTime"))
    last = (
        parse_time(series.get("lastObservedTime"))
        or parse_time(obj.get("lastTimestamp"))
        or first
        or event.event_time
    )
    count = obj.get("count") or series.get("count") or 1
    message = _str(obj.get("message") or obj.get("note"))
    info = K8sEventInfo(
        uid=event.uid,
        type=kind,
        reason=reason,
        message=message[:_MAX_EVENT_MESSAGE] if message else None,
        involved_kind=_str(involved.get("kind")),
        involved_name=_str(involved.get("name")),
        node=_str(source.get("host")) or _node_of(involved),
        count=int(count) if isinstance(count, int | str) and str(count).isdigit() else 1,
        first_seen=first,
        last_seen=last,
    )
    run_id, _ = route(key)
    return RunSignal(
        signal_id=signal_id,
        kind=SignalKind.K8S_EVENT,
        run_id=run_id,
        correlation_key=key,
        source=K8S_SOURCE,
        event_time=event.event_time,
        namespace=event.namespace,
        k8s_event=info,
    )


def _node_of(involved: Mapping[str, Any]) -> str | None:
    if _str(involved.get("kind")) == "Node":
        return _str(involved.get("name"))
    return None
