"""The run state machine: fold `CiEvent`s into a `RunState` (pure: no Faust, no I/O).

`apply(state, event)` returns the new state, or None when the event changes nothing (a duplicate,
an event older than what the state already knows, or an ignored check suite). Kafka delivers a
run's events at least once and webhooks arrive out of order, so the fold is built to be
order- and duplicate-insensitive: every field is merged with a rule that is commutative,
associative and idempotent, and the final state depends only on the *set* of events applied
(`version` aside, which counts changes).

Merge rules
    status      Status rank pending(0) < running(1) < unknown(2) < succeeded/failed/cancelled/
                timed_out(3); the higher rank wins; within a rank the later event_time wins,
                then the larger status string, then the larger event_id. `conclusion` and
                `finished_at` come with the winning event (finished_at only at rank >= 2).
                Only run events decide the run's own status; a stage that is running or done
                lifts a pending run to running (a job ran, so the run did).
    fields      provider, provider_run_id, attempt, repository, pipeline, branch, commit_sha,
                trigger, actor: the newest event that has a value, where run events outrank
                stage events (a job's sender must not replace the run's actor) and then
                event_time and event_id decide. CI events outrank signals; among signals the
                pipeline goes to the highest `pipeline_rank` (a Job's CronJob over a pod's
                job-name label), then to the newest. `url` and `labels` (per key) come from
                run events only: a stage event's url and labels describe the stage.
    times       created_at = min, started_at = min of non-null (stage events included: a run is no
                younger than its first job), first_event_at = min event_time, updated_at = max
                event_time; duration_s = finished_at - (started_at or created_at), never negative.
    stages      keyed by stage_id, merged with the same rules (name, runner_name, url: newest
                with a value; steps: from the highest-ranked status event that has steps, i.e.
                the most progressed list); sorted by started_at (unstarted last), then stage_id.

Judgment calls
    * unknown ranks below the definite outcomes: a run that has been reported succeeded must not
      turn "unknown" because a later event lacked a conclusion, while a definite outcome arriving
      after an unknown one still replaces it.
    * A stage event for an unknown run opens it; with stage events only, a run never finishes on
      its own (we cannot know that no more jobs will come): its completion event or the
      inactivity timeout closes it.
    * Newest-wins needs to remember *which* event set each field; that order key is kept in
      `RunState.merge_keys` (stage fields under ``stage:<id>:<field>``), so the rules hold across
      restarts of the tracker too. Two different events with the same event_id and event_time
      are taken to be the same event (event_id is the delivery id).
    * Known limit: a check suite that GitHub re-runs under the same id (``rerequested``) keeps
      its earlier terminal status, because without an attempt counter its new "queued" cannot
      be told from a late one. GitHub Actions suites are ignored by default anyway (their
      workflow runs are tracked per attempt).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.messages import (
    CiEvent,
    CiEventKind,
    K8sEventInfo,
    PodState,
    RunSignal,
    RunState,
    RunStatus,
    SignalKind,
    StageState,
    StepInfo,
    TestCounts,
)
from schemas.utc import as_utc as _utc

DEFAULT_IGNORED_APPS: frozenset[str] = frozenset({"github-actions"})
CHECK_EVENT_TYPES = frozenset({"check_suite", "check_run"})

_RANK: dict[RunStatus, int] = {
    RunStatus.PENDING: 0,
    RunStatus.RUNNING: 1,
    RunStatus.UNKNOWN: 2,
    RunStatus.SUCCEEDED: 3,
    RunStatus.FAILED: 3,
    RunStatus.CANCELLED: 3,
    RunStatus.TIMED_OUT: 3,
}
_FINISHED_RANK = 2
_RUN_FIELDS = (
    "provider",
    "provider_run_id",
    "attempt",
    "repository",
    "pipeline",
    "branch",
    "commit_sha",
    "trigger",
    "actor",
)
_STAGE_FIELDS = (("name", "stage_name"), ("runner_name", "runner_name"), ("url", "url"))
_STATUS_KEY = "status"
_JOB_KEY = "job-status"
_MARKER_KEY = "marker-status"
_TESTS_PREFIX = "tests:"
_FINISH_PREFIX = "finish:"
# Signals (pods, Jobs, log markers) describe a run below any CI event: their order keys start
# with a character that sorts before the CI ones ("0|", "1|").
_SIGNAL_SOURCE = "-"


@dataclass(frozen=True)
class Policy:
    """Time limits that close runs (config `tracking`)."""

    inactivity_timeout_s: float = 3600.0
    pod_quiet_period_s: float = 60.0


DEFAULT_POLICY = Policy()


def apply(
    state: RunState | None,
    event: CiEvent,
    ignore_check_suite_apps: Collection[str] = DEFAULT_IGNORED_APPS,
    policy: Policy = DEFAULT_POLICY,
) -> RunState | None:
    """Fold `event` into `state`; None when nothing changed (duplicate, stale or ignored).

    Raises ValueError for an event of another run or a stage event without a stage_id.
    """
    if is_ignored(event, ignore_check_suite_apps):
        return None
    _check(state, event)
    merged = _merge(_copy(state) if state else _blank(event), event)
    return _finish(state, merged, policy)


def apply_signal(
    state: RunState | None, signal: RunSignal, policy: Policy = DEFAULT_POLICY
) -> RunState | None:
    """Fold a pod, Job, stage, marker, test batch or activity signal into `state`.

    None when nothing changed. Raises ValueError for a signal without a run id, of another run,
    or of a kind the run tracker does not take (bind, watermark).
    """
    if signal.run_id is None:
        raise ValueError(f"signal {signal.signal_id} has no run id")
    if state is not None and state.run_id != signal.run_id:
        raise ValueError(
            f"signal {signal.signal_id} is for run {signal.run_id}, not {state.run_id}"
        )
    if signal.kind in (SignalKind.BIND, SignalKind.UNBIND, SignalKind.WATERMARK):
        raise ValueError(f"signal {signal.signal_id}: {signal.kind.value} is not run input")
    if signal.kind is SignalKind.STAGE and not signal.stage_id:
        raise ValueError(f"stage signal {signal.signal_id} has no stage_id")
    run = _copy(state) if state else _blank_for_signal(signal, signal.run_id)
    _merge_signal(run, signal)
    return _finish(state, run, policy)


def advance(
    state: RunState, watermark: datetime, policy: Policy = DEFAULT_POLICY
) -> RunState | None:
    """Let event time reach `watermark`: close the run if a timeout or quiet period has passed.

    The state remembers the latest *deadline* passed (not the watermark itself), so the result
    depends only on the inputs and on how far event time got, never on when it was checked.
    None when nothing changed.
    """
    passed = [d for d in deadlines(state, policy) if d <= _utc(watermark)]
    if not passed:
        return None
    latest = max(passed)
    if state.watermark is not None and latest <= state.watermark:
        return None
    run = _copy(state)
    run.watermark = latest
    return _finish(state, run, policy)


def deadlines(state: RunState, policy: Policy = DEFAULT_POLICY) -> list[datetime]:
    """Event times at which the run would close by itself (timeout, pods' quiet period)."""
    if _decided(state) is not None:
        return []
    found = []
    activity = _last_activity(state)
    found.append(activity + timedelta(seconds=policy.inactivity_timeout_s))
    pods_end = _pods_end(state)
    if pods_end is not None:
        found.append(pods_end + timedelta(seconds=policy.pod_quiet_period_s))
    return found


def _finish(state: RunState | None, merged: RunState, policy: Policy) -> RunState | None:
    _derive(merged, policy)
    if state is not None and _same(merged, state):
        return None
    merged.version = state.version + 1 if state else 1
    return merged


def ci_correlation_keys(event: CiEvent) -> list[str]:
    """Keys under which pods of this CI run show up (see `k8s.correlation`).

    A GitHub job names the runner that took it (an ARC runner pod has the runner's name); a
    Jenkins build's relative URL is the `runUrl` annotation the Kubernetes plugin puts on its
    agent pods.
    """
    keys = []
    if event.runner_name and event.provider == "github":
        keys.append(f"github-runner:{event.runner_name}")
    run_url = event.labels.get("jenkins.run_url")
    if run_url:
        keys.append(f"jenkins:{run_url}")
    return keys


def is_ignored(event: CiEvent, ignore_check_suite_apps: Collection[str]) -> bool:
    """Check suites (and their check runs) of these apps duplicate runs tracked another way."""
    return event.event_type in CHECK_EVENT_TYPES and event.app in ignore_check_suite_apps


def _check(state: RunState | None, event: CiEvent) -> None:
    if state is not None and state.run_id != event.run_id:
        raise ValueError(f"event {event.event_id} is for run {event.run_id}, not {state.run_id}")
    if event.kind is CiEventKind.STAGE and not event.stage_id:
        raise ValueError(f"stage event {event.event_id} has no stage_id")


def _copy(state: RunState) -> RunState:
    # The merge mutates only these containers and reassigns everything else, so copying them is
    # enough to leave the caller's state untouched (a deep copy costs ten times as much).
    keys = dict(state.merge_keys)
    if _STATUS_KEY not in keys and _RANK[state.status] >= _FINISHED_RANK and not state.closed_by:
        # A state finished outside this module (built by hand, or before merge keys existed)
        # keeps its outcome: it counts as a run event at its updated_at. Stages alone can only
        # explain pending/running, so states made here never take this path.
        keys[_STATUS_KEY] = _key(
            _RANK[state.status], state.updated_at, state.status.value, state.run_id
        )
        if state.finished_at is not None:
            keys[_FINISH_PREFIX + state.status.value] = _stamp(state.finished_at)
    return state.model_copy(
        update={
            "stages": [stage.model_copy() for stage in state.stages],
            "pods": [pod.model_copy() for pod in state.pods],
            "k8s_events": list(state.k8s_events),
            "labels": dict(state.labels),
            "markers": dict(state.markers),
            "log_activity": dict(state.log_activity),
            "correlation_keys": list(state.correlation_keys),
            "merge_keys": keys,
        }
    )


def _blank(event: CiEvent) -> RunState:
    # The identity element of the merge: every register is unset (no merge key), so the first
    # event's values win exactly as if they had been merged into an existing state.
    when = _utc(event.event_time)
    return RunState(
        run_id=event.run_id,
        provider=event.provider,
        provider_run_id=event.provider_run_id,
        attempt=event.attempt,
        status=RunStatus.PENDING,
        first_event_at=when,
        updated_at=when,
        version=0,
    )


def _blank_for_signal(signal: RunSignal, run_id: str) -> RunState:
    # A run that only Kubernetes or logs know of so far. Provider and pipeline stay claimable:
    # a CI event for the same run id replaces them (its keys sort higher).
    when = _utc(signal.event_time)
    return RunState(
        run_id=run_id,
        provider=signal.provider or signal.source,
        provider_run_id=run_id,
        status=RunStatus.PENDING,
        first_event_at=when,
        updated_at=when,
        version=0,
    )


def _merge(run: RunState, event: CiEvent) -> RunState:
    when = _utc(event.event_time)
    run.first_event_at = min(run.first_event_at, when)
    run.updated_at = max(run.updated_at, when)
    run.last_activity_at = _latest(run.last_activity_at, when)
    run.created_at = _earliest(run.created_at, event.created_at)
    run.started_at = _earliest(run.started_at, event.started_at)
    _merge_run_fields(run, event)
    for key in ci_correlation_keys(event):
        _add_key(run, key)
    if event.kind is CiEventKind.RUN:
        _merge_run_status(run, event)
        _merge_run_url_and_labels(run, event)
    else:
        _merge_stage(run, _StageInput.from_event(event))
    return run


def _merge_signal(run: RunState, signal: RunSignal) -> None:
    when = _utc(signal.event_time)
    run.last_activity_at = _latest(run.last_activity_at, when)
    if signal.correlation_key:
        _add_key(run, signal.correlation_key)
    # Every input counts for the run's first and latest event time, log activity included:
    # otherwise the run an activity signal happened to open would differ from the same run
    # opened by another input.
    run.first_event_at = min(run.first_event_at, when)
    run.updated_at = max(run.updated_at, when)
    if signal.kind is SignalKind.ACTIVITY:
        if signal.log_pod is not None:
            run.log_activity[signal.log_pod] = _latest(run.log_activity.get(signal.log_pod), when)
        return  # alive, nothing else
    _merge_signal_fields(run, signal)
    if signal.kind is SignalKind.POD and signal.pod is not None:
        _merge_pod(run, signal, signal.pod)
    elif signal.kind is SignalKind.JOB:
        _merge_job(run, signal)
    elif signal.kind is SignalKind.STAGE:
        _merge_stage(run, _StageInput.from_signal(signal))
    elif signal.kind is SignalKind.MARKER:
        _merge_marker(run, signal)
    elif signal.kind is SignalKind.TESTS and signal.tests is not None:
        _merge_tests(run, signal.signal_id, signal.tests)
    elif signal.kind is SignalKind.K8S_EVENT and signal.k8s_event is not None:
        _merge_k8s_event(run, signal, signal.k8s_event)


def _merge_signal_fields(run: RunState, signal: RunSignal) -> None:
    key = f"{_SIGNAL_SOURCE}|{_stamp(signal.event_time)}|{signal.signal_id}"
    for field in ("provider", "namespace"):
        value = getattr(signal, field)
        if value is not None and _claim(run.merge_keys, field, key):
            setattr(run, field, value)
    if signal.pipeline is not None:
        # Rank first (a Job's CronJob outranks a pod's job-name label), then newest: the
        # pipeline does not depend on which signal came last. The rank is one digit after the
        # signal marker, so every signal key still sorts below every CI event's key.
        rank = min(max(signal.pipeline_rank, 0), 9)
        ranked = f"{_SIGNAL_SOURCE}{rank}|{_stamp(signal.event_time)}|{signal.signal_id}"
        if _claim(run.merge_keys, "pipeline", ranked):
            run.pipeline = signal.pipeline
    for name, value in signal.labels.items():
        if _claim(run.merge_keys, f"label:{name}", key):
            run.labels[name] = value


def _merge_pod(run: RunState, signal: RunSignal, pod: PodState) -> None:
    # Newest report of a pod wins; at equal event times a deletion is the later fact, then the
    # larger resourceVersion (numeric in every API server we know of).
    version = (pod.resource_version or "").rjust(24, "0")
    order = f"{_stamp(signal.event_time)}|{int(pod.deleted)}|{version}|{signal.signal_id}"
    if not _claim(run.merge_keys, f"pod:{pod.uid}", order):
        return
    kept = [existing for existing in run.pods if existing.uid != pod.uid]
    kept.append(pod.model_copy(update={"updated_at": _utc(signal.event_time)}))
    run.pods = sorted(kept, key=lambda p: (_sort_time(p.created_at), p.name, p.uid))
    run.started_at = _earliest(run.started_at, pod.started_at)
    run.created_at = _earliest(run.created_at, pod.created_at)


MAX_K8S_EVENTS = 200


def _merge_k8s_event(run: RunState, signal: RunSignal, info: K8sEventInfo) -> None:
    # An Event object is updated in place as it repeats (count, lastTimestamp): newest wins.
    order = f"{_stamp(info.last_seen)}|{info.count:012d}|{signal.signal_id}"
    if not _claim(run.merge_keys, f"event:{info.uid}", order):
        return
    kept = [existing for existing in run.k8s_events if existing.uid != info.uid]
    kept.append(info.model_copy())
    kept.sort(key=lambda e: (_sort_time(e.first_seen or e.last_seen), e.uid))
    # Bounded: the earliest Events of a run explain it best (what went wrong first).
    run.k8s_events = kept[:MAX_K8S_EVENTS]


def _merge_job(run: RunState, signal: RunSignal) -> None:
    status = signal.status or RunStatus.PENDING
    run.started_at = _earliest(run.started_at, signal.started_at)
    finished = signal.finished_at if _RANK[status] >= _FINISHED_RANK else None
    if finished is not None:
        _claim_earliest(run.merge_keys, f"{_FINISH_PREFIX}job:{status.value}", _utc(finished))
    key = _key(_RANK[status], signal.event_time, status.value, signal.signal_id)
    if _claim(run.merge_keys, _JOB_KEY, key) and run.merge_keys.get(_STATUS_KEY) is None:
        run.conclusion = signal.conclusion


def _merge_marker(run: RunState, signal: RunSignal) -> None:
    when = _utc(signal.event_time)
    if signal.marker:
        seen = run.markers.get(signal.marker)
        run.markers[signal.marker] = when if seen is None or when < seen else seen
    status = signal.status
    if status is None:
        return
    if status is RunStatus.RUNNING:
        run.started_at = _earliest(run.started_at, when)
    elif _RANK[status] >= _FINISHED_RANK:
        _claim_earliest(run.merge_keys, f"{_FINISH_PREFIX}marker:{status.value}", when)
    _claim(run.merge_keys, _MARKER_KEY, _key(_RANK[status], when, status.value, signal.signal_id))


def _merge_tests(run: RunState, batch_id: str, counts: TestCounts) -> None:
    # Counted per batch: a batch delivered twice (same deterministic id) counts once.
    key = _TESTS_PREFIX + batch_id
    if key in run.merge_keys:
        return
    run.merge_keys[key] = ",".join(
        str(n) for n in (counts.total, counts.passed, counts.failed, counts.skipped, counts.error)
    )
    totals = [0, 0, 0, 0, 0]
    for name, value in run.merge_keys.items():
        if name.startswith(_TESTS_PREFIX):
            for i, part in enumerate(value.split(",")):
                totals[i] += int(part)
    run.tests = TestCounts(
        total=totals[0], passed=totals[1], failed=totals[2], skipped=totals[3], error=totals[4]
    )


def has_test_batch(state: RunState | None, batch_id: str) -> bool:
    """Whether this test batch was counted on the run already (its results were published)."""
    return state is not None and _TESTS_PREFIX + batch_id in state.merge_keys


def _add_key(run: RunState, key: str) -> None:
    if key not in run.correlation_keys:
        run.correlation_keys = sorted([*run.correlation_keys, key])


def _merge_run_fields(run: RunState, event: CiEvent) -> None:
    source = 1 if event.kind is CiEventKind.RUN else 0
    key = f"{source}|{_field_key(event)}"
    for field in _RUN_FIELDS:
        value = getattr(event, field)
        if value is not None and _claim(run.merge_keys, field, key):
            setattr(run, field, value)


def _merge_run_url_and_labels(run: RunState, event: CiEvent) -> None:
    key = _field_key(event)
    if event.url is not None and _claim(run.merge_keys, "url", key):
        run.url = event.url
    for name, value in event.labels.items():
        if _claim(run.merge_keys, f"label:{name}", key):
            run.labels[name] = value


def _merge_run_status(run: RunState, event: CiEvent) -> None:
    finished = _finish_time(event)
    if finished is not None:
        # The end of a run is the first report of its outcome: Jenkins' FINALIZED comes after
        # post-build work, seconds after the COMPLETED that marks the end the CI shows.
        _claim_earliest(run.merge_keys, f"finish:{event.status.value}", finished)
    if _claim(run.merge_keys, _STATUS_KEY, _status_key(event)):
        # The run's own status is decoded from the key in _derive (stages may lift it).
        run.conclusion = event.conclusion


@dataclass(frozen=True)
class _StageInput:
    """What a CI stage event and a stage signal (Tekton, Jenkins log, marker) both say."""

    stage_id: str
    name: str | None
    runner_name: str | None
    url: str | None
    status: RunStatus
    conclusion: str | None
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepInfo]
    event_time: datetime
    event_id: str
    source: str
    order_prefix: str  # CI stage events outrank signals about the same stage

    @classmethod
    def from_event(cls, event: CiEvent) -> _StageInput:
        return cls(
            stage_id=event.stage_id or "",
            name=event.stage_name,
            runner_name=event.runner_name,
            url=event.url,
            status=event.status,
            conclusion=event.conclusion,
            started_at=event.started_at,
            finished_at=_finish_time(event),
            steps=event.steps,
            event_time=event.event_time,
            event_id=event.event_id,
            source="ci",
            order_prefix="",
        )

    @classmethod
    def from_signal(cls, signal: RunSignal) -> _StageInput:
        status = signal.status or RunStatus.PENDING
        return cls(
            stage_id=signal.stage_id or "",
            name=signal.stage_name,
            runner_name=None,
            url=None,
            status=status,
            conclusion=signal.conclusion,
            started_at=signal.started_at,
            finished_at=signal.finished_at if _RANK[status] >= _FINISHED_RANK else None,
            steps=[],
            event_time=signal.event_time,
            event_id=signal.signal_id,
            source=signal.source,
            order_prefix=_SIGNAL_SOURCE,
        )


def _merge_stage(run: RunState, given: _StageInput) -> None:
    stage = _find_or_add_stage(run, given)
    prefix = f"stage:{given.stage_id}:"
    keys = run.merge_keys
    stage.started_at = _earliest(stage.started_at, given.started_at)
    stage.updated_at = max(stage.updated_at, _utc(given.event_time))
    status_key = given.order_prefix + _key(
        _RANK[given.status], given.event_time, given.status.value, given.event_id
    )
    if given.finished_at is not None:
        _claim_earliest(keys, f"{prefix}finish:{given.status.value}", _utc(given.finished_at))
    if _claim(keys, prefix + _STATUS_KEY, status_key):
        stage.status = given.status
        stage.conclusion = given.conclusion
        stage.source = given.source
    if given.steps and _claim(keys, prefix + "steps", status_key):
        stage.steps = [step.model_copy() for step in given.steps]
    field_key = f"{given.order_prefix}{_stamp(given.event_time)}|{given.event_id}"
    for name in ("name", "runner_name", "url"):
        value = getattr(given, name)
        if value is not None and _claim(keys, prefix + name, field_key):
            setattr(stage, name, value)
    stage.finished_at = _stored_time(keys, f"{prefix}finish:{stage.status.value}")
    stage.duration_s = _duration(stage.started_at, stage.finished_at)


def _find_or_add_stage(run: RunState, given: _StageInput) -> StageState:
    for stage in run.stages:
        if stage.stage_id == given.stage_id:
            return stage
    # Placeholders are overwritten by the first event's registers (none is claimed yet).
    stage = StageState(
        stage_id=given.stage_id,
        name=given.stage_id,
        status=RunStatus.PENDING,
        updated_at=_utc(given.event_time),
        source=given.source,
    )
    run.stages.append(stage)
    return stage


def _derive(run: RunState, policy: Policy = DEFAULT_POLICY) -> None:
    """Status, end and duration from the registers, in order of authority (see the module doc)."""
    decided = _decided(run)
    if decided is None:
        decided = _closed_by_time(run, policy)
    if decided is not None:
        status, closed_by, finished = decided
        run.status, run.closed_by, run.finished_at = status, closed_by, finished
    else:
        run.status, run.closed_by, run.finished_at = _progress(run), None, None
    run.duration_s = _duration(run.started_at or run.created_at, run.finished_at)
    _time_out_open_stages(run)
    run.stages.sort(key=_stage_order)
    _attach_pods_to_stages(run)


def _time_out_open_stages(run: RunState) -> None:
    # A stage still open when its run timed out timed out with it; derived from the stage's own
    # register each time, so a late event that reopens the run reopens the stage too.
    for stage in run.stages:
        own = _register_status(run, f"stage:{stage.stage_id}:{_STATUS_KEY}")
        if own is None or own.terminal:
            continue
        stage.status = RunStatus.TIMED_OUT if run.closed_by == "timeout" else own


def _decided(run: RunState) -> tuple[RunStatus, str, datetime | None] | None:
    """An outcome someone reported: the CI system, else the Job, else a log end marker."""
    for register, closed_by, finish_prefix in (
        (_STATUS_KEY, "ci", _FINISH_PREFIX),
        (_JOB_KEY, "job", _FINISH_PREFIX + "job:"),
        (_MARKER_KEY, "marker", _FINISH_PREFIX + "marker:"),
    ):
        status = _register_status(run, register)
        if status is not None and _RANK[status] >= _FINISHED_RANK:
            return status, closed_by, _stored_time(run.merge_keys, finish_prefix + status.value)
    return None


def _closed_by_time(run: RunState, policy: Policy) -> tuple[RunStatus, str, datetime] | None:
    """An outcome the passing of event time decided (see `advance`)."""
    if run.watermark is None:
        return None
    pods_end = _pods_end(run)
    if pods_end is not None:
        quiet_end = pods_end + timedelta(seconds=policy.pod_quiet_period_s)
        if run.watermark >= quiet_end:
            failed = any(pod.phase != "Succeeded" for pod in run.pods)
            return (RunStatus.FAILED if failed else RunStatus.SUCCEEDED), "pods", pods_end
    deadline = _last_activity(run) + timedelta(seconds=policy.inactivity_timeout_s)
    if run.watermark >= deadline:
        return RunStatus.TIMED_OUT, "timeout", deadline
    return None


def _pods_end(run: RunState) -> datetime | None:
    """When the last pod ended, for a run that only pods describe (no CI system, no Job)."""
    if not run.pods or run.merge_keys.get(_STATUS_KEY) or run.merge_keys.get(_JOB_KEY):
        return None
    if run.provider not in ("kubernetes", "tekton", "argo"):
        return None  # a CI system owns the outcome (its pods may come and go)
    if not all(pod.terminated for pod in run.pods):
        return None
    ends = [pod.finished_at or pod.updated_at for pod in run.pods]
    return max(ends)


def _progress(run: RunState) -> RunStatus:
    candidates = [
        _register_status(run, _STATUS_KEY),
        _register_status(run, _JOB_KEY),
        _register_status(run, _MARKER_KEY),
    ]
    if any(status is RunStatus.UNKNOWN for status in candidates):
        return RunStatus.UNKNOWN
    stage_progress = any(_RANK[stage.status] >= _RANK[RunStatus.RUNNING] for stage in run.stages)
    pod_progress = any(pod.phase in ("Running", "Succeeded", "Failed") for pod in run.pods)
    if RunStatus.RUNNING in candidates or stage_progress or pod_progress:
        return RunStatus.RUNNING
    return RunStatus.PENDING


def _attach_pods_to_stages(run: RunState) -> None:
    # An ARC runner pod is named after the runner that took the job: that job is its stage.
    by_runner = {stage.runner_name: stage.stage_id for stage in run.stages if stage.runner_name}
    for pod in run.pods:
        if pod.stage_id is None and pod.name in by_runner:
            pod.stage_id = by_runner[pod.name]


def _register_status(run: RunState, register: str) -> RunStatus | None:
    """The status of the winning event of a register, from its order key (see `_key`)."""
    key = run.merge_keys.get(register)
    return None if key is None else RunStatus(key.split("|", 3)[2])


def _own_status(run: RunState) -> RunStatus | None:
    return _register_status(run, _STATUS_KEY)


def _last_activity(run: RunState) -> datetime:
    return max(run.updated_at, run.last_activity_at or run.updated_at)


def _stage_order(stage: StageState) -> tuple[bool, datetime, str]:
    started = stage.started_at
    return (started is None, started or datetime.min.replace(tzinfo=UTC), stage.stage_id)


def _status_key(event: CiEvent) -> str:
    # Sorts as the tuple (rank, event_time, status, event_id): rank is one digit, the time has a
    # fixed width and no status value is a prefix of another.
    return _key(_RANK[event.status], event.event_time, event.status.value, event.event_id)


def _key(rank: int, when: datetime, status: str, event_id: str) -> str:
    return f"{rank}|{_stamp(when)}|{status}|{event_id}"


def _field_key(event: CiEvent) -> str:
    return f"{_stamp(event.event_time)}|{event.event_id}"


def _claim(keys: dict[str, str], name: str, key: str) -> bool:
    """Record `key` for register `name` if it is newer than the stored one; True if it won."""
    current = keys.get(name)
    if current is not None and key <= current:
        return False
    keys[name] = key
    return True


def _finish_time(event: CiEvent) -> datetime | None:
    if _RANK[event.status] < _FINISHED_RANK or event.finished_at is None:
        return None
    return _utc(event.finished_at)


def _claim_earliest(keys: dict[str, str], name: str, when: datetime) -> None:
    stamp = _stamp(when)
    current = keys.get(name)
    if current is None or stamp < current:
        keys[name] = stamp


def _stored_time(keys: dict[str, str], name: str) -> datetime | None:
    stamp = keys.get(name)
    return None if stamp is None else datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def _latest(current: datetime | None, candidate: datetime) -> datetime:
    candidate = _utc(candidate)
    return candidate if current is None or candidate > current else current


def _sort_time(when: datetime | None) -> datetime:
    return _utc(when) if when is not None else datetime.max.replace(tzinfo=UTC)


def _same(merged: RunState, state: RunState) -> bool:
    return merged.model_dump(exclude={"version"}) == state.model_dump(exclude={"version"})


def _earliest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    candidate = _utc(candidate)
    return candidate if current is None or candidate < current else current


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    # Clock skew between GitHub's services can put a finish a moment before the start.
    return max(0.0, (end - start).total_seconds())


def _stamp(when: datetime) -> str:
    # Fixed width (years zero-padded, microseconds always present) so strings sort as times.
    return _utc(when).replace(tzinfo=None).isoformat(timespec="microseconds")
