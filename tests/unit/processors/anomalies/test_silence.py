"""Log silence (processors.anomalies.silence) on its own and through the run tracker's timers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processors.anomalies.silence import LOG_SILENCE, detect_log_silence, silence_deadlines
from processors.runs.source_signals import watermark_signal
from processors.runs.tracking import RunTracker, TrackerConfig
from schemas.messages import PodState, RunSignal, RunState, RunStatus, SignalKind

T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
RUN = "job:ci/nightly-e2e-29051234"
SILENCE, BUCKET = 900.0, 60.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pod(name: str, phase: str, second: float = 0) -> PodState:
    return PodState(uid=f"uid-{name}", name=name, phase=phase, node="n1", updated_at=at(second))


def run(status: RunStatus = RunStatus.RUNNING, **logged: float) -> RunState:
    return RunState(
        run_id=RUN,
        provider="kubernetes",
        provider_run_id="ci/nightly-e2e-29051234",
        status=status,
        first_event_at=T0,
        updated_at=at(max(logged.values(), default=0)),
        pods=[pod("e2e-runner", "Running"), pod("db-seed", "Succeeded")],
        log_activity={name.replace("_", "-"): at(s) for name, s in logged.items()},
    )


def test_a_running_pod_quiet_for_the_limit_is_silent_once_per_quiet_spell() -> None:
    state = run(e2e_runner=120)  # logged in the bucket starting at 120 s: quiet from 180 s
    quiet_from, limit = at(180), at(180 + SILENCE)
    assert silence_deadlines(state, SILENCE, BUCKET) == [limit]
    assert detect_log_silence(state, limit - timedelta(seconds=1), SILENCE, BUCKET) == []
    (found,) = detect_log_silence(state, limit, SILENCE, BUCKET)
    assert (found.type, found.subject, found.category.value) == (LOG_SILENCE, "e2e-runner", "app")
    assert (found.window_start, found.window_end, found.detected_at) == (quiet_from, limit, limit)
    assert found.evidence["threshold_s"] == SILENCE and found.evidence["observed_s"] == SILENCE
    # Checked again later: the same silence, the same id.
    (later,) = detect_log_silence(state, limit + timedelta(hours=1), SILENCE, BUCKET)
    assert later.anomaly_id == found.anomaly_id
    # It logged again and went quiet again: a new silence.
    (again,) = detect_log_silence(run(e2e_runner=3000), at(5000), SILENCE, BUCKET)
    assert again.anomaly_id != found.anomaly_id


def test_ended_pods_pods_that_never_logged_and_finished_runs_are_not_silent() -> None:
    late = at(10_000)
    assert detect_log_silence(run(db_seed=0), late, SILENCE, BUCKET) == []  # db-seed ended
    assert detect_log_silence(run(), late, SILENCE, BUCKET) == []  # nobody logged
    finished = run(RunStatus.SUCCEEDED, e2e_runner=0)
    assert detect_log_silence(finished, late, SILENCE, BUCKET) == []
    assert silence_deadlines(finished, SILENCE, BUCKET) == []
    assert detect_log_silence(run(e2e_runner=0), None, SILENCE, BUCKET) == []


def signal(signal_id: str, kind: SignalKind, second: float, **fields: object) -> bytes:
    return RunSignal(
        signal_id=signal_id,
        kind=kind,
        run_id=RUN,
        source="k8s",
        provider="kubernetes",
        event_time=at(second),
        **fields,  # type: ignore[arg-type]
    ).to_bytes()


def test_the_tracker_reports_a_silence_when_event_time_passes_the_limit_mid_run() -> None:
    config = TrackerConfig(
        idle_watermark_s=None, allowed_lateness_s=0, log_silence_s=SILENCE, settle_s=0
    )
    tracker = RunTracker(config)
    table: dict[str, RunState] = {}

    def feed(raw: bytes) -> list[str]:
        outcome = tracker.on_message("signal", raw, 0, table.get)
        assert outcome.error is None, outcome.error
        table.update((s.run_id, s) for s in outcome.states)
        return [f"{a.type}:{a.subject}" for a in outcome.anomalies]

    running = pod("e2e-runner", "Running", 5).model_copy(update={"started_at": at(5)})
    assert feed(signal("pod-1", SignalKind.POD, 5, pod=running)) == []
    assert feed(signal("act-1", SignalKind.ACTIVITY, 60, log_pod="e2e-runner")) == []
    # Replay ticks: event time reaches 1019 s (quiet from 120 s: not yet), then 1020 s.
    assert feed(watermark_signal(at(1019), final=False, source="replay").to_bytes()) == []
    assert feed(watermark_signal(at(1020), final=False, source="replay").to_bytes()) == [
        "log_silence:e2e-runner"
    ]
    assert table[RUN].status is RunStatus.RUNNING  # silence reports; it does not close the run
    assert feed(watermark_signal(at(2000), final=False, source="replay").to_bytes()) == []
    # The pod logs again and goes quiet again: reported again, as a new silence.
    assert feed(signal("act-2", SignalKind.ACTIVITY, 2100, log_pod="e2e-runner")) == []
    assert feed(watermark_signal(at(3060), final=False, source="replay").to_bytes()) == [
        "log_silence:e2e-runner"
    ]
