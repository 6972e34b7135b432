"""Test detectors: each fires on an injected fault in a realistic pipeline history and stays
silent on clean noisy histories, before enough history, on erratic tests and on infra-caused
runs; `record` is idempotent and keeps finished-time order; the history survives JSON."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.anomalies import tests as td
from runtime.config import TestDetectorsConfig
from schemas.messages import (
    Anomaly,
    AnomalyCategory,
    RunState,
    RunStatus,
    TestCounts,
    TestResult,
)
from schemas.messages import TestStatus as Status

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CONFIG = TestDetectorsConfig()  # history 20, min_samples 5, ratio 2, delta 5s, 5 MADs, cv 0.5


@dataclass
class Run:
    """One run as the detectors get it: the run state and its test results."""

    state: RunState
    results: list[TestResult]
    infra_caused: bool = False
    infra_tests: set[str] = field(default_factory=set)

    def summary(self) -> td.RunRecord:
        return td.summarise_run(
            self.state, self.results, self.infra_caused, infra_tests=self.infra_tests
        )


class Pipeline:
    """An "e2e" pipeline on main: ~20 tests with stable base durations and a few % of noise."""

    def __init__(self, seed: int, tests: int = 20, noise: float = 0.05) -> None:
        self.rng = random.Random(seed)
        self.noise = noise
        self.base = {
            f"tests.e2e.test_{group}::test_case_{i}": self.rng.uniform(0.5, 40.0)
            for i in range(tests)
            for group in ["api" if i % 2 else "ui"]
        }
        self.count = 0

    def run(
        self,
        *,
        commit: str | None = None,
        slow: dict[str, float] | None = None,
        fail: Sequence[str] = (),
        retry_pass: Sequence[str] = (),
        drop: Sequence[str] = (),
        status: RunStatus | None = None,
        extra_s: float = 0.0,
        hours: float | None = None,
    ) -> Run:
        number = self.count
        self.count += 1
        run_id = f"github:e2e:{number}"
        start = T0 + timedelta(hours=number if hours is None else hours)
        clock = start + timedelta(seconds=30)
        results: list[TestResult] = []
        for key, base in self.base.items():
            if key in drop:
                continue
            duration = base * (1 + self.rng.gauss(0, self.noise))
            duration *= (slow or {}).get(key, 1.0)
            suite, name = key.split("::")
            attempts = [Status.FAILED, Status.PASSED] if key in retry_pass else []
            attempts = attempts or [Status.FAILED if key in fail else Status.PASSED]
            for attempt, outcome in enumerate(attempts, start=1):
                clock += timedelta(seconds=duration)
                results.append(
                    TestResult(
                        run_id=run_id,
                        suite=suite,
                        name=name,
                        status=outcome,
                        duration_s=round(duration, 3),
                        attempt=attempt,
                        source="junit-xml",
                        event_time=clock,
                    )
                )
        end = clock + timedelta(seconds=20 + self.rng.uniform(0, 10) + extra_s)
        failed = any(key in fail for key in self.base if key not in drop)
        state = RunState(
            run_id=run_id,
            provider="github",
            provider_run_id=str(number),
            pipeline="e2e",
            branch="main",
            commit_sha=commit or f"{number:040x}",
            status=status or (RunStatus.FAILED if failed else RunStatus.SUCCEEDED),
            started_at=start,
            finished_at=end,
            duration_s=(end - start).total_seconds(),
            tests=TestCounts(total=len(results)),
            first_event_at=start,
            updated_at=end,
        )
        return Run(state, results)

    def clean(self, runs: int) -> list[Run]:
        return [self.run() for _ in range(runs)]


def feed(
    runs: Sequence[Run],
    history: td.PipelineHistory | None = None,
    config: TestDetectorsConfig = CONFIG,
) -> tuple[td.PipelineHistory, list[Anomaly]]:
    history = history or td.PipelineHistory(pipeline="e2e", branch="main")
    found: list[Anomaly] = []
    for run in runs:
        current = run.summary()
        found.extend(td.detect_tests(history, current, config))
        history = td.record(history, current, config)
    return history, found


def judge(history: td.PipelineHistory, run: Run) -> list[Anomaly]:
    return td.detect_tests(history, run.summary(), CONFIG)


def types(anomalies: Sequence[Anomaly]) -> list[tuple[str, str]]:
    return sorted((a.type, a.subject) for a in anomalies)


SOME = "tests.e2e.test_api::test_case_3"
OTHER = "tests.e2e.test_ui::test_case_4"


# --- clean histories -----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_clean_noisy_history_gives_no_anomaly(seed: int) -> None:
    pipeline = Pipeline(seed, noise=0.08)
    _, found = feed(pipeline.clean(30))
    assert found == []


def test_clean_history_with_an_occasional_failure_gives_none() -> None:
    pipeline = Pipeline(7)
    runs = [*pipeline.clean(8), pipeline.run(fail=[SOME]), *pipeline.clean(4)]
    _, found = feed(runs)
    assert found == []


# --- silence before history, then a cold start with larger margins ------------------------------


def test_no_baseline_detector_fires_before_cold_start_samples() -> None:
    pipeline = Pipeline(1)
    history, _ = feed(pipeline.clean(CONFIG.cold_start_samples - 1))
    keys = list(pipeline.base)
    slow = max(keys[12:], key=pipeline.base.__getitem__)
    faulty = pipeline.run(slow={slow: 11.0}, fail=keys[:12], drop=[keys[-1]], extra_s=3600)
    assert judge(history, faulty) == []


def test_a_blatant_fault_after_three_good_runs_is_reported() -> None:
    # Issue 12: a nightly with three runs that reached their tests; a test 11x slower than its
    # median, 12 of 20 tests failing, a test gone and a run an hour longer are all reported.
    pipeline = Pipeline(1)
    history, _ = feed(pipeline.clean(CONFIG.cold_start_samples))
    keys = list(pipeline.base)
    slow = max(keys[12:], key=pipeline.base.__getitem__)
    faulty = pipeline.run(slow={slow: 11.0}, fail=keys[:12], drop=[keys[-1]], extra_s=3600)
    found = judge(history, faulty)
    assert types(found) == [
        (td.DURATION_REGRESSION, slow),
        (td.FAILURE_RATE_SPIKE, "e2e"),
        (td.MISSING_TESTS, "e2e"),
        (td.RUN_DURATION_REGRESSION, "e2e"),
    ]
    assert {a.evidence.get("margin_factor") for a in found} - {None} == {CONFIG.cold_start_factor}


def test_a_cold_start_asks_for_a_larger_margin_than_a_full_baseline() -> None:
    # 3x slower and 40% failing: enough against five runs, not against three.
    pipeline = Pipeline(1)
    keys = list(pipeline.base)
    slow = max(keys[12:], key=pipeline.base.__getitem__)
    cold, _ = feed(pipeline.clean(CONFIG.cold_start_samples))
    moderate = pipeline.run(slow={slow: 3.0}, fail=keys[:8])
    assert judge(cold, moderate) == []
    warm, _ = feed(pipeline.clean(CONFIG.min_samples - CONFIG.cold_start_samples), cold)
    moderate = pipeline.run(slow={slow: 3.0}, fail=keys[:8])
    assert types(judge(warm, moderate)) == [
        (td.DURATION_REGRESSION, slow),
        (td.FAILURE_RATE_SPIKE, "e2e"),
    ]


def test_a_missing_test_in_a_cold_start_must_have_run_every_time() -> None:
    pipeline = Pipeline(1)
    keys = list(pipeline.base)
    runs = [pipeline.run(drop=[keys[0]]), *pipeline.clean(3)]  # keys[0] skipped in the first
    history, _ = feed(runs)
    assert judge(history, pipeline.run(drop=[keys[0]])) == []
    assert types(judge(history, pipeline.run(drop=[keys[1]]))) == [(td.MISSING_TESTS, "e2e")]


def test_fewer_samples_than_the_cold_start_rule_report_nothing() -> None:
    config = TestDetectorsConfig(cold_start_samples=5)  # cold start off: silent below 5
    pipeline = Pipeline(1)
    history, _ = feed(pipeline.clean(4), config=config)
    keys = list(pipeline.base)
    faulty = pipeline.run(slow={keys[13]: 11.0}, fail=keys[:12], drop=[keys[-1]])
    assert td.detect_tests(history, faulty.summary(), config) == []


# --- flaky tests ---------------------------------------------------------------------------------


def test_pass_on_retry_is_flaky_even_without_history() -> None:
    pipeline = Pipeline(2)
    run = pipeline.run(retry_pass=[SOME])
    found = judge(td.PipelineHistory(), run)
    assert types(found) == [(td.FLAKY_TEST, SOME)]
    anomaly = found[0]
    assert anomaly.category == AnomalyCategory.TEST
    assert anomaly.evidence["reasons"] == ["pass_on_retry"]
    assert anomaly.evidence["observed"]["statuses"] == ["failed", "passed"]
    retry = [r for r in run.results if td.result_key(r.suite, r.name) == SOME]
    assert (anomaly.window_start, anomaly.window_end) == (retry[0].event_time, retry[1].event_time)
    assert anomaly.detected_at == run.state.finished_at


def test_flip_on_the_same_commit_is_flaky() -> None:
    pipeline = Pipeline(3)
    history, _ = feed(pipeline.clean(6))
    history, found = feed([pipeline.run(commit="c0ffee" * 6 + "abcd", fail=[SOME])], history)
    assert found == []  # one failure on a fresh commit is not flaky
    rerun = pipeline.run(commit="c0ffee" * 6 + "abcd")
    found = judge(history, rerun)
    assert types(found) == [(td.FLAKY_TEST, SOME)]
    assert found[0].evidence["reasons"] == ["flip_on_commit"]
    assert found[0].evidence["flips"] == [{"run_id": "github:e2e:6", "status": "failed"}]
    assert found[0].evidence["run_ids"] == ["github:e2e:7", "github:e2e:6"]


def test_failures_on_different_commits_are_not_flaky() -> None:
    pipeline = Pipeline(4)
    _, found = feed([*pipeline.clean(6), pipeline.run(fail=[SOME]), pipeline.run()])
    assert found == []


def test_infra_caused_failures_are_never_flaky() -> None:
    pipeline = Pipeline(5)
    history, _ = feed(pipeline.clean(6))
    commit = "f" * 40
    oom = pipeline.run(commit=commit, fail=[SOME])
    oom.infra_caused = True
    history, found = feed([oom], history)
    assert found == []
    assert judge(history, pipeline.run(commit=commit)) == []
    retried = pipeline.run(retry_pass=[SOME])
    retried.infra_tests = {SOME}
    assert judge(history, retried) == []
    retried.infra_tests = set()
    retried.infra_caused = True
    assert judge(history, retried) == []


# --- duration regressions ------------------------------------------------------------------------


def test_test_three_times_slower_is_a_duration_regression() -> None:
    pipeline = Pipeline(6)
    history, _ = feed(pipeline.clean(8))
    key = max(pipeline.base, key=pipeline.base.__getitem__)  # long enough for the 5s guard
    found = judge(history, pipeline.run(slow={key: 3.0}))
    assert types(found) == [(td.DURATION_REGRESSION, key)]
    evidence = found[0].evidence
    assert evidence["baseline"]["samples"] == 8
    assert evidence["observed_s"] > evidence["threshold_s"] >= 2 * evidence["baseline"]["median_s"]
    assert evidence["ratio"] > 2.5


def test_absolute_guard_keeps_short_tests_quiet() -> None:
    pipeline = Pipeline(8)
    pipeline.base[SOME] = 0.4
    history, _ = feed(pipeline.clean(8))
    assert judge(history, pipeline.run(slow={SOME: 4.0})) == []  # 1.6s: 4x, but under 5s more


def test_erratic_test_is_skipped() -> None:
    pipeline = Pipeline(9)
    key = max(pipeline.base, key=pipeline.base.__getitem__)
    runs = [pipeline.run(slow={key: factor}) for factor in [0.2, 1.8, 0.3, 2.0, 0.25, 1.9]]
    history, found = feed(runs)
    assert found == []
    assert judge(history, pipeline.run(slow={key: 6.0})) == []


def test_failed_test_is_not_a_duration_regression() -> None:
    pipeline = Pipeline(10)
    history, _ = feed(pipeline.clean(8))
    key = max(pipeline.base, key=pipeline.base.__getitem__)
    found = judge(history, pipeline.run(slow={key: 4.0}, fail=[key]))
    assert td.DURATION_REGRESSION not in {a.type for a in found}


def test_identical_samples_mad_zero() -> None:
    config = TestDetectorsConfig(duration_ratio=1.01, duration_min_delta_s=0.0)
    pipeline = Pipeline(11, noise=0.0)
    history, found = feed(pipeline.clean(6), config=config)
    assert found == []
    key = max(pipeline.base, key=pipeline.base.__getitem__)
    nudged = td.detect_tests(history, pipeline.run(slow={key: 1.02}).summary(), config)
    assert nudged == []  # MAD 0 is floored: 2% is not 5 MADs
    slow = td.detect_tests(history, pipeline.run(slow={key: 1.5}).summary(), config)
    assert types(slow) == [(td.DURATION_REGRESSION, key)]


def test_run_duration_regression() -> None:
    pipeline = Pipeline(12)
    history, _ = feed(pipeline.clean(8))
    found = judge(history, pipeline.run(extra_s=2000))
    assert types(found) == [(td.RUN_DURATION_REGRESSION, "e2e")]
    assert found[0].evidence["baseline"]["samples"] == 8
    assert found[0].window_start == T0 + timedelta(hours=8)


def test_infra_caused_runs_are_not_regressions_nor_baseline() -> None:
    pipeline = Pipeline(13)
    key = max(pipeline.base, key=pipeline.base.__getitem__)
    history, _ = feed(pipeline.clean(5))
    slow_runs = []
    for _ in range(5):  # infra-slowed runs must not raise the baseline
        run = pipeline.run(slow={key: 3.0}, extra_s=2000)
        run.infra_caused = True
        slow_runs.append(run)
    history, found = feed(slow_runs, history)
    assert found == []
    assert types(judge(history, pipeline.run(slow={key: 3.0}))) == [(td.DURATION_REGRESSION, key)]
    tagged = pipeline.run(slow={key: 3.0})
    tagged.infra_tests = {key}
    assert judge(history, tagged) == []


# --- failure-rate spikes -------------------------------------------------------------------------


def test_failure_rate_spike() -> None:
    pipeline = Pipeline(14)
    history, _ = feed([*pipeline.clean(7), pipeline.run(fail=[SOME])])
    broken = list(pipeline.base)[:8]
    found = judge(history, pipeline.run(fail=broken))
    assert types(found) == [(td.FAILURE_RATE_SPIKE, "e2e")]
    evidence = found[0].evidence
    assert evidence["observed"] == {"failed": 8, "total": 20, "share": 0.4}
    assert evidence["baseline"]["runs"] == 8
    assert evidence["baseline"]["max_share"] == 0.05
    assert evidence["failed_tests"] == sorted(broken)


def test_failure_rate_not_above_the_max_is_no_spike() -> None:
    pipeline = Pipeline(15)
    bad = list(pipeline.base)[:10]
    history, found = feed([*pipeline.clean(6), pipeline.run(fail=bad)])
    assert types(found) == [(td.FAILURE_RATE_SPIKE, "e2e")]
    assert judge(history, pipeline.run(fail=bad[:9])) == []  # 45% < the 50% seen before


def test_infra_caused_failures_are_no_spike_nor_baseline() -> None:
    pipeline = Pipeline(16)
    history, _ = feed(pipeline.clean(6))
    bad = list(pipeline.base)[:10]
    crashed = pipeline.run(fail=bad)
    crashed.infra_caused = True
    history, found = feed([crashed], history)
    assert found == []
    assert types(judge(history, pipeline.run(fail=bad))) == [(td.FAILURE_RATE_SPIKE, "e2e")]
    partly = pipeline.run(fail=bad)
    partly.infra_tests = set(bad[:8])  # 2 of 12 counted tests fail
    assert judge(history, partly) == []


# --- missing tests -------------------------------------------------------------------------------


def test_missing_tests_one_anomaly_per_run_reported_once() -> None:
    pipeline = Pipeline(17)
    history, _ = feed(pipeline.clean(6))
    gone = [SOME, OTHER]
    history, found = feed([pipeline.run(drop=gone)], history)
    assert types(found) == [(td.MISSING_TESTS, "e2e")]
    assert found[0].evidence["missing"] == sorted(gone)
    assert found[0].evidence["observed"] == {"tests": 18, "missing_count": 2}
    _, later = feed([pipeline.run(drop=gone) for _ in range(3)], history)
    assert later == []  # the removal was reported once


def test_no_missing_tests_for_runs_without_tests_or_cancelled() -> None:
    pipeline = Pipeline(18)
    history, _ = feed(pipeline.clean(6))
    crashed = pipeline.run(drop=list(pipeline.base), status=RunStatus.FAILED)
    assert judge(history, crashed) == []
    cancelled = pipeline.run(drop=[SOME], status=RunStatus.CANCELLED)
    assert judge(history, cancelled) == []
    oom = pipeline.run(drop=[SOME])
    oom.infra_caused = True
    assert judge(history, oom) == []


def test_new_test_is_not_expected_until_seen_in_enough_runs() -> None:
    pipeline = Pipeline(19)
    history, _ = feed(pipeline.clean(6))
    pipeline.base["tests.e2e.test_api::test_new"] = 2.0
    history, _ = feed(pipeline.clean(2), history)
    assert judge(history, pipeline.run(drop=["tests.e2e.test_api::test_new"])) == []


# --- history -------------------------------------------------------------------------------------


def test_record_is_idempotent_bounded_and_ordered_by_finished_time() -> None:
    config = TestDetectorsConfig(history_runs=5)
    pipeline = Pipeline(20)
    runs = pipeline.clean(8)
    history, _ = feed(runs, config=config)
    assert [r.run_id for r in history.runs] == [f"github:e2e:{i}" for i in range(3, 8)]
    again = td.record(history, runs[-1].summary(), config)
    assert again == history
    late = pipeline.run(hours=5.5)  # finished between runs 5 and 6, arrives last
    history = td.record(history, late.summary(), config)
    assert [r.run_id for r in history.runs] == [
        "github:e2e:4",
        "github:e2e:5",
        "github:e2e:8",
        "github:e2e:6",
        "github:e2e:7",
    ]
    assert all(t.first_at is None for r in history.runs for t in r.tests.values())


def test_late_run_is_judged_against_runs_before_it() -> None:
    pipeline = Pipeline(21)
    key = max(pipeline.base, key=pipeline.base.__getitem__)
    runs = pipeline.clean(8)
    late = pipeline.run(slow={key: 3.0}, hours=5.5)
    in_order, _ = feed(runs[:6])
    everything, _ = feed(runs)
    found = judge(in_order, late)
    assert types(found) == [(td.DURATION_REGRESSION, key)]
    assert judge(everything, late) == found
    early = pipeline.run(slow={key: 3.0}, hours=2.5)  # only 3 runs before it
    assert judge(everything, early) == []


def test_redelivered_run_counts_once_and_gives_the_same_anomalies() -> None:
    pipeline = Pipeline(22)
    history, _ = feed(pipeline.clean(6))
    bad = pipeline.run(extra_s=2000, retry_pass=[SOME])
    first = judge(history, bad)
    history = td.record(history, bad.summary(), CONFIG)
    assert judge(history, bad) == first  # the run itself is not its own baseline
    assert {a.type for a in first} == {td.FLAKY_TEST, td.RUN_DURATION_REGRESSION}
    assert [Anomaly.from_bytes(a.to_bytes()) for a in first] == first
    assert td.record(history, bad.summary(), CONFIG) == history


def test_duplicate_results_of_one_attempt_count_once() -> None:
    pipeline = Pipeline(23)
    run = pipeline.run(retry_pass=[SOME])
    dupes = [r.model_copy(update={"source": "pytest-log"}) for r in run.results]
    record = td.summarise_run(run.state, run.results + dupes, False)
    assert record.tests_total == 20
    assert record.tests[SOME].statuses == [Status.FAILED, Status.PASSED]
    assert record.tests_failed == 0


def test_history_json_round_trip() -> None:
    pipeline = Pipeline(24)
    runs = pipeline.clean(6)
    runs[2].infra_caused = True
    runs[3].infra_tests = {SOME}
    history, _ = feed(runs)
    restored = td.PipelineHistory.model_validate_json(history.model_dump_json())
    assert restored == history
    probe = pipeline.run(retry_pass=[OTHER], extra_s=2000)
    assert judge(restored, probe) == judge(history, probe)
    assert td.history_key("e2e", "main") == '["e2e", "main"]'


def test_run_without_named_tests_uses_its_counts() -> None:
    pipeline = Pipeline(25)
    run = pipeline.run()
    run.state.tests = TestCounts(total=10, passed=7, failed=2, error=1)
    record = td.summarise_run(run.state, [], False)
    assert (record.tests_total, record.tests_failed, record.tests) == (10, 3, {})
