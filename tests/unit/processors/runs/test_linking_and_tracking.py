"""Joining runner pods to CI runs (processors.runs.linking) and the tracker
(processors.runs.tracking).

A user notices: an ARC pod's events that arrive before GitHub names its runner still end up on
the run; a JUnit/log test batch is published and counted once; structure anomalies are reported
once; event time (not the wall clock) decides timeouts, except when the worker is idle live.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.runs.linking import LinkState, bind_signal, link
from processors.runs.source_signals import REPLAY, watermark_signal
from processors.runs.state import Policy
from processors.runs.tracking import RunTracker, TrackerConfig
from runtime.config import StructureRule
from schemas.messages import (
    CiEvent,
    CiEventKind,
    PodState,
    RunSignal,
    RunState,
    RunStatus,
    SignalKind,
    TestCounts,
    TestResult,
)
from schemas.messages import (
    TestStatus as CaseStatus,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RUN = "github:acme/shop:555:1"
KEY = "github-runner:arc-runner-set-x7k2p-runner-9zqvd"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pod_signal(signal_id: str, second: float, phase: str) -> RunSignal:
    pod = PodState(uid="u1", name=KEY.split(":", 1)[1], phase=phase, updated_at=at(second))
    return RunSignal(
        signal_id=signal_id,
        kind=SignalKind.POD,
        correlation_key=KEY,
        source="k8s",
        event_time=at(second),
        pod=pod,
    )


def test_signals_wait_for_the_bind_and_then_go_to_the_run() -> None:
    state = LinkState(key=KEY)
    first = link(state, pod_signal("p1", 1, "Pending"), max_buffer=10)
    assert first.forward == [] and first.changed
    again = link(first.state, pod_signal("p1", 1, "Pending"), max_buffer=10)
    assert not again.changed  # a redelivery is held once
    bound = link(first.state, bind_signal(KEY, RUN, "delivery-1", at(3)), max_buffer=10)
    assert [(s.signal_id, s.run_id) for s in bound.forward] == [("p1", RUN)]
    later = link(bound.state, pod_signal("p2", 9, "Running"), max_buffer=10)
    assert [(s.signal_id, s.run_id) for s in later.forward] == [("p2", RUN)]


def test_a_full_buffer_hands_the_oldest_signals_over_instead_of_growing() -> None:
    state = LinkState(key=KEY)
    for i in range(3):
        state = link(state, pod_signal(f"p{i}", i, "Running"), max_buffer=2).state
    outcome = link(state, pod_signal("p3", 3, "Running"), max_buffer=2)
    assert [s.signal_id for s in outcome.overflow] == ["p1"]  # p0 went the same way before
    assert [s.signal_id for s in outcome.state.pending] == ["p2", "p3"]


def test_the_newest_bind_wins_in_any_order() -> None:
    older = bind_signal(KEY, "github:acme/shop:1:1", "d1", at(10))
    newer = bind_signal(KEY, RUN, "d2", at(20))
    for order in ([older, newer], [newer, older]):
        state = LinkState(key=KEY)
        for bind in order:
            state = link(state, bind, max_buffer=5).state
        assert state.run_id == RUN


def job_event(event_id: str, status: RunStatus, second: float, runner: str | None) -> bytes:
    return CiEvent(
        event_id=event_id,
        provider="github",
        event_type="workflow_job",
        kind=CiEventKind.STAGE,
        run_id=RUN,
        provider_run_id="555",
        stage_id="job-1",
        stage_name="test",
        runner_name=runner,
        status=status,
        started_at=at(0) if status is not RunStatus.PENDING else None,
        event_time=at(second),
    ).to_bytes()


class Table:
    """The agent's table, as the tracker sees it through `load`."""

    def __init__(self) -> None:
        self.states: dict[str, RunState] = {}

    def load(self, run_id: str) -> RunState | None:
        return self.states.get(run_id)

    def store(self, states: list[RunState]) -> None:
        self.states.update((s.run_id, s) for s in states)


def feed(tracker: RunTracker, table: Table, kind: str, raw: bytes) -> Any:
    # Keyed as the webhook receiver keys a CI event: by its run id.
    key = CiEvent.model_validate_json(raw).run_id.encode() if kind == "ci" else None
    outcome = tracker.on_message(kind, raw, 0, table.load, key)
    assert outcome.error is None, outcome.error
    table.store(outcome.states)
    return outcome


def test_a_job_that_names_its_runner_binds_the_runner_pod_key_once() -> None:
    tracker, table = RunTracker(TrackerConfig()), Table()
    queued = feed(tracker, table, "ci", job_event("d1", RunStatus.PENDING, 0, None))
    assert queued.binds == []
    running = feed(tracker, table, "ci", job_event("d2", RunStatus.RUNNING, 5, KEY.split(":")[1]))
    assert [(b.correlation_key, b.bind_run_id) for b in running.binds] == [(KEY, RUN)]
    done = feed(tracker, table, "ci", job_event("d3", RunStatus.SUCCEEDED, 60, KEY.split(":")[1]))
    assert done.binds == []
    assert table.states[RUN].correlation_keys == [KEY]


def test_log_parsed_tests_are_published_with_the_run_id_once() -> None:
    tracker, table = RunTracker(TrackerConfig()), Table()
    result = TestResult(
        run_id="", name="test_pay", status=CaseStatus.FAILED, source="pytest-log", event_time=at(9)
    )
    batch = RunSignal(
        signal_id="tests-1",
        kind=SignalKind.TESTS,
        run_id=RUN,
        source="logs",
        event_time=at(9),
        tests=TestCounts(total=1, failed=1),
        test_results=[result],
    ).to_bytes()
    first = feed(tracker, table, "signal", batch)
    assert [(t.run_id, t.name) for t in first.tests] == [(RUN, "test_pay")]
    assert feed(tracker, table, "signal", batch).tests == []  # redelivered: not again
    assert table.states[RUN].tests.failed == 1


def test_invalid_input_is_an_error_not_a_crash() -> None:
    tracker, table = RunTracker(TrackerConfig()), Table()
    assert tracker.on_message("signal", b"{}", 0, table.load).error_type == "ValidationError"
    assert tracker.on_message("ci", b"nope", 0, table.load).error_type == "ValidationError"


def test_a_ci_event_not_keyed_by_its_run_id_is_refused_and_changes_nothing() -> None:
    tracker, table = RunTracker(TrackerConfig()), Table()
    raw = job_event("d1", RunStatus.RUNNING, 0, None)
    run_id = CiEvent.model_validate_json(raw).run_id
    for key in (b"some/other/run", None):
        outcome = tracker.on_message("ci", raw, 0, table.load, key)
        assert outcome.error_type == "KeyMismatch"
        assert f"here {run_id!r}" in (outcome.error or "")
        assert outcome.states == []
    assert feed(tracker, table, "ci", raw).states[0].run_id == run_id


RULE = StructureRule(name="e2e", max_stage_duration_s={"test": 30}, required_stages=["deploy"])


def other_run(event_id: str, second: float) -> bytes:
    raw = job_event(event_id, RunStatus.RUNNING, second, None)
    return raw.replace(RUN.encode(), b"github:x/y:1:1").replace(b'"test"', b'"build"')


def test_event_time_minus_lateness_decides_and_anomalies_are_reported_once() -> None:
    config = TrackerConfig(
        policy=Policy(inactivity_timeout_s=120),
        rules=(RULE,),
        allowed_lateness_s=10,
        settle_s=5,
        idle_watermark_s=None,
    )
    tracker, table = RunTracker(config), Table()

    def due() -> list[tuple[str, str, str]]:
        outcome = tracker.due(0, table.load)
        table.store(outcome.states)
        return [(a.run_id, a.type, a.subject) for a in outcome.anomalies]

    feed(tracker, table, "ci", job_event("d1", RunStatus.RUNNING, 0, "r1"))
    # Another run's input moves event time: 35 s - 10 s lateness = 25 s, the stage is fine.
    feed(tracker, table, "ci", other_run("o1", 35))
    assert due() == []
    feed(tracker, table, "ci", other_run("o2", 45))  # 35 s > 30 s while still running
    assert due() == [(RUN, "stage_too_long", "test")]
    assert due() == []
    assert table.states[RUN].status is RunStatus.RUNNING
    # Event time passes the inactivity deadline (120 s) and the settle time after it.
    feed(tracker, table, "ci", other_run("o3", 200))
    assert due() == [(RUN, "missing_stage", "deploy")]
    assert table.states[RUN].status is RunStatus.TIMED_OUT
    # End of input: the other run times out too; nothing about RUN is reported again.
    final = watermark_signal(at(400), final=True).to_bytes()
    found = tracker.on_message("signal", final, 0, table.load).anomalies
    assert [(a.run_id, a.type, a.subject) for a in found] == [
        ("github:x/y:1:1", "missing_stage", "deploy")
    ]


@pytest.mark.parametrize("idle", [True, False])
def test_the_wall_clock_counts_only_while_the_worker_is_idle(idle: bool) -> None:
    now = [0.0]
    config = TrackerConfig(policy=Policy(inactivity_timeout_s=60), idle_watermark_s=10)
    tracker, table = RunTracker(config, clock=lambda: now[0]), Table()
    feed(tracker, table, "ci", job_event("d1", RunStatus.RUNNING, 0, None))
    now[0] = 30.0 if idle else 5.0
    tick = watermark_signal(at(3600), final=False).to_bytes()
    table.store(tracker.on_message("signal", tick, 0, table.load).states)
    expected = RunStatus.TIMED_OUT if idle else RunStatus.RUNNING
    assert table.states[RUN].status is expected


def test_a_partition_back_from_another_worker_has_its_runs_checked_as_time_passes() -> None:
    # Issue 17: a worker that had a partition, lost it in a rebalance and got it back did not
    # know the runs the other worker had opened meanwhile, so passing time never re-checked
    # them (a hung run's log silence went unreported in the scale-out test).
    config = TrackerConfig(policy=Policy(inactivity_timeout_s=120), idle_watermark_s=None)
    mine, table = RunTracker(config), Table()
    mine.rebuild(0, [])  # it owned partition 0 while nothing was open there
    mine.forget(0)  # revoked
    other = RunTracker(config)  # the partition's owner meanwhile opens a run
    other.rebuild(0, [])
    feed(other, table, "ci", job_event("d1", RunStatus.RUNNING, 0, "r1"))
    # Back to `mine` (the agent rebuilds before the partition's first message).
    assert mine.needs_rebuild(0)
    mine.rebuild(0, table.states.values())
    tick = watermark_signal(at(400), final=False, source=REPLAY).to_bytes()
    outcome = mine.on_message("signal", tick, 0, table.load)
    assert [(s.run_id, s.status) for s in outcome.states] == [(RUN, RunStatus.TIMED_OUT)]
