"""Retention of ended runs in the tracker (issue 17: the worker never forgot a run).

A user notices: a worker that runs for weeks holds only the runs that are live or ended within
`tracking.retain_ended_s`; input that comes for a forgotten run goes to the DLQ with a reason
instead of opening a partial run that would replace the final one on `sentinel.runs`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processors.runs.linking import LinkState, bind_signal, link
from processors.runs.log_signals import LogSignals
from processors.runs.source_signals import watermark_signal
from processors.runs.tracking import LATE_FOR_RETIRED, Outcome, RunTracker, TrackerConfig
from runtime.config import TrackingConfig
from schemas.messages import (
    CiEvent,
    CiEventKind,
    LogLine,
    RunSignal,
    RunState,
    RunStatus,
    SignalKind,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DONE = "generic:nightly#1"
CLOCK = "generic:clock#1"  # another run whose input moves event time on
SETTLE, RETAIN = 10.0, 100.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run_event(run_id: str, event_id: str, status: RunStatus, second: float) -> bytes:
    finished = at(second) if status.terminal else None
    return CiEvent(
        event_id=event_id,
        provider="generic",
        event_type="run",
        kind=CiEventKind.RUN,
        run_id=run_id,
        provider_run_id=run_id,
        pipeline="nightly",
        status=status,
        event_time=at(second),
        finished_at=finished,
    ).to_bytes()


class Table:
    """The run-states table as the agent keeps it: states stored, retired runs deleted."""

    def __init__(self) -> None:
        self.states: dict[str, RunState] = {}

    def load(self, run_id: str) -> RunState | None:
        return self.states.get(run_id)

    def apply(self, outcome: Outcome) -> Outcome:
        self.states.update((s.run_id, s) for s in outcome.states)
        for run_id in outcome.retired:
            del self.states[run_id]
        return outcome


def tracker() -> RunTracker:
    config = TrackerConfig(
        settle_s=SETTLE, retain_ended_s=RETAIN, allowed_lateness_s=0, idle_watermark_s=None
    )
    return RunTracker(config)


def ci(tr: RunTracker, table: Table, raw: bytes) -> Outcome:
    key = CiEvent.model_validate_json(raw).run_id.encode()
    return table.apply(tr.on_message("ci", raw, 0, table.load, key))


def time_reaches(tr: RunTracker, table: Table, second: float) -> Outcome:
    """Input of another run at `second` (lateness 0: the watermark), then a tick."""
    ci(tr, table, run_event(CLOCK, f"clock-{second}", RunStatus.RUNNING, second))
    tick = watermark_signal(at(second), final=False).to_bytes()
    return table.apply(tr.on_message("signal", tick, 0, table.load))


def ended_run(tr: RunTracker, table: Table) -> None:
    ci(tr, table, run_event(DONE, "d1", RunStatus.RUNNING, 0))
    ci(tr, table, run_event(DONE, "d2", RunStatus.SUCCEEDED, 20))


def test_a_settled_run_is_retired_after_end_settle_and_retain_not_before() -> None:
    tr, table = tracker(), Table()
    ended_run(tr, table)
    settled = time_reaches(tr, table, 20 + SETTLE)
    assert [s.run_id for s in settled.finished] == [DONE]  # its history entry is due now
    assert settled.retired == []
    assert time_reaches(tr, table, 20 + SETTLE + RETAIN - 1).retired == []
    assert DONE in table.states
    assert time_reaches(tr, table, 20 + SETTLE + RETAIN).retired == [DONE]
    assert DONE not in table.states
    assert time_reaches(tr, table, 20 + SETTLE + RETAIN + 50).retired == []  # once


def test_a_run_that_has_not_settled_is_never_retired() -> None:
    tr, table = tracker(), Table()
    ci(tr, table, run_event(DONE, "d1", RunStatus.RUNNING, 0))
    # Still running (inactivity timeout is an hour): far past end + settle + retain of nothing.
    assert time_reaches(tr, table, 1000).retired == []
    assert table.states[DONE].status is RunStatus.RUNNING


def test_input_for_a_retired_run_is_dead_lettered_and_opens_no_run() -> None:
    tr, table = tracker(), Table()
    ended_run(tr, table)
    assert time_reaches(tr, table, 20 + SETTLE + RETAIN + 5).retired == [DONE]
    # The CI system sends the completion again (a redelivery): older than watermark - retain.
    again = ci(tr, table, run_event(DONE, "d2", RunStatus.SUCCEEDED, 20))
    assert again.error_type == LATE_FOR_RETIRED
    assert "tracking.retain_ended_s=100" in (again.error or "")
    assert again.states == [] and DONE not in table.states
    pod_activity = RunSignal(
        signal_id="act-1",
        kind=SignalKind.ACTIVITY,
        run_id=DONE,
        source="logs",
        event_time=at(15),
        log_pod="nightly-pod",
    )
    late = table.apply(tr.on_message("signal", pod_activity.to_bytes(), 0, table.load))
    assert late.error_type == LATE_FOR_RETIRED and late.states == [] and late.log_activity == []
    line = LogLine(
        namespace="ci",
        pod="nightly-pod",
        container="main",
        line="ERROR boom",
        event_time=at(16),
        received_at=at(16),
        run_id=DONE,
    )
    log = RunSignal(
        signal_id="log-1",
        kind=SignalKind.LOG,
        run_id=DONE,
        source="logs",
        event_time=at(16),
        log_line=line,
    )
    late_log = tr.on_message("signal", log.to_bytes(), 0, table.load)
    assert late_log.error_type == LATE_FOR_RETIRED and late_log.log_lines == []
    assert DONE not in table.states


def test_a_new_run_within_retention_of_the_watermark_is_tracked() -> None:
    tr, table = tracker(), Table()
    time_reaches(tr, table, 500)
    # 99 s behind the watermark: late, but within retain_ended_s, so it may be a live run.
    fresh = ci(tr, table, run_event("generic:late#7", "l1", RunStatus.RUNNING, 500 - RETAIN + 1))
    assert fresh.error is None and table.states["generic:late#7"].status is RunStatus.RUNNING


def test_a_run_with_input_after_it_settled_is_kept_until_retain_after_that_input() -> None:
    tr, table = tracker(), Table()
    ended_run(tr, table)
    assert time_reaches(tr, table, 20 + SETTLE).finished  # settled
    # A late event of the run (a redelivered in_progress at 60 s) before its retirement.
    assert ci(tr, table, run_event(DONE, "d3", RunStatus.RUNNING, 60)).error is None
    assert time_reaches(tr, table, 20 + SETTLE + RETAIN + 5).retired == []
    assert table.states[DONE].status is RunStatus.SUCCEEDED
    assert time_reaches(tr, table, 60 + SETTLE + RETAIN).retired == [DONE]


def test_a_restarted_tracker_rebuilds_retirement_deadlines_from_the_table() -> None:
    tr, table = tracker(), Table()
    ended_run(tr, table)
    time_reaches(tr, table, 20 + SETTLE)
    restarted = tracker()
    restarted.rebuild(0, table.states.values())
    assert time_reaches(restarted, table, 20 + SETTLE + RETAIN).retired == [DONE]


def test_offline_end_of_input_does_not_retire_before_retention_passed() -> None:
    tr, table = tracker(), Table()
    ended_run(tr, table)
    final = watermark_signal(at(60), final=True).to_bytes()
    outcome = table.apply(tr.on_message("signal", final, 0, table.load))
    assert [s.run_id for s in outcome.finished] == [DONE] and outcome.retired == []
    assert DONE in table.states


def log_line(pod: str, second: float, text: str) -> LogLine:
    return LogLine(
        namespace="ci",
        pod=pod,
        container="main",
        line=text,
        event_time=at(second),
        received_at=at(second),
        run_id=f"generic:{pod}#1",
    )


def test_a_log_stream_silent_for_retain_ended_s_is_finished_and_forgotten() -> None:
    logs = LogSignals(TrackingConfig(retain_ended_s=RETAIN))
    logs.feed(log_line("done-pod", 0, "tests/test_a.py::test_one PASSED"))
    logs.feed(log_line("live-pod", 10, "starting"))
    logs.feed(log_line("live-pod", RETAIN - 1, "still here"))
    assert logs.knows("ci", "done-pod", "main") and logs.drain_forgotten() == []
    # done-pod's last line is now more than retain_ended_s behind the newest line of any stream:
    # its pending test result is reported as it is forgotten.
    out = logs.feed(log_line("live-pod", RETAIN + 1, "still here"))
    assert [s.kind for s in out if s.run_id == "generic:done-pod#1"] == [SignalKind.TESTS]
    assert not logs.knows("ci", "done-pod", "main") and logs.knows("ci", "live-pod", "main")
    assert logs.drain_forgotten() == [("ci", "done-pod", "main")]
    assert logs.drain_forgotten() == []


def test_a_stream_evicted_at_the_cap_is_handed_over_to_forget_too() -> None:
    logs = LogSignals(TrackingConfig(retain_ended_s=RETAIN), max_streams=1)
    logs.feed(log_line("first", 0, "hello"))
    logs.feed(log_line("second", 1, "hello"))
    assert logs.drain_forgotten() == [("ci", "first", "main")]


RUNNER = "github-runner:arc-runner-x7k2p"


def test_a_retired_run_lets_go_of_the_keys_bound_to_it() -> None:
    tr, table = tracker(), Table()
    ended_run(tr, table)
    table.states[DONE] = table.states[DONE].model_copy(update={"correlation_keys": [RUNNER]})
    retired = time_reaches(tr, table, 20 + SETTLE + RETAIN)
    assert retired.retired == [DONE]
    assert [(b.kind, b.correlation_key, b.bind_run_id) for b in retired.binds] == [
        (SignalKind.UNBIND, RUNNER, DONE)
    ]
    bound = link(LinkState(key=RUNNER), bind_signal(RUNNER, DONE, "d1", at(5)), 10).state
    assert link(bound, retired.binds[0], 10).forget
    # A reused runner already bound to a newer run keeps that binding.
    rebound = link(bound, bind_signal(RUNNER, "generic:next#1", "d9", at(40)), 10).state
    assert not link(rebound, retired.binds[0], 10).forget
    # A key with signals waiting for their BIND is not bound to the run: it stays.
    held = link(LinkState(key=RUNNER), time_signal(RUNNER), 10).state
    assert not link(held, retired.binds[0], 10).forget


def time_signal(key: str) -> RunSignal:
    return RunSignal(
        signal_id="a-1",
        kind=SignalKind.ACTIVITY,
        correlation_key=key,
        source="logs",
        event_time=at(1),
        log_pod="arc-runner-x7k2p",
    )
