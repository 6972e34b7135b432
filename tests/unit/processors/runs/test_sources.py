"""Runs from pods, Jobs, log markers and test batches, joined with CI events
(processors.runs.state).

What a user sees: a bare Job is a run closed by its condition; a Tekton run ends when its pods
have ended plus a quiet period; a run nobody reports on times out in event time, and a late
event reopens it; a CI system's word beats every other source; and any order or duplication
of the inputs gives the same run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.runs.state import Policy, advance, apply, apply_signal, deadlines
from schemas.messages import (
    CiEvent,
    CiEventKind,
    ContainerState,
    K8sEventInfo,
    PodState,
    RunSignal,
    RunState,
    RunStatus,
    SignalKind,
    TestCounts,
)

T0 = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
JOB_RUN = "job:ci/nightly-e2e"
POLICY = Policy(inactivity_timeout_s=600, pod_quiet_period_s=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def signal(signal_id: str, kind: SignalKind, second: float, **fields: Any) -> RunSignal:
    values: dict[str, Any] = {
        "signal_id": signal_id,
        "kind": kind,
        "run_id": JOB_RUN,
        "correlation_key": JOB_RUN,
        "source": "k8s",
        "event_time": at(second),
        "provider": "kubernetes",
        "namespace": "ci",
        "pipeline": "nightly-e2e",
    }
    values.update(fields)
    return RunSignal(**values)


def pod(
    signal_id: str,
    second: float,
    phase: str,
    *,
    uid: str = "pod-1",
    name: str = "nightly-e2e-x2kzq",
    finished: float | None = None,
    reason: str | None = None,
    version: str = "1",
    **fields: Any,
) -> RunSignal:
    state = PodState(
        uid=uid,
        namespace="ci",
        name=name,
        phase=phase,
        resource_version=version,
        created_at=at(0),
        started_at=at(5),
        finished_at=at(finished) if finished is not None else None,
        containers=[
            ContainerState(
                name="e2e",
                state="terminated" if finished is not None else "running",
                reason=reason,
            )
        ],
        updated_at=at(second),
    )
    return signal(signal_id, SignalKind.POD, second, pod=state, **fields)


def job(signal_id: str, second: float, status: RunStatus, **fields: Any) -> RunSignal:
    return signal(signal_id, SignalKind.JOB, second, status=status, started_at=at(5), **fields)


def fold(inputs: list[RunSignal | CiEvent], policy: Policy = POLICY) -> RunState:
    # Stored as bytes between inputs, as the worker's table stores it: a merge that changed
    # its input in place instead of its result would lose the change here, as in the worker.
    stored: bytes | None = None
    for item in inputs:
        state = RunState.from_bytes(stored) if stored is not None else None
        if isinstance(item, CiEvent):
            changed = apply(state, item, policy=policy)
        else:
            changed = apply_signal(state, item, policy)
        if changed is not None:
            stored = changed.to_bytes()
    assert stored is not None
    return RunState.from_bytes(stored)


def test_a_bare_job_is_a_run_closed_by_its_condition() -> None:
    run = fold(
        [
            job("j1", 1, RunStatus.PENDING),
            pod("p1", 2, "Pending"),
            pod("p2", 6, "Running", version="2"),
            job("j2", 6, RunStatus.RUNNING),
            pod("p3", 300, "Succeeded", finished=299, version="3"),
            job("j3", 301, RunStatus.SUCCEEDED, finished_at=at(300)),
        ]
    )
    assert run.status is RunStatus.SUCCEEDED
    assert run.closed_by == "job"
    assert run.provider == "kubernetes" and run.pipeline == "nightly-e2e" and run.namespace == "ci"
    assert run.duration_s == 295.0  # from the pod's start to the Job's completion
    assert [p.phase for p in run.pods] == ["Succeeded"]


def test_a_failed_job_keeps_its_reason_and_the_oom_killed_container() -> None:
    run = fold(
        [
            pod("p1", 6, "Running"),
            pod("p2", 90, "Failed", finished=89, reason="OOMKilled", version="2"),
            job("j1", 91, RunStatus.FAILED, conclusion="BackoffLimitExceeded", finished_at=at(90)),
        ]
    )
    assert run.status is RunStatus.FAILED
    assert run.conclusion == "BackoffLimitExceeded"
    assert run.pods[0].containers[0].reason == "OOMKilled"


def test_pods_only_run_ends_after_the_quiet_period() -> None:
    tekton: dict[str, Any] = {
        "provider": "tekton",
        "run_id": "tekton:ci/build-1",
        "correlation_key": None,
    }
    run = fold(
        [
            pod("a1", 10, "Running", uid="a", name="build-1-fetch-pod", **tekton),
            pod("a2", 40, "Succeeded", finished=39, uid="a", version="2", **tekton),
            pod("b1", 41, "Running", uid="b", name="build-1-test-pod", version="3", **tekton),
            pod("b2", 100, "Succeeded", finished=99, uid="b", version="4", **tekton),
        ]
    )
    assert run.status is RunStatus.RUNNING
    assert advance(run, at(99 + 59), POLICY) is None  # still quiet, maybe another task comes
    closed = advance(run, at(99 + 60), POLICY)
    assert closed is not None
    assert closed.status is RunStatus.SUCCEEDED and closed.closed_by == "pods"
    assert closed.finished_at == at(99)


def test_a_silent_run_times_out_in_event_time_and_a_late_event_reopens_it() -> None:
    run = fold([job("j1", 0, RunStatus.RUNNING), pod("p1", 10, "Running")])
    assert deadlines(run, POLICY) == [at(610)]
    assert advance(run, at(609), POLICY) is None
    timed_out = advance(run, at(700), POLICY)
    assert timed_out is not None
    assert timed_out.status is RunStatus.TIMED_OUT and timed_out.closed_by == "timeout"
    assert timed_out.finished_at == at(610)
    # Log activity at 500 s arrives late: in event time the run was not silent for 600 s yet.
    late = apply_signal(timed_out, signal("act", SignalKind.ACTIVITY, 500, source="logs"), POLICY)
    assert late is not None and late.status is RunStatus.RUNNING
    again = advance(late, at(1100), POLICY)
    assert again is not None and again.status is RunStatus.TIMED_OUT
    assert again.finished_at == at(1100)


def test_an_outcome_reported_after_a_timeout_replaces_it() -> None:
    run = advance(fold([job("j1", 0, RunStatus.RUNNING)]), at(3600), POLICY)
    assert run is not None and run.status is RunStatus.TIMED_OUT
    done = apply_signal(run, job("j2", 3000, RunStatus.FAILED, finished_at=at(2990)), POLICY)
    assert done is not None
    assert done.status is RunStatus.FAILED and done.closed_by == "job"


def test_open_stages_of_a_timed_out_run_time_out_with_it() -> None:
    stage = signal(
        "s1", SignalKind.STAGE, 20, stage_id="marker:seed", stage_name="seed",
        status=RunStatus.RUNNING, started_at=at(20), source="logs",
    )  # fmt: skip
    run = advance(fold([job("j1", 0, RunStatus.RUNNING), stage]), at(5000), POLICY)
    assert run is not None
    assert [(s.name, s.status) for s in run.stages] == [("seed", RunStatus.TIMED_OUT)]


def ci_run(event_id: str, status: RunStatus, second: float, **fields: Any) -> CiEvent:
    values: dict[str, Any] = {
        "event_id": event_id,
        "provider": "generic",
        "event_type": "generic",
        "kind": CiEventKind.RUN,
        "run_id": JOB_RUN,
        "provider_run_id": "nightly#7",
        "pipeline": "Nightly E2E",
        "status": status,
        "event_time": at(second),
    }
    values.update(fields)
    return CiEvent(**values)


def test_the_ci_system_outranks_the_job_for_status_and_run_fields() -> None:
    run = fold(
        [
            job("j1", 301, RunStatus.FAILED, finished_at=at(300)),
            ci_run("c1", RunStatus.RUNNING, 1),
            ci_run("c2", RunStatus.SUCCEEDED, 302, finished_at=at(302)),
        ]
    )
    assert run.status is RunStatus.SUCCEEDED and run.closed_by == "ci"
    assert run.provider == "generic" and run.pipeline == "Nightly E2E"
    assert run.namespace == "ci"  # only Kubernetes knows the namespace


def test_a_test_batch_delivered_twice_counts_once() -> None:
    counts = TestCounts(total=3, passed=2, failed=1)
    batch = signal("t1", SignalKind.TESTS, 50, tests=counts, source="logs")
    other = signal("t2", SignalKind.TESTS, 60, tests=TestCounts(total=1, skipped=1), source="junit")
    run = fold([job("j1", 0, RunStatus.RUNNING), batch, other, batch])
    assert run.tests == TestCounts(total=4, passed=2, failed=1, skipped=1)


def test_log_markers_start_and_end_a_run_and_are_remembered() -> None:
    logs: dict[str, Any] = {"source": "logs", "provider": "kubernetes"}
    run = fold(
        [
            signal(
                "m1", SignalKind.MARKER, 5, marker="suite-start", status=RunStatus.RUNNING, **logs
            ),
            signal("m2", SignalKind.MARKER, 8, marker="db-ready", **logs),
            signal(
                "m3", SignalKind.MARKER, 90, marker="suite-end", status=RunStatus.FAILED, **logs
            ),
        ]
    )
    assert run.status is RunStatus.FAILED and run.closed_by == "marker"
    assert set(run.markers) == {"suite-start", "db-ready", "suite-end"}
    assert run.started_at == at(5) and run.finished_at == at(90)


def test_jenkins_finalized_does_not_stretch_the_build() -> None:
    completed = ci_run("done", RunStatus.SUCCEEDED, 300, finished_at=at(300), started_at=at(0))
    finalized = ci_run("final", RunStatus.SUCCEEDED, 302.5, finished_at=at(302.5))
    for order in ([completed, finalized], [finalized, completed]):
        run = fold(list(order))
        assert run.finished_at == at(300) and run.duration_s == 300.0


# -- any order, any duplication ----------------------------------------------------------------

INPUTS: list[RunSignal | CiEvent] = [
    signal("act0", SignalKind.ACTIVITY, 0.5, source="logs", log_pod="e2e-x"),  # earliest input
    ci_run("c1", RunStatus.RUNNING, 1, started_at=at(1)),
    job("j1", 2, RunStatus.RUNNING),
    pod("p1", 3, "Pending"),
    pod("p2", 6, "Running", version="2"),
    signal("act", SignalKind.ACTIVITY, 60, source="logs", log_pod="e2e-x"),
    signal("act2", SignalKind.ACTIVITY, 40, source="logs", log_pod="e2e-x"),
    signal(
        "s1", SignalKind.STAGE, 20, stage_id="jenkins-stage:Build", stage_name="Build",
        status=RunStatus.RUNNING, started_at=at(20), source="logs",
    ),
    signal(
        "s2", SignalKind.STAGE, 80, stage_id="jenkins-stage:Build", stage_name="Build",
        status=RunStatus.FAILED, started_at=at(20), finished_at=at(80), source="logs",
    ),
    signal("t1", SignalKind.TESTS, 79, tests=TestCounts(total=2, failed=2), source="logs"),
    signal("m1", SignalKind.MARKER, 30, marker="db-ready", source="logs"),
    pod("p3", 85, "Failed", finished=84, reason="Error", version="3"),
    job("j2", 86, RunStatus.FAILED, finished_at=at(85)),
    ci_run("c2", RunStatus.FAILED, 90, finished_at=at(90)),
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(INPUTS), duplicates=st.lists(st.sampled_from(INPUTS), max_size=6))
def test_any_order_and_duplication_gives_the_same_run(
    order: list[RunSignal | CiEvent], duplicates: list[RunSignal | CiEvent]
) -> None:
    expected = fold(INPUTS).model_dump(exclude={"version"})
    mixed = list(order)
    for i, extra in enumerate(duplicates):
        mixed.insert((i * 7) % (len(mixed) + 1), extra)
    assert fold(mixed).model_dump(exclude={"version"}) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(INPUTS[:9]), check_at=st.integers(min_value=0, max_value=8))
def test_when_time_is_checked_does_not_change_the_outcome(
    order: list[RunSignal | CiEvent], check_at: int
) -> None:
    """A watermark passing mid-way (and timing the run out) is undone by later input."""
    reference = advance(fold(INPUTS[:9]), at(5000), POLICY)
    assert reference is not None and reference.status is RunStatus.TIMED_OUT
    state: RunState | None = None
    for i, item in enumerate(order):
        if isinstance(item, CiEvent):
            state = apply(state, item, policy=POLICY) or state
        else:
            state = apply_signal(state, item, POLICY) or state
        if i == check_at and state is not None:
            state = advance(state, at(5000), POLICY) or state
    assert state is not None
    final = advance(state, at(5000), POLICY) or state
    assert final.model_dump(exclude={"version"}) == reference.model_dump(exclude={"version"})


def test_a_repeating_event_is_kept_once_with_its_latest_count_in_any_order() -> None:
    def event(signal_id: str, count: int, last: float) -> RunSignal:
        info = K8sEventInfo(
            uid="ev-1", type="Warning", reason="BackOff", count=count,
            first_seen=at(10), last_seen=at(last), involved_kind="Pod", involved_name="e2e-x",
        )  # fmt: skip
        return signal(signal_id, SignalKind.K8S_EVENT, last, k8s_event=info)

    first, later = event("e1", 1, 10), event("e2", 4, 70)
    for order in ([first, later], [later, first], [later, first, later]):
        run = fold([job("j1", 0, RunStatus.RUNNING), *order])
        assert [(e.reason, e.count) for e in run.k8s_events] == [("BackOff", 4)]
