"""A run's findings do not depend on the order its Kubernetes inputs arrive in (issue 17).

A run's Job, its pods and the Events about them are different objects, keyed apart on
`sentinel.k8s`, so they reach the run through different partitions and, with more than one
worker, in any order. What a user reads in the end (each anomaly's title, evidence, window and
time, as stored by the sink and shown by the API) must be the same in every order: a
job_backoff_limit found first from the BackoffLimitExceeded Event and then confirmed by the
Job's Failed condition reads as if the Job had come first.

The inputs are the real ones of the scenario captures, turned into run signals by the
producer's and the router's own code; each run's signals go through the run tracker (as the
worker calls it, offline settings as `sentinel analyze`: time decides at the end) in capture
order, reversed, and in orders hypothesis picks. "What is stored" is the newest report of each
anomaly id, as the anomalies table (one row per id, the latest report wins) and the alert
dispatcher (newest words, same alert) keep it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.runs.correlation import route
from processors.runs.k8s_signals import signals_from_k8s
from processors.runs.source_signals import watermark_signal
from processors.runs.tracking import RunTracker, TrackerConfig
from producers.k8s.objects import K8sNormalizer
from runtime.config import load_settings
from schemas.capture import K8sRecord, read_capture
from schemas.messages import Anomaly, RunSignal, RunState, SignalKind
from tests.support.paths import DATA

SCENARIOS = DATA / "anomaly_scenarios"
CAPTURES = ("oom_mid_test", "side_by_side", "image_pull_failure")


@cache
def config_of(name: str) -> TrackerConfig:
    settings_file = (SCENARIOS / name).with_suffix(".config.yaml")
    config = TrackerConfig.from_settings(load_settings(settings_file))
    # As `sentinel analyze`: no wall clock, and time decides once all input is known (the
    # final tick), so what differs between two orders is the order alone.
    config.idle_watermark_s = None
    config.allowed_lateness_s = 10 * 365 * 24 * 3600
    return config


@cache
def k8s_inputs(name: str) -> dict[str, list[RunSignal]]:
    """Every run's signals from the Kubernetes records of capture `name`."""
    config = load_settings((SCENARIOS / name).with_suffix(".config.yaml"))
    normalizer = K8sNormalizer(config.k8s)  # in capture order: Events inherit their pod's key
    inputs: dict[str, list[RunSignal]] = defaultdict(list)
    for record in read_capture((SCENARIOS / name).with_suffix(".jsonl")):
        if not isinstance(record, K8sRecord):
            continue
        event = normalizer.normalize(record.event, record.object, record.ts)
        for signal in signals_from_k8s(event):
            run_id = signal.run_id or route(signal.correlation_key or "")[0]
            if run_id is not None:
                inputs[run_id].append(signal.model_copy(update={"run_id": run_id}))
    return dict(inputs)


def replay(name: str, signals: Sequence[RunSignal]) -> tuple[dict[str, Anomaly], RunState]:
    """The newest report of each anomaly id and the run's last state, after a final tick."""
    tracker = RunTracker(config_of(name), clock=lambda: 0.0)
    table: dict[str, RunState] = {}
    stored: dict[str, Anomaly] = {}

    def step(signal: RunSignal) -> None:
        out = tracker.on_message("signal", signal.to_bytes(), 0, table.get)
        assert out.error is None, out.error
        for state in out.states:
            table[state.run_id] = state
        for anomaly in out.anomalies:
            stored[anomaly.anomaly_id] = anomaly

    for signal in signals:
        step(signal)
    step(watermark_signal(max(s.event_time for s in signals), final=True))
    (state,) = table.values()
    return stored, state


def comparable(state: RunState) -> dict[str, Any]:
    """The run's state without the counters of how many changes it took to get there."""
    return state.model_dump(mode="json", exclude={"version"})


def runs_with(name: str, anomaly_type: str) -> list[str]:
    found = []
    for run_id, signals in sorted(k8s_inputs(name).items()):
        anomalies, _state = replay(name, signals)
        if any(a.type == anomaly_type for a in anomalies.values()):
            found.append(run_id)
    return found


def test_a_backoff_limit_reads_the_same_whether_the_job_or_its_event_comes_first() -> None:
    for name in ("oom_mid_test", "side_by_side"):
        runs = runs_with(name, "job_backoff_limit")
        assert runs, name  # the captures hold such runs (run 7 of oom_mid_test)
        for run_id in runs:
            signals = k8s_inputs(name)[run_id]
            # Sorting is stable: each object's signals stay in capture order.
            job_last = sorted(signals, key=lambda s: s.kind is SignalKind.JOB)
            event_last = sorted(signals, key=lambda s: s.kind is SignalKind.K8S_EVENT)
            job_first_found, job_first_state = replay(name, event_last)
            event_first_found, event_first_state = replay(name, job_last)
            assert event_first_found == job_first_found, run_id
            assert comparable(event_first_state) == comparable(job_first_state), run_id
            [limit] = [a for a in job_first_found.values() if a.type == "job_backoff_limit"]
            # Both inputs are in what the user reads: the Job's conclusion and its Event.
            assert limit.evidence["conclusion"] == "BackoffLimitExceeded"
            assert [e["reason"] for e in limit.evidence["events"]] == ["BackoffLimitExceeded"]


def test_an_oom_killed_test_run_reads_the_same_in_capture_and_reversed_order() -> None:
    runs = runs_with("oom_mid_test", "oom_killed")
    assert len(runs) == 1
    signals = k8s_inputs("oom_mid_test")[runs[0]]
    forward, forward_state = replay("oom_mid_test", signals)
    backward, backward_state = replay("oom_mid_test", signals[::-1])
    assert {a.type for a in forward.values()} == {"oom_killed", "job_backoff_limit"}
    assert backward == forward
    assert comparable(backward_state) == comparable(forward_state)


def all_runs() -> list[tuple[str, str]]:
    return [(name, run_id) for name in CAPTURES for run_id in sorted(k8s_inputs(name))]


def object_of(signal: RunSignal) -> str:
    """The Kubernetes object a signal comes from: its topic key, hence its partition."""
    if signal.pod is not None:
        return f"pod/{signal.pod.uid}"
    if signal.k8s_event is not None:
        return f"event/{signal.k8s_event.uid}"
    return f"{signal.kind.value}/{signal.correlation_key}"


@st.composite
def shuffled_run(draw: st.DrawFn) -> tuple[str, str, list[RunSignal]]:
    """One run's signals, each object's in its own order (one key, one partition: Kafka keeps
    it), the objects interleaved as hypothesis picks (different partitions: nothing does)."""
    name, run_id = draw(st.sampled_from(all_runs()))
    streams: dict[str, list[RunSignal]] = defaultdict(list)
    for signal in k8s_inputs(name)[run_id]:
        streams[object_of(signal)].append(signal)
    heads = {key: 0 for key in streams}
    merged: list[RunSignal] = []
    while heads:
        key = draw(st.sampled_from(sorted(heads)))
        merged.append(streams[key][heads[key]])
        heads[key] += 1
        if heads[key] == len(streams[key]):
            del heads[key]
    return name, run_id, merged


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shuffled_run())
def test_every_run_s_findings_and_state_are_the_same_in_any_order(
    case: tuple[str, str, list[RunSignal]],
) -> None:
    name, run_id, shuffled = case
    expected, expected_state = replay(name, k8s_inputs(name)[run_id])
    found, state = replay(name, shuffled)
    assert found == expected, run_id
    assert comparable(state) == comparable(expected_state), run_id
