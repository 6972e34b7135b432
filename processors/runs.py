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
                event_time and event_id decide. `url` and `labels` (per key) come from run events
                only: a stage event's url and labels describe the stage.
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
from datetime import UTC, datetime

from schemas.messages import CiEvent, CiEventKind, RunState, RunStatus, StageState

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


def apply(
    state: RunState | None,
    event: CiEvent,
    ignore_check_suite_apps: Collection[str] = DEFAULT_IGNORED_APPS,
) -> RunState | None:
    """Fold `event` into `state`; None when nothing changed (duplicate, stale or ignored).

    Raises ValueError for an event of another run or a stage event without a stage_id.
    """
    if is_ignored(event, ignore_check_suite_apps):
        return None
    _check(state, event)
    merged = _merge(_copy(state) if state else _blank(event), event)
    if state is not None and _same(merged, state):
        return None
    merged.version = state.version + 1 if state else 1
    return merged


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
    if _STATUS_KEY not in keys and _RANK[state.status] >= _FINISHED_RANK:
        # A state finished outside this module (built by hand, or before merge keys existed)
        # keeps its outcome: it counts as a run event at its updated_at. Stages alone can only
        # explain pending/running, so states made here never take this path.
        keys[_STATUS_KEY] = _key(
            _RANK[state.status], state.updated_at, state.status.value, state.run_id
        )
    return state.model_copy(
        update={
            "stages": [stage.model_copy() for stage in state.stages],
            "labels": dict(state.labels),
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


def _merge(run: RunState, event: CiEvent) -> RunState:
    when = _utc(event.event_time)
    run.first_event_at = min(run.first_event_at, when)
    run.updated_at = max(run.updated_at, when)
    run.created_at = _earliest(run.created_at, event.created_at)
    run.started_at = _earliest(run.started_at, event.started_at)
    _merge_run_fields(run, event)
    if event.kind is CiEventKind.RUN:
        _merge_run_status(run, event)
        _merge_run_url_and_labels(run, event)
    else:
        _merge_stage(run, event)
    _derive(run)
    return run


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
    if _claim(run.merge_keys, _STATUS_KEY, _status_key(event)):
        # The run's own status is decoded from the key in _derive (stages may lift it).
        run.conclusion = event.conclusion
        run.finished_at = _finish_time(event)


def _merge_stage(run: RunState, event: CiEvent) -> None:
    stage_id = event.stage_id or ""
    stage = _find_or_add_stage(run, stage_id, event)
    prefix = f"stage:{stage_id}:"
    keys = run.merge_keys
    stage.started_at = _earliest(stage.started_at, event.started_at)
    stage.updated_at = max(stage.updated_at, _utc(event.event_time))
    status_key = _status_key(event)
    if _claim(keys, prefix + _STATUS_KEY, status_key):
        stage.status = event.status
        stage.conclusion = event.conclusion
        stage.finished_at = _finish_time(event)
    if event.steps and _claim(keys, prefix + "steps", status_key):
        stage.steps = [step.model_copy() for step in event.steps]
    for stage_field, event_field in _STAGE_FIELDS:
        value = getattr(event, event_field)
        if value is not None and _claim(keys, prefix + stage_field, _field_key(event)):
            setattr(stage, stage_field, value)
    stage.duration_s = _duration(stage.started_at, stage.finished_at)


def _find_or_add_stage(run: RunState, stage_id: str, event: CiEvent) -> StageState:
    for stage in run.stages:
        if stage.stage_id == stage_id:
            return stage
    # Placeholders are overwritten by the first event's registers (none is claimed yet).
    stage = StageState(
        stage_id=stage_id,
        name=stage_id,
        status=RunStatus.PENDING,
        updated_at=_utc(event.event_time),
    )
    run.stages.append(stage)
    return stage


def _derive(run: RunState) -> None:
    own = _own_status(run)
    stage_progress = any(_RANK[stage.status] >= _RANK[RunStatus.RUNNING] for stage in run.stages)
    if (own is None or own is RunStatus.PENDING) and stage_progress:
        run.status = RunStatus.RUNNING
    else:
        run.status = own or RunStatus.PENDING
    run.duration_s = _duration(run.started_at or run.created_at, run.finished_at)
    run.stages.sort(key=_stage_order)


def _own_status(run: RunState) -> RunStatus | None:
    """The status of the winning run event, from its order key (see `_status_key`)."""
    key = run.merge_keys.get(_STATUS_KEY)
    return None if key is None else RunStatus(key.split("|", 3)[2])


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


def _utc(when: datetime) -> datetime:
    # One representation per instant, so merged states compare and serialise identically
    # whatever offsets the events used.
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
