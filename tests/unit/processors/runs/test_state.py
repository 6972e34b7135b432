"""The run state machine: lifecycle, stages, duplicates, ignored apps, and order-insensitivity."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.runs.state import apply
from producers.webhooks.github import normalize
from schemas.messages import CiEvent, CiEventKind, RunState, RunStatus, StepInfo
from tests.support.paths import DATA

CORPUS = DATA / "github-webhooks"
RUN_ID = "github:acme/shop:100:1"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run_event(event_id: str, status: RunStatus, minute: float, **fields: Any) -> CiEvent:
    values: dict[str, Any] = {
        "event_id": event_id,
        "provider": "github",
        "event_type": "workflow_run",
        "kind": CiEventKind.RUN,
        "run_id": RUN_ID,
        "provider_run_id": "100",
        "status": status,
        "event_time": at(minute),
        "received_at": at(minute),
    }
    values.update(fields)
    return CiEvent(**values)


def stage_event(
    event_id: str, stage_id: str, status: RunStatus, minute: float, **fields: Any
) -> CiEvent:
    values: dict[str, Any] = {
        "event_type": "workflow_job",
        "kind": CiEventKind.STAGE,
        "stage_id": stage_id,
    }
    values.update(fields)
    return run_event(event_id, status, minute, **values)


def fold(events: Iterable[CiEvent], state: RunState | None = None) -> RunState | None:
    for event in events:
        state = apply(state, event) or state
    return state


def comparable(state: RunState | None) -> dict[str, Any]:
    assert state is not None
    return state.model_dump(mode="json", exclude={"version"})


def requested(minute: float = 0) -> CiEvent:
    return run_event(
        "d-requested",
        RunStatus.PENDING,
        minute,
        raw_status="queued",
        action="requested",
        created_at=at(0),
        repository="acme/shop",
        pipeline="CI",
        branch="main",
        commit_sha="abc123",
        trigger="push",
        actor="alice",
        url="https://example.test/runs/100",
    )


def completed(conclusion: str, status: RunStatus, minute: float = 10) -> CiEvent:
    return run_event(
        f"d-completed-{conclusion}",
        status,
        minute,
        raw_status="completed",
        conclusion=conclusion,
        action="completed",
        created_at=at(0),
        started_at=at(1),
        finished_at=at(minute),
        repository="acme/shop",
        pipeline="CI",
        branch="main",
        commit_sha="abc123",
        trigger="push",
        actor="alice",
        url="https://example.test/runs/100",
    )


# --- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conclusion", "status"),
    [
        ("success", RunStatus.SUCCEEDED),
        ("failure", RunStatus.FAILED),
        ("cancelled", RunStatus.CANCELLED),
        ("timed_out", RunStatus.TIMED_OUT),
    ],
)
def test_requested_then_completed(conclusion: str, status: RunStatus) -> None:
    first = apply(None, requested())
    assert first is not None
    assert (first.status, first.version, first.finished_at, first.duration_s) == (
        RunStatus.PENDING,
        1,
        None,
        None,
    )
    assert (first.repository, first.pipeline, first.branch, first.actor) == (
        "acme/shop",
        "CI",
        "main",
        "alice",
    )
    assert first.created_at == first.first_event_at == first.updated_at == at(0)

    done = apply(first, completed(conclusion, status))
    assert done is not None
    assert (done.status, done.conclusion, done.version) == (status, conclusion, 2)
    assert (done.started_at, done.finished_at) == (at(1), at(10))
    assert done.duration_s == 9 * 60
    assert (done.first_event_at, done.updated_at) == (at(0), at(10))


def test_completed_before_requested_ends_in_the_same_state() -> None:
    in_order = fold([requested(), completed("success", RunStatus.SUCCEEDED)])
    done = apply(None, completed("success", RunStatus.SUCCEEDED))
    assert done is not None and done.status is RunStatus.SUCCEEDED
    late = apply(done, requested())
    # The late event still tells us something (when the run's events began) ...
    assert late is not None and late.version == 2
    # ... but cannot move the run back to pending.
    assert late.status is RunStatus.SUCCEEDED
    assert comparable(late) == comparable(in_order)


def test_stale_event_that_adds_nothing_changes_nothing() -> None:
    state = fold([requested(), completed("success", RunStatus.SUCCEEDED)])
    running_late = run_event(
        "d-running", RunStatus.RUNNING, 1, started_at=at(1), repository="acme/shop"
    )
    assert apply(state, running_late) is None


def test_duplicate_delivery_changes_nothing() -> None:
    state = apply(None, requested())
    assert state is not None
    assert apply(state, requested()) is None
    done = apply(state, completed("failure", RunStatus.FAILED))
    assert done is not None
    assert apply(done, completed("failure", RunStatus.FAILED)) is None


def test_higher_status_wins_even_when_older() -> None:
    state = fold(
        [
            run_event("a", RunStatus.RUNNING, 5),
            run_event("b", RunStatus.FAILED, 3, conclusion="failure", finished_at=at(3)),
        ]
    )
    assert state is not None
    assert (state.status, state.conclusion, state.finished_at) == (
        RunStatus.FAILED,
        "failure",
        at(3),
    )


def test_only_a_finished_status_carries_a_finish_time() -> None:
    running = run_event("r", RunStatus.RUNNING, 5, started_at=at(1), finished_at=at(5))
    state = apply(None, running)
    assert state is not None
    assert (state.finished_at, state.duration_s) == (None, None)
    done = apply(state, run_event("d", RunStatus.CANCELLED, 6, finished_at=at(6)))
    assert done is not None
    assert (done.finished_at, done.duration_s) == (at(6), 300.0)


def test_definite_outcome_outranks_unknown_in_either_order() -> None:
    unknown = run_event("u", RunStatus.UNKNOWN, 20, raw_status="completed")
    success = run_event("s", RunStatus.SUCCEEDED, 10, conclusion="success", finished_at=at(10))
    one, other = fold([unknown, success]), fold([success, unknown])
    assert one is not None and one.status is RunStatus.SUCCEEDED
    assert comparable(one) == comparable(other)


def test_same_instant_in_other_offsets_gives_identical_state() -> None:
    plus_two = timezone(timedelta(hours=2))
    utc = run_event("a", RunStatus.RUNNING, 0, created_at=at(0), started_at=at(0))
    shifted = run_event(
        "a",
        RunStatus.RUNNING,
        0,
        event_time=at(0).astimezone(plus_two),
        created_at=at(0).astimezone(plus_two),
        started_at=at(0).astimezone(plus_two),
    )
    assert comparable(apply(None, utc)) == comparable(apply(None, shifted))


def test_state_finished_elsewhere_keeps_its_outcome() -> None:
    # e.g. a snapshot written without merge keys: a late running event must not reopen it.
    finished = RunState(
        run_id=RUN_ID,
        provider="github",
        provider_run_id="100",
        status=RunStatus.TIMED_OUT,
        finished_at=at(30),
        first_event_at=at(0),
        updated_at=at(30),
        version=4,
    )
    state = apply(finished, run_event("late", RunStatus.RUNNING, 5, branch="main"))
    assert state is not None
    assert (state.status, state.finished_at, state.branch, state.version) == (
        RunStatus.TIMED_OUT,
        at(30),
        "main",
        5,
    )


def test_event_of_another_run_is_rejected() -> None:
    state = apply(None, requested())
    with pytest.raises(ValueError, match="run"):
        apply(state, run_event("x", RunStatus.RUNNING, 1, run_id="github:acme/shop:999:1"))


def test_stage_event_without_stage_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="stage_id"):
        apply(None, stage_event("x", "", RunStatus.RUNNING, 1))


# --- ignored check suites ----------------------------------------------------------------------


def check_event(event_type: str, app: str | None) -> CiEvent:
    kind = CiEventKind.RUN if event_type == "check_suite" else CiEventKind.STAGE
    stage_id = "77" if kind is CiEventKind.STAGE else None
    return run_event(
        "c",
        RunStatus.RUNNING,
        1,
        event_type=event_type,
        kind=kind,
        stage_id=stage_id,
        app=app,
        run_id="github:acme/shop:check_suite:5",
    )


@pytest.mark.parametrize("event_type", ["check_suite", "check_run"])
def test_check_events_of_ignored_apps_change_nothing(event_type: str) -> None:
    assert apply(None, check_event(event_type, "github-actions")) is None
    assert apply(None, check_event(event_type, "ci-bot"), ["ci-bot"]) is None
    assert apply(None, check_event(event_type, "ci-bot")) is not None
    assert apply(None, check_event(event_type, "github-actions"), frozenset()) is not None


def test_ignore_list_applies_only_to_check_events() -> None:
    assert apply(None, run_event("w", RunStatus.RUNNING, 1, app="github-actions")) is not None


# --- stages ------------------------------------------------------------------------------------


def test_stage_event_opens_the_run_with_run_fields_from_the_stage() -> None:
    state = apply(
        None,
        stage_event(
            "j1",
            "11",
            RunStatus.PENDING,
            0,
            stage_name="build",
            repository="acme/shop",
            pipeline="CI",
            branch="main",
            actor="alice",
            created_at=at(0),
            url="https://example.test/jobs/11",
        ),
    )
    assert state is not None
    assert (state.status, state.repository, state.pipeline, state.branch, state.actor) == (
        RunStatus.PENDING,
        "acme/shop",
        "CI",
        "main",
        "alice",
    )
    # A job's URL is the job's, not the run's.
    assert state.url is None
    assert [(s.stage_id, s.name, s.status, s.url) for s in state.stages] == [
        ("11", "build", RunStatus.PENDING, "https://example.test/jobs/11")
    ]


def test_running_stage_lifts_a_pending_run_to_running() -> None:
    state = fold([requested(), stage_event("j1", "11", RunStatus.RUNNING, 2, started_at=at(2))])
    assert state is not None and state.status is RunStatus.RUNNING
    state = fold([stage_event("j2", "11", RunStatus.SUCCEEDED, 4, finished_at=at(4))], state)
    assert state is not None and state.status is RunStatus.RUNNING  # the run may have more jobs
    done = fold([completed("success", RunStatus.SUCCEEDED)], state)
    assert done is not None and done.status is RunStatus.SUCCEEDED


def test_run_events_outrank_stage_events_for_run_fields() -> None:
    job = stage_event("j", "11", RunStatus.RUNNING, 9, actor="bot[bot]", pipeline="CI (job)")
    for events in ([requested(), job], [job, requested()]):
        state = fold(events)
        assert state is not None
        assert (state.actor, state.pipeline) == ("alice", "CI")


def test_stages_merge_by_id_and_keep_the_most_progressed_steps() -> None:
    step = StepInfo(name="Set up job", number=1, status=RunStatus.RUNNING)
    done_steps = [
        StepInfo(name="Set up job", number=1, status=RunStatus.SUCCEEDED, conclusion="success"),
        StepInfo(name="Test", number=2, status=RunStatus.FAILED, conclusion="failure"),
    ]
    events = [
        stage_event("a1", "11", RunStatus.PENDING, 0, stage_name="test"),
        stage_event(
            "a2",
            "11",
            RunStatus.RUNNING,
            2,
            stage_name="test",
            runner_name="runner-1",
            started_at=at(2),
            steps=[step],
        ),
        stage_event(
            "a3",
            "11",
            RunStatus.FAILED,
            7,
            stage_name="test",
            conclusion="failure",
            started_at=at(2),
            finished_at=at(7),
            steps=done_steps,
        ),
        stage_event("b1", "22", RunStatus.RUNNING, 1, stage_name="lint", started_at=at(1)),
        stage_event("c1", "05", RunStatus.PENDING, 3, stage_name="deploy"),
    ]
    forward, backward = fold(events), fold(reversed(events))
    assert forward is not None
    assert comparable(forward) == comparable(backward)
    # Sorted by start time, stages not started yet last.
    assert [s.stage_id for s in forward.stages] == ["22", "11", "05"]
    test = forward.stages[1]
    assert (test.name, test.status, test.conclusion, test.runner_name) == (
        "test",
        RunStatus.FAILED,
        "failure",
        "runner-1",
    )
    assert (test.started_at, test.finished_at, test.duration_s) == (at(2), at(7), 300.0)
    assert test.steps == done_steps
    assert test.updated_at == at(7)
    assert forward.started_at == at(1)
    assert forward.status is RunStatus.RUNNING


def test_state_survives_serialisation_between_events() -> None:
    events = [requested(), stage_event("j", "11", RunStatus.RUNNING, 2, started_at=at(2))]
    state = apply(None, events[0])
    assert state is not None
    restored = RunState.from_bytes(state.to_bytes())
    assert comparable(apply(restored, events[1])) == comparable(fold(events))
    assert apply(RunState.from_bytes(fold(events).to_bytes()), events[1]) is None  # type: ignore[union-attr]


# --- the real corpus ---------------------------------------------------------------------------


def corpus_event(event: str, name: str, delivery: str) -> CiEvent:
    payload = json.loads((CORPUS / event / name).read_text())
    result = normalize(event, delivery, payload, T0)
    assert isinstance(result, CiEvent)
    return result


def test_corpus_workflow_run_requested_then_completed_succeeds() -> None:
    events = [
        corpus_event("workflow_run", "requested.payload.json", "d-1"),
        corpus_event("workflow_run", "completed.payload.json", "d-2"),
    ]
    state = fold(events)
    assert state is not None
    assert (state.run_id, state.status, state.conclusion, state.version) == (
        "github:octo-org/octo-repo:289782451:1",
        RunStatus.SUCCEEDED,
        "success",
        2,
    )
    assert state.pipeline == "test"
    assert state.duration_s == 0.0  # the example run "finished" the moment it started
    assert comparable(fold(reversed(events))) == comparable(state)


def test_corpus_jobs_become_stages_of_their_run() -> None:
    events = [
        corpus_event("workflow_job", "queued.payload.json", "d-1"),
        corpus_event("workflow_job", "in_progress.payload.json", "d-2"),
        corpus_event("workflow_job", "completed.success.with-organization.payload.json", "d-3"),
    ]
    state = fold(events)
    assert state is not None
    assert state.run_id == "github:Codertocat/Hello-World:2202229078:1"
    assert state.status is RunStatus.RUNNING
    # The examples reuse one job id across different jobs and dates: the status and steps come
    # from the most progressed event (completed), the name from the newest one (in_progress).
    [stage] = state.stages
    assert (stage.stage_id, stage.status, stage.conclusion) == (
        "289782451",
        RunStatus.SUCCEEDED,
        "success",
    )
    assert stage.name == "Analyze (javascript)"
    assert len(stage.steps) == 8


def test_corpus_github_actions_check_suite_is_ignored() -> None:
    event = corpus_event("check_suite", "completed.1.payload.json", "d-1")
    assert apply(None, event) is None
    other_app = corpus_event("check_suite", "completed.payload.json", "d-2")
    assert apply(None, other_app) is not None


# --- properties: any order, any duplicates, same state -----------------------------------------

STAGE_IDS = ("job-a", "job-b", "job-c")
OFFSETS = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)))


def maybe(*values: Any) -> st.SearchStrategy[Any]:
    return st.none() | st.sampled_from(values)


# Few distinct minutes so that ties in event time are common; offsets vary the representation.
TIMES = st.builds(
    lambda minute, offset: at(minute).astimezone(offset),
    st.integers(0, 5),
    st.sampled_from(OFFSETS),
)
STATUSES = st.sampled_from(list(RunStatus))
STEPS = st.lists(
    st.builds(StepInfo, name=st.sampled_from(["checkout", "test"]), status=STATUSES), max_size=2
)
# Strategies are built once here: hypothesis validates each new strategy object, which would
# otherwise dominate the run time.
COMMON_FIELDS = st.fixed_dictionaries(
    {
        "event_time": TIMES,
        "status": STATUSES,
        "created_at": st.none() | TIMES,
        "started_at": st.none() | TIMES,
        "finished_at": st.none() | TIMES,
        "conclusion": maybe("success", "failure", "cancelled"),
        "repository": maybe("acme/shop", "acme/shop2"),
        "pipeline": maybe("CI", "Nightly"),
        "branch": maybe("main", "dev"),
        "commit_sha": maybe("aaa", "bbb"),
        "trigger": maybe("push", "schedule"),
        "actor": maybe("alice", "bob"),
        "url": maybe("https://x.test/1", "https://x.test/2"),
        "labels": st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from("xy")),
    }
)
STAGE_FIELDS = st.fixed_dictionaries(
    {
        "stage_id": st.sampled_from(STAGE_IDS),
        "stage_name": maybe("build", "test"),
        "runner_name": maybe("r1", "r2"),
        "steps": STEPS,
    }
)
KINDS = st.sampled_from(["run", "stage", "stage", "ignored"])


@st.composite
def events_of_one_run(draw: st.DrawFn) -> list[CiEvent]:
    count = draw(st.integers(1, 10))
    return [
        one_event(f"e{index}", draw(KINDS), draw(COMMON_FIELDS), draw(STAGE_FIELDS))
        for index in range(count)
    ]


def one_event(
    event_id: str, kind: str, fields: dict[str, Any], stage_fields: dict[str, Any]
) -> CiEvent:
    if kind == "run":
        return run_event(event_id, minute=0, **fields)
    if kind == "ignored":
        fields = {**fields, "event_type": "check_run", "app": "github-actions"}
    return stage_event(event_id, minute=0, **fields, **stage_fields)


def fold_checking_versions(events: Iterable[CiEvent], roundtrip: bool = False) -> RunState:
    state: RunState | None = None
    for event in events:
        new = apply(state, event)
        if new is None:
            continue
        assert new.version == (state.version + 1 if state else 1)
        state = RunState.from_bytes(new.to_bytes()) if roundtrip else new
    assert state is not None
    return state


def _is_ignored(event: CiEvent) -> bool:
    return event.app == "github-actions"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=events_of_one_run())
def test_any_order_with_duplicates_gives_the_same_state(
    data: st.DataObject, events: list[CiEvent]
) -> None:
    if all(_is_ignored(event) for event in events):
        assert fold(events) is None
        return
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    shuffled = data.draw(st.permutations(events + duplicates))
    reference = fold_checking_versions(sorted(events, key=lambda event: event.event_id))
    final = fold_checking_versions(shuffled, roundtrip=data.draw(st.booleans()))
    assert comparable(final) == comparable(reference)
    # Applying anything already seen again is a no-op.
    assert all(apply(final, event) is None for event in events)
