"""Log detectors of processors.anomalies.logs: error spikes and new error templates."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.anomalies.logs import (
    ERROR_SPIKE,
    NEW_ERROR_TEMPLATE,
    LogAnalyzer,
    PipelineLogBaseline,
    RunLogState,
    anomaly_id,
    mining_text,
    template_matches,
)
from processors.logs.templates import LogTemplateMiner
from runtime.config import LogDetectorsConfig
from schemas.messages import Anomaly, AnomalyCategory, LogLine, Severity

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CFG = LogDetectorsConfig()  # window 60 s, factor 5, min errors 10, silence 900 s, min samples 3
PIPELINE = "shop/ci"

PY_TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/usr/lib/python3.11/site-packages/urllib3/connectionpool.py", line 703, in urlopen',
    "    httplib_response = self._make_request(",
    '  File "/usr/lib/python3.11/site-packages/urllib3/connectionpool.py", line 449, in _make',
    "    six.raise_from(e, None)",
    '  File "/usr/lib/python3.11/http/client.py", line 1375, in getresponse',
    "    response.begin()",
    "ConnectionResetError: [Errno 104] Connection reset by peer",
]

JAVA_OOM = [
    "2026-03-02 08:03:10,412 ERROR [pool-2-thread-7] com.example.shop.OrderService - "
    "Order batch 8812 aborted",
    "java.lang.OutOfMemoryError: Java heap space",
    "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3512)",
    "\tat java.base/java.util.ArrayList.grow(ArrayList.java:237)",
    "\tat com.example.shop.OrderService.load(OrderService.java:88)",
    "Caused by: java.lang.IllegalStateException: cache full",
    "\t... 12 more",
]


def _line(pod: str, text: str, when: datetime, container: str = "main") -> LogLine:
    return LogLine(
        namespace="ci", pod=pod, container=container, line=text, event_time=when, run_id=None
    )


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def normal_run(index: int, *, start: datetime | None = None, minutes: int = 5) -> list[LogLine]:
    """A realistic clean run: two pods, INFO chatter in several formats, a little error noise."""
    rng = random.Random(index)
    start = start or T0 + timedelta(hours=index)
    runner, db = f"shop-ci-{index}-build-x2kzq", f"shop-ci-{index}-db-7d9f8c6b5-m4v7r"
    out: list[LogLine] = []
    for i in range(minutes * 30):  # one line every 2 s per pod
        when = start + timedelta(seconds=2 * i)
        stamp = _ts(when)
        kind = i % 5
        if kind == 0:
            text = f"{stamp} INFO [main] com.example.TestRunner - Running OrderTest#case{i}"
        elif kind == 1:
            text = (
                f'{{"level":"info","ts":"{stamp}","msg":"request served",'
                f'"path":"/api/orders/{i}","status":200,"ms":{rng.randint(2, 40)}}}'
            )
        elif kind == 2:
            text = f'time={stamp} level=info msg="cache hit" key=order-{i} ms={rng.randint(1, 9)}'
        elif kind == 3:
            text = f"I0302 08:{i % 60:02d}:01.000000       1 reflector.go:255] Listing pods"
        else:
            text = f"{stamp} DEBUG [main] com.example.Db - pool size {rng.randint(4, 8)}"
        out.append(_line(runner, text, when))
        # Normal error noise: a retried cache timeout now and then, and one known traceback.
        if rng.random() < 0.08:
            out.append(
                _line(
                    runner,
                    f"{stamp} ERROR [pool-1] com.example.Cache - Connection to cache "
                    f"10.0.0.{rng.randint(2, 9)}:6379 timed out after {rng.randint(100, 900)} ms",
                    when,
                )
            )
        if i == 40:
            out.extend(_line(runner, t, when) for t in PY_TRACEBACK)
        if i == 70:
            out.append(
                _line(
                    runner,
                    "E0302 08:01:10.000000       1 reflector.go:138] failed to list *v1.Pod: "
                    "Get https://10.96.0.1:443/api/v1/pods: dial tcp 10.96.0.1:443: "
                    "connect: connection refused",
                    when,
                )
            )
        db_text = (
            f"{stamp} [{rng.randint(100, 999)}] LOG:  checkpoint complete: wrote "
            f"{rng.randint(1, 90)} buffers"
        )
        out.append(_line(db, db_text, when + timedelta(milliseconds=500), container="postgres"))
    return out


def analyze(
    analyzer: LogAnalyzer,
    run_id: str,
    lines: Iterable[LogLine],
    baseline: PipelineLogBaseline | None,
) -> RunLogState:
    state = analyzer.new_state(run_id, PIPELINE)
    miner = analyzer.miner_for(PIPELINE, baseline)
    for line in lines:
        analyzer.feed(state, line, miner)
    return state


def history(analyzer: LogAnalyzer, runs: int) -> PipelineLogBaseline:
    baseline: PipelineLogBaseline | None = None
    for i in range(runs):
        state = analyze(analyzer, f"run-{i}", normal_run(i), baseline)
        found = analyzer.detect(state, baseline, f"run-{i}", T0 + timedelta(days=9), CFG, True)
        assert found == [], [a.summary for a in found]
        baseline = analyzer.update_baseline(baseline, state)
    assert baseline is not None
    return baseline


def final(
    analyzer: LogAnalyzer, state: RunLogState, baseline: PipelineLogBaseline | None
) -> list[Anomaly]:
    return analyzer.detect(state, baseline, state.run_id, T0 + timedelta(days=9), CFG, True)


def types(found: Sequence[Anomaly]) -> list[tuple[str, str]]:
    return [(a.type, a.subject) for a in found]


# --------------------------------------------------------------------------------------------
# Folding and levels


def test_python_traceback_is_one_error_event_named_by_its_exception_line() -> None:
    analyzer = LogAnalyzer(CFG)
    lines = [_line("p", "2026-03-02T08:00:00Z INFO [main] app - start", T0)]
    lines += [_line("p", t, T0 + timedelta(seconds=1)) for t in PY_TRACEBACK]
    lines.append(
        _line("p", "2026-03-02T08:00:05Z INFO [main] app - next", T0 + timedelta(seconds=5))
    )
    state = analyze(analyzer, "r", lines, None)
    (cell,) = state.windows["p"].values()
    # The folder folds a traceback into the line before it (logger.exception prints the
    # message, then the trace): two events, one of them an error.
    assert (cell.events, cell.errors) == (2, 1)
    (template,) = state.templates.values()
    assert template.text == "ConnectionResetError: [Errno <NUM>] Connection reset by peer"
    assert cell.samples == ["ConnectionResetError: [Errno 104] Connection reset by peer"]


def test_java_stack_trace_with_tab_at_frames_is_one_error_named_by_logged_message() -> None:
    analyzer = LogAnalyzer(CFG)
    lines = [_line("p", t, T0 + timedelta(milliseconds=i)) for i, t in enumerate(JAVA_OOM)]
    state = analyze(analyzer, "r", lines, None)
    (cell,) = state.windows["p"].values()
    assert (cell.events, cell.errors) == (1, 1)
    (template,) = state.templates.values()
    assert template.text == "Order batch <NUM> aborted"


def test_bare_java_trace_and_chained_python_traceback() -> None:
    analyzer = LogAnalyzer(CFG)
    texts = [
        'Exception in thread "main" java.lang.NullPointerException: order is null',
        "\tat com.example.Main.run(Main.java:12)",
        "\tat com.example.Main.main(Main.java:5)",
        "retrying with the python client",
        "Traceback (most recent call last):",
        '  File "/app/a.py", line 3, in <module>',
        "KeyError: 'sku'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "/app/a.py", line 5, in <module>',
        "RuntimeError: lookup failed",
        "done",
    ]
    state = analyze(analyzer, "r", [_line("p", t, T0) for t in texts], None)
    (cell,) = state.windows["p"].values()
    # A neutral line followed by a traceback is one event that is an error; it is named by
    # its first exception line (the root cause of the chain).
    assert (cell.events, cell.errors) == (3, 2)
    texts_found = sorted(t.text for t in state.templates.values())
    assert texts_found == [
        'Exception in thread "main" java.lang.NullPointerException: order is null',
        "KeyError: 'sku'",
    ]


def test_levels_across_formats_count_errors_only() -> None:
    analyzer = LogAnalyzer(CFG)
    texts = [
        "E0302 08:00:01.000000       1 controller.go:12] failed to sync pod ci/web-7d9f8c6b5-x2kzq",
        "W0302 08:00:01.000000       1 controller.go:12] slow sync",
        '{"level":"error","ts":"2026-03-02T08:00:01Z","msg":"upstream timeout","status":504}',
        '{"level":"info","msg":"no errors found"}',
        'time=2026-03-02T08:00:01Z level=error msg="db connect failed" '
        'err="dial tcp 10.0.0.1:5432"',
        "time=2026-03-02T08:00:01Z level=warn msg=retrying",
        "all tests passed, 0 errors",
    ]
    state = analyze(analyzer, "r", [_line("p", t, T0) for t in texts], None)
    (cell,) = state.windows["p"].values()
    assert (cell.events, cell.errors) == (7, 3)
    assert sorted(t.text for t in state.templates.values()) == [
        "db connect failed dial tcp <IP>",
        "failed to sync pod ci/web-<POD>",
        "upstream timeout",
    ]


def test_mining_text_and_template_matching() -> None:
    assert mining_text('{"level":"error","msg":"boom","error":"eof"}') == "boom eof"
    assert mining_text('level=error msg="a b" err=x') == "a b x"
    assert mining_text("  plain  ") == "plain"
    assert template_matches("Connection to <IP> timed out", "Connection to <*> timed out")
    assert not template_matches("Connection to <IP> timed out", "Connection refused")
    assert not template_matches("disk full on node", "out of memory in pod")


# --------------------------------------------------------------------------------------------
# Clean histories


def test_clean_history_gives_nothing_even_with_normal_error_noise() -> None:
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 6)
    assert baseline.n_runs == 6
    assert baseline.mean_errors > 0  # there is noise
    for i in range(6, 10):
        state = analyze(analyzer, f"run-{i}", normal_run(i), baseline)
        assert final(analyzer, state, baseline) == []
        baseline = analyzer.update_baseline(baseline, state)


def test_new_pipeline_stays_silent_below_cold_start_samples() -> None:
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, CFG.cold_start_samples - 1)
    lines = normal_run(2) + _burst("shop-ci-2-build-x2kzq", T0 + timedelta(hours=2, minutes=2))
    lines += [
        _line("shop-ci-2-build-x2kzq", t, T0 + timedelta(hours=2, minutes=3)) for t in JAVA_OOM
    ]
    state = analyze(analyzer, "run-2", lines, baseline)
    assert final(analyzer, state, baseline) == []
    assert analyzer.detect(state, None, "run-2", T0 + timedelta(days=9), CFG, True) == []


def test_a_cold_start_reports_only_what_stands_out_by_a_larger_margin() -> None:
    # Two earlier runs (cold start): a 40-error burst is a spike and its error, repeated, is a
    # new signature; a Java OOM logged once is not reported until the baseline is full.
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, CFG.cold_start_samples)
    pod = "shop-ci-2-build-x2kzq"
    lines = normal_run(2) + _burst(pod, T0 + timedelta(hours=2, minutes=2))
    lines += [_line(pod, t, T0 + timedelta(hours=2, minutes=3)) for t in JAVA_OOM]
    state = analyze(analyzer, "run-2", lines, baseline)
    found = final(analyzer, state, baseline)
    assert sorted(a.type for a in found) == [ERROR_SPIKE, NEW_ERROR_TEMPLATE]
    (new,) = [a for a in found if a.type == NEW_ERROR_TEMPLATE]
    assert "payment call failed" in new.evidence["template"]
    (spike,) = [a for a in found if a.type == ERROR_SPIKE]
    assert spike.evidence["threshold"]["margin_factor"] == CFG.cold_start_factor
    full = history(analyzer, CFG.min_samples)
    state = analyze(
        analyzer,
        "run-9",
        normal_run(9) + [_line(pod, t, T0 + timedelta(hours=9, minutes=3)) for t in JAVA_OOM],
        full,
    )
    assert [a.type for a in final(analyzer, state, full)] == [NEW_ERROR_TEMPLATE]


def test_runs_that_logged_only_info_lines_build_the_baseline() -> None:
    # Issue 12: earlier runs logged no warning or error, only info lines (their activity):
    # each is a sample of "no errors here", so the first error signature is reported.
    analyzer = LogAnalyzer(CFG)
    baseline: PipelineLogBaseline | None = None
    for i in range(CFG.min_samples):
        state = analyzer.new_state(f"run-{i}", PIPELINE)
        for minute in range(4):
            analyzer.note_activity(state, "api-0", T0 + timedelta(hours=i, minutes=minute))
        baseline = analyzer.update_baseline(baseline, state)
    assert baseline is not None and baseline.n_runs == CFG.min_samples
    assert (baseline.stat_runs, baseline.n_windows, baseline.mean_errors) == (3, 12, 0.0)
    pod = "api-0"
    lines = [_line(pod, t, T0 + timedelta(hours=5, minutes=1)) for t in JAVA_OOM]
    state = analyze(analyzer, "run-5", lines, baseline)
    assert [a.type for a in final(analyzer, state, baseline)] == [NEW_ERROR_TEMPLATE]


def test_a_run_the_infrastructure_broke_is_no_sample() -> None:
    analyzer = LogAnalyzer(CFG)
    state = analyzer.new_state("run-0", PIPELINE)
    analyzer.note_activity(state, "api-0", T0)
    baseline = analyzer.update_baseline(None, state, window_stats=False)
    assert (baseline.n_runs, baseline.stat_runs, baseline.recorded) == (0, 0, ["run-0"])


# --------------------------------------------------------------------------------------------
# Error spike


def _burst(pod: str, start: datetime, n: int = 40) -> list[LogLine]:
    return [
        _line(
            pod,
            f"{_ts(start)} ERROR [grpc-{k}] com.example.Payments - payment call failed: "
            f"UNAVAILABLE: upstream connect error 10.0.3.{k % 9}:8443",
            start + timedelta(milliseconds=500 * k),
        )
        for k in range(n)
    ]


def test_error_spike_fires_once_for_the_pod_and_window() -> None:
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 4)
    pod = "shop-ci-4-build-x2kzq"
    burst_at = T0 + timedelta(hours=4, minutes=2, seconds=5)
    state = analyze(analyzer, "run-4", normal_run(4) + _burst(pod, burst_at), baseline)
    found = [a for a in final(analyzer, state, baseline) if a.type == ERROR_SPIKE]
    assert types(found) == [(ERROR_SPIKE, pod)]
    spike = found[0]
    assert spike.category == AnomalyCategory.APP and spike.severity == Severity.WARNING
    assert spike.window_start == T0 + timedelta(hours=4, minutes=2)
    assert spike.window_end == spike.detected_at == T0 + timedelta(hours=4, minutes=3)
    assert spike.evidence["observed"] >= 40
    assert spike.evidence["observed"] > spike.evidence["baseline_max"]
    assert 1 <= len(spike.evidence["sample_lines"]) <= 3
    assert spike.anomaly_id == anomaly_id(
        "run-4", ERROR_SPIKE, pod, spike.window_start, spike.window_end
    )


def test_error_spike_waits_for_the_watermark_to_close_the_window() -> None:
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 3)
    pod = "shop-ci-3-build-x2kzq"
    burst_at = T0 + timedelta(hours=3, minutes=2, seconds=5)
    state = analyze(analyzer, "run-3", normal_run(3) + _burst(pod, burst_at), baseline)
    end = T0 + timedelta(hours=3, minutes=3)

    def spikes(now: datetime) -> list[Anomaly]:
        found = analyzer.detect(state, baseline, "run-3", now, CFG, False)
        return [a for a in found if a.type == ERROR_SPIKE]

    assert spikes(end - timedelta(seconds=1)) == []
    assert types(spikes(end)) == [(ERROR_SPIKE, pod)]
    assert spikes(end) == spikes(end + timedelta(hours=1))


def test_error_spike_needs_min_errors_and_more_than_baseline_max() -> None:
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 4)
    pod = "shop-ci-4-build-x2kzq"
    at = T0 + timedelta(hours=4, minutes=2, seconds=5)
    state = analyze(analyzer, "run-4", normal_run(4) + _burst(pod, at, n=3), baseline)
    window = state.windows[pod]
    assert max(c.errors for c in window.values()) < CFG.spike_min_errors
    assert max(c.errors for c in window.values()) > CFG.spike_factor * baseline.mean_errors
    assert [a for a in final(analyzer, state, baseline) if a.type == ERROR_SPIKE] == []
    # A history that already had such bursts: a burst of the same size is no spike.
    noisy: PipelineLogBaseline | None = None
    for i in range(4):
        p = f"shop-ci-{i}-build-x2kzq"
        lines = normal_run(i) + _burst(p, T0 + timedelta(hours=i, minutes=1, seconds=5), n=45)
        noisy = analyzer.update_baseline(noisy, analyze(analyzer, f"run-{i}", lines, noisy))
    state = analyze(analyzer, "run-4b", normal_run(4) + _burst(pod, at, n=40), noisy)
    assert [a for a in final(analyzer, state, noisy) if a.type == ERROR_SPIKE] == []


# --------------------------------------------------------------------------------------------
# New error template


def test_new_error_template_fires_for_a_new_signature_with_evidence() -> None:
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 4)
    pod = "shop-ci-4-build-x2kzq"
    at = T0 + timedelta(hours=4, minutes=3, seconds=10)
    oom = [_line(pod, t, at) for t in JAVA_OOM]
    oom2 = [_line(pod, t.replace("8812", "8813"), at + timedelta(seconds=30)) for t in JAVA_OOM]
    state = analyze(analyzer, "run-4", normal_run(4) + oom + oom2, baseline)
    found = final(analyzer, state, baseline)
    assert [a.type for a in found] == [NEW_ERROR_TEMPLATE]
    new = found[0]
    assert new.subject in state.templates
    assert new.evidence["template"] == "Order batch <NUM> aborted"
    assert new.evidence["observed"] == 2
    assert len(new.evidence["sample_lines"]) == 2
    assert new.window_start == T0 + timedelta(hours=4, minutes=3)
    assert new.detected_at == new.window_end == T0 + timedelta(hours=4, minutes=4)
    # Known signatures (the cache timeouts, the ConnectionResetError traceback) are not new.
    assert baseline.templates


def test_new_error_template_reported_once_its_window_closed_and_samples_capped() -> None:
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 3)
    pod = "shop-ci-3-build-x2kzq"
    at = T0 + timedelta(hours=3, minutes=1, seconds=1)
    lines = [
        _line(pod, f"{_ts(at)} ERROR [main] c.e.Migrate - schema version {v} not found", at)
        for v in range(5)
    ]
    state = analyze(analyzer, "run-3", normal_run(3) + lines, baseline)
    end = T0 + timedelta(hours=3, minutes=2)
    assert analyzer.detect(state, baseline, "run-3", end - timedelta(seconds=1), CFG) == []
    found = analyzer.detect(state, baseline, "run-3", end, CFG)
    # Five new errors on top of the usual noise also make the window a spike.
    assert sorted(a.type for a in found) == [ERROR_SPIKE, NEW_ERROR_TEMPLATE]
    (new,) = [a for a in found if a.type == NEW_ERROR_TEMPLATE]
    assert new.evidence["observed"] == 5 and len(new.evidence["sample_lines"]) == 3


def test_known_templates_are_not_new_even_with_a_foreign_miner() -> None:
    """Ids drift when another worker's miner mines the run; the text match keeps them known."""
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 4)
    other = LogAnalyzer(CFG)
    state = other.new_state("run-4", PIPELINE)
    miner = LogTemplateMiner()  # unseeded: knows nothing of the baseline
    for line in normal_run(4):
        other.feed(state, line, miner)
    assert final(other, state, baseline) == []


# --------------------------------------------------------------------------------------------
# Baseline, serialisation, determinism, restarts


def test_update_baseline_is_idempotent_and_bounded() -> None:
    analyzer = LogAnalyzer(CFG)
    state = analyze(analyzer, "run-0", normal_run(0), None)
    once = analyzer.update_baseline(None, state)
    twice = analyzer.update_baseline(once, state)
    assert once == twice and once.n_runs == 1 and len(once.runs) == 1
    small = PipelineLogBaseline(pipeline=PIPELINE, max_templates=2, max_runs=2)
    for i in range(4):
        st_i = analyzer.new_state(f"r{i}", PIPELINE)
        miner = analyzer.miner_for("bounded")
        text = [
            "ERROR disk full",
            "ERROR out of memory in worker",
            "FATAL panic: nil map",
            "ERROR certificate expired for registry mirror",
        ][i]
        analyzer.feed(st_i, _line("p", text, T0), miner)
        small = analyzer.update_baseline(small, st_i)
    assert len(small.templates) == 2 and len(small.runs) == 2 and small.n_runs == 4
    # A run that logged nothing is recorded (idempotence) but is no sample.
    empty = analyzer.update_baseline(small, analyzer.new_state("quiet", PIPELINE))
    assert empty.n_runs == 4 and "quiet" in empty.recorded


def test_serialisation_round_trip() -> None:
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 3)
    state = analyze(
        analyzer, "run-3", [*normal_run(3)[:100], _line("p", PY_TRACEBACK[0], T0)], None
    )
    assert state.streams  # a pending traceback is part of the state
    assert RunLogState.model_validate_json(state.model_dump_json()) == state
    assert PipelineLogBaseline.model_validate_json(baseline.model_dump_json()) == baseline


def _scenario_lines() -> list[LogLine]:
    pod = "shop-ci-5-build-x2kzq"
    lines = normal_run(5)
    lines += _burst(pod, T0 + timedelta(hours=5, minutes=1, seconds=2))
    lines += [_line(pod, t, T0 + timedelta(hours=5, minutes=3, seconds=9)) for t in JAVA_OOM]
    lines.sort(key=lambda line: line.event_time)
    return lines


def test_same_input_twice_gives_same_anomalies() -> None:
    def run() -> list[Anomaly]:
        analyzer = LogAnalyzer(CFG)
        baseline = history(analyzer, 5)
        state = analyze(analyzer, "run-5", _scenario_lines(), baseline)
        return final(analyzer, state, baseline)

    first, second = run(), run()
    # The burst is a spike and a new signature; the OutOfMemoryError trace another signature.
    assert sorted(a.type for a in first) == [ERROR_SPIKE, NEW_ERROR_TEMPLATE, NEW_ERROR_TEMPLATE]
    assert [a.model_dump() for a in first] == [a.model_dump() for a in second]


def test_worker_restart_mid_history_and_mid_trace_changes_nothing() -> None:
    # Uninterrupted.
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 5)
    lines = _scenario_lines()
    state = analyze(analyzer, "run-5", lines, baseline)
    expected = final(analyzer, state, baseline)
    assert len(expected) == 3

    # Restart after the history, and again in the middle of the Java trace of run-5.
    analyzer = LogAnalyzer(CFG)
    history_only = history(analyzer, 5)
    saved_baseline = history_only.model_dump_json()
    cut = next(i for i, line in enumerate(lines) if line.line.startswith("\tat java.base")) + 1
    fresh = LogAnalyzer(CFG)
    base = PipelineLogBaseline.model_validate_json(saved_baseline)
    part = analyze(fresh, "run-5", lines[:cut], base)
    saved_state = part.model_dump_json()
    restarted = LogAnalyzer(CFG)
    base = PipelineLogBaseline.model_validate_json(saved_baseline)
    state2 = RunLogState.model_validate_json(saved_state)
    miner = restarted.miner_for(PIPELINE, base)
    for line in lines[cut:]:
        restarted.feed(state2, line, miner)
    assert [a.model_dump() for a in final(restarted, state2, base)] == [
        a.model_dump() for a in expected
    ]
    assert state2.templates.keys() == state.templates.keys()


def test_seeded_miner_keeps_template_ids() -> None:
    analyzer = LogAnalyzer(CFG)
    baseline = history(analyzer, 3)
    state = analyze(LogAnalyzer(CFG), "run-3", normal_run(3), baseline)
    assert set(state.templates) <= set(baseline.templates)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p1", "p2"]),
            st.one_of(
                st.sampled_from(PY_TRACEBACK + JAVA_OOM + ["", "INFO ok", "ERROR bad 1"]),
                st.text(max_size=40),
            ),
            st.integers(min_value=0, max_value=600),
        ),
        max_size=60,
    )
)
def test_any_input_folds_consistently(items: list[tuple[str, str, int]]) -> None:
    analyzer = LogAnalyzer(CFG)
    state = analyzer.new_state("r", PIPELINE)
    miner = analyzer.miner_for(PIPELINE)
    for pod, text, sec in items:
        analyzer.feed(state, _line(pod, text, T0 + timedelta(seconds=sec)), miner)
    for cells in state.windows.values():
        for cell in cells.values():
            assert cell.errors >= 0 and len(cell.samples) <= 3
    assert sum(c.events for cells in state.windows.values() for c in cells.values()) <= len(items)
    assert RunLogState.model_validate_json(state.model_dump_json()) == state
    again = analyzer.detect(state, None, "r", T0 + timedelta(hours=1), CFG)
    assert again == analyzer.detect(state, None, "r", T0 + timedelta(hours=1), CFG)
