"""Test detectors: flaky tests, duration regressions, failure-rate spikes, missing tests (pure: no
Faust, no Kafka, no I/O).

History is kept per (pipeline, branch) as a `PipelineHistory`: the last `history_runs` finished
runs, each summarised by `summarise_run` into a `RunRecord` (run facts plus, per test key
``suite::name``, the statuses of every attempt and the duration of the final one). It is a
pydantic model so it can be a Faust table value and be rebuilt from ClickHouse history.

Flow for one finished run::

    current = summarise_run(run, results, infra_caused=..., infra_tests=...)
    anomalies = detect_tests(history, current, config)
    history = record(history, current, config)

`detect_tests` judges the current run against the runs of the history that finished *before* it
(ordered by finished time, then run id), never against runs that finished after it, so a late run
gets the anomalies it would have got had it arrived in order, and replay equals live.

Detectors (category ``test``)
    flaky_test              per test: one of its attempts passed and another failed in this run
                            (pass-on-retry, Trunk), or it passed in one run and failed in another
                            on the same commit (BuildPulse's flips). Needs no baseline.
    duration_regression     per passed test: final-attempt duration above ALL of median x
                            `duration_ratio`, median + `duration_min_delta_s` and median +
                            `duration_mads` x MAD x 1.4826, over the test's passed samples in the
                            history; at least `min_samples` samples; erratic tests (coefficient
                            of variation > `erratic_cv`) skipped.
    run_duration_regression the same test on the run's duration, against succeeded runs.
    failure_rate_spike      (failed + error) / total of this run is at least `failure_rate_spike`
                            above the mean share of the baseline runs AND above their max share.
    missing_tests           one anomaly per run listing every test present in each of the last
                            `missing_after_runs` complete runs and absent now.

Judgment calls
    * Cold start (DESIGN.md "Time": fewer samples need a larger margin, not silence):
      `duration_regression`, `run_duration_regression`, `failure_rate_spike` and
      `missing_tests` judge from `min_samples` samples with the configured margins, and from
      `cold_start_samples` samples with every margin multiplied by `cold_start_factor` (ratio,
      absolute delta and MADs of a duration; the failure share's margin; a missing test must
      have run in *every* earlier complete run). Below `cold_start_samples` they report
      nothing. Samples are the detector's own: passing durations of the test, complete runs.
      `flaky_test` is not gated: a test that failed and then passed on retry is a fact of this
      run, not a deviation from a baseline, so a new pipeline's first flaky test is reported.
    * Infrastructure: a run marked infra-caused (issue 5, attribution) gets no test anomaly at
      all (its failures, slowness and missing tests are the infrastructure's), and it is never
      part of a baseline. A single test marked infra-caused is never flaky or regressed, and is
      left out of failure shares and duration samples.
    * Baseline runs are complete runs: status succeeded or failed, not infra-caused. Cancelled
      and timed-out runs are incomplete by nature (their missing tests and short durations say
      nothing); they stay in the history (for flips on the same commit) but feed no baseline, and
      as the current run they are only checked for flakiness and per-test regressions.
    * Failure-rate spike: Datadog's "5x the mean and above the max" is a ratio rule made for
      durations; on a failure share a ratio is meaningless near zero (5 x 0 = 0). We keep its
      second half: the share must exceed the mean by `failure_rate_spike` (additive) AND exceed
      every baseline run's share, so a pipeline that already had runs this bad is not a spike.
    * MAD = 0 (identical samples): the scaled MAD is floored at 5% of the median (CI timing is
      never better than that), so a tiny deviation never passes the MAD guard alone; the ratio and
      absolute guards still apply on top.
    * Missing tests: one anomaly per run (subject = pipeline) with the keys in evidence, because
      a deleted file or broken collection drops many tests at once and one alert per test would
      flood. A test stops being reported once a run without it enters the reference window, so
      a removed test is reported once. Only when the current run has named tests at all and is
      complete: a run that crashed before its tests is a structure/infra finding.
    * Duplicates of one attempt (the same test and attempt number from two sources, e.g. the log
      and JUnit XML) count once: the latest event time wins, then the source name.
    * Anomaly ids: 32 hex chars of sha256 over JSON [run_id, type, subject, window start, window
      end]. Window = the test's first..last attempt event time for per-test anomalies, the run's
      start..finish otherwise. `detected_at` = the run's finish time.

Size: each stored test costs its key plus ~100 bytes of JSON per run (~50 with
``exclude_defaults``; event times are stripped on `record`): 20 runs x 1000 tests is ~2.6 MB,
above Kafka's default 1 MB message size for a Faust changelog, so large suites need a bigger
``max.message.bytes`` or fewer history runs.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from processors.anomalies.ids import anomaly_id
from runtime.config import TestDetectorsConfig
from schemas.messages import (
    Anomaly,
    AnomalyCategory,
    RunState,
    RunStatus,
    Severity,
    TestResult,
    TestStatus,
)
from schemas.utc import as_utc as _utc

FLAKY_TEST = "flaky_test"
DURATION_REGRESSION = "duration_regression"
RUN_DURATION_REGRESSION = "run_duration_regression"
FAILURE_RATE_SPIKE = "failure_rate_spike"
MISSING_TESTS = "missing_tests"

MAD_SCALE = 1.4826  # MAD x this estimates the standard deviation of normal data
MAD_FLOOR_SHARE = 0.05  # scaled MAD is at least this share of the median
_COMPLETE = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED})
_FAILING = frozenset({TestStatus.FAILED, TestStatus.ERROR})
_LISTED = 100  # test keys listed in evidence before cutting
_SHOWN = 5  # test keys named in a summary


# --- models --------------------------------------------------------------------------------------


class TestRecord(BaseModel):
    """One test in one run: every attempt's status (in attempt order) and the final duration."""

    __test__ = False  # not a pytest test class

    statuses: list[TestStatus] = Field(min_length=1)
    duration_s: float | None = Field(default=None, description="Of the final attempt.")
    infra_caused: bool = False
    first_at: AwareDatetime | None = Field(
        default=None, description="Event time of the first attempt (dropped when stored)."
    )
    last_at: AwareDatetime | None = Field(
        default=None, description="Event time of the final attempt (dropped when stored)."
    )

    @property
    def status(self) -> TestStatus:
        return self.statuses[-1]

    @property
    def attempts(self) -> int:
        return len(self.statuses)

    @property
    def failing(self) -> bool:
        return self.status in _FAILING


class RunRecord(BaseModel):
    """What the test detectors keep of one finished run."""

    run_id: str
    pipeline: str | None = None
    branch: str | None = None
    commit_sha: str | None = None
    status: RunStatus
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime
    duration_s: float | None = None
    infra_caused: bool = False
    tests_total: int = Field(default=0, description="Tests counted (final status), skipped too.")
    tests_failed: int = Field(default=0, description="Final status failed or error.")
    tests: dict[str, TestRecord] = Field(default_factory=dict)

    @property
    def order_key(self) -> tuple[datetime, str]:
        return (_utc(self.finished_at), self.run_id)

    @property
    def complete(self) -> bool:
        return self.status in _COMPLETE and not self.infra_caused


class PipelineHistory(BaseModel):
    """The last runs of one (pipeline, branch), oldest first (by finished time, then run id)."""

    pipeline: str | None = None
    branch: str | None = None
    runs: list[RunRecord] = Field(default_factory=list)


def history_key(pipeline: str | None, branch: str | None, scope: str | None = None) -> str:
    """Table key of a history: JSON of [pipeline, branch] (and its scope, see `history_scope`),
    so no separator can be faked."""
    return json.dumps([pipeline, branch] if scope is None else [pipeline, branch, scope])


_CLUSTER_PROVIDERS = frozenset({"kubernetes", "tekton", "argo"})


def history_scope(run: RunState) -> str | None:
    """What tells two pipelines of the same name apart: the repository of a CI system's run
    (two repositories' workflows both named "CI"), else the namespace of a run that only the
    cluster describes (CronJob ``nightly`` in team-a and in team-b). Without it their runs would
    share one history and judge each other (issue 12, cross-talk)."""
    if run.repository:
        return f"repo:{run.repository}"
    if run.provider in _CLUSTER_PROVIDERS and run.namespace:
        return f"ns:{run.namespace}"
    return None


def result_key(suite: str | None, name: str) -> str:
    """A test's identity across runs: ``suite::name`` (just the name when there is no suite)."""
    return f"{suite}::{name}" if suite else name


# --- summarising and recording -------------------------------------------------------------------


def summarise_run(
    run: RunState,
    results: Sequence[TestResult],
    infra_caused: bool,
    infra_tests: Collection[str] = (),
) -> RunRecord:
    """The history entry of a finished run. Results of other runs are ignored; `infra_tests`
    are the keys of tests attribution marked infrastructure-caused. When no result names a test,
    the run's counts (`run.tests`) stand in for the totals."""
    per_test: dict[str, dict[int, TestResult]] = {}
    for result in results:
        if result.run_id != run.run_id:
            continue
        attempts = per_test.setdefault(result_key(result.suite, result.name), {})
        kept = attempts.get(result.attempt)
        if kept is None or _newer(result, kept):
            attempts[result.attempt] = result
    tests = {
        key: _test_record(attempts, infra=key in infra_tests)
        for key, attempts in sorted(per_test.items())
    }
    if tests:
        total = len(tests)
        failed = sum(1 for test in tests.values() if test.failing)
    else:
        total, failed = run.tests.total, run.tests.failed + run.tests.error
    finished = run.finished_at or run.updated_at
    return RunRecord(
        run_id=run.run_id,
        pipeline=run.pipeline,
        branch=run.branch,
        commit_sha=run.commit_sha,
        status=run.status,
        started_at=run.started_at or run.created_at,
        finished_at=finished,
        duration_s=_run_duration(run, finished),
        infra_caused=infra_caused,
        tests_total=total,
        tests_failed=failed,
        tests=tests,
    )


def record(
    history: PipelineHistory, current: RunRecord, config: TestDetectorsConfig
) -> PipelineHistory:
    """The history with `current` in its place by finished time (replacing an earlier record of
    the same run id, so a redelivered run counts once), cut to the newest `history_runs`."""
    stored = current.model_copy(
        update={
            "tests": {
                key: test.model_copy(update={"first_at": None, "last_at": None})
                for key, test in current.tests.items()
            }
        }
    )
    runs = [run for run in history.runs if run.run_id != current.run_id]
    runs.append(stored)
    runs.sort(key=lambda run: run.order_key)
    return PipelineHistory(
        pipeline=history.pipeline if history.pipeline is not None else current.pipeline,
        branch=history.branch if history.branch is not None else current.branch,
        runs=runs[-config.history_runs :],
    )


# --- detection -----------------------------------------------------------------------------------


def detect_tests(
    history: PipelineHistory, current: RunRecord, config: TestDetectorsConfig
) -> list[Anomaly]:
    """Test anomalies of `current`, judged against the history runs that finished before it.
    Sorted by anomaly id; deterministic for the same input."""
    if current.infra_caused:
        return []
    prior = _prior_runs(history, current, config)
    found = list(_flaky(prior, current))
    if len(prior) >= min(config.min_samples, config.cold_start_samples):
        found.extend(_test_regressions(prior, current, config))
        if current.status in _COMPLETE:
            found.extend(_run_regression(prior, current, config))
            found.extend(_failure_rate_spike(prior, current, config))
            found.extend(_missing_tests(prior, current, config))
    unique = {anomaly.anomaly_id: anomaly for anomaly in found}
    return [unique[key] for key in sorted(unique)]


def _prior_runs(
    history: PipelineHistory, current: RunRecord, config: TestDetectorsConfig
) -> list[RunRecord]:
    before = [
        run
        for run in history.runs
        if run.run_id != current.run_id and run.order_key < current.order_key
    ]
    before.sort(key=lambda run: run.order_key)
    return before[-config.history_runs :]


def _flaky(prior: Sequence[RunRecord], current: RunRecord) -> Iterable[Anomaly]:
    for key, test in current.tests.items():
        if test.infra_caused:
            continue
        reasons: list[str] = []
        evidence: dict[str, Any] = {
            "observed": {"statuses": [str(s) for s in test.statuses], "attempts": test.attempts},
        }
        if TestStatus.PASSED in test.statuses and any(s in _FAILING for s in test.statuses):
            reasons.append("pass_on_retry" if test.status == TestStatus.PASSED else "mixed")
        flips = _flips(prior, current, key, test)
        if flips:
            reasons.append("flip_on_commit")
            evidence["flips"] = flips
        if not reasons:
            continue
        evidence["reasons"] = reasons
        evidence["run_ids"] = [current.run_id, *(flip["run_id"] for flip in flips)]
        yield _anomaly(
            current,
            FLAKY_TEST,
            Severity.WARNING,
            key,
            f"Flaky test {key}: {_flaky_how(current, test, reasons, flips)}",
            evidence,
            _test_window(current, test),
        )


def _flaky_how(
    current: RunRecord, test: TestRecord, reasons: Sequence[str], flips: Sequence[dict[str, Any]]
) -> str:
    attempts = "/".join(str(status) for status in test.statuses)
    if "pass_on_retry" in reasons:
        return f"failed then passed on retry ({attempts})"
    if "mixed" in reasons:
        return f"passed and failed in the same run ({attempts})"
    first = flips[0]
    return (
        f"{test.status} here, {first['status']} in run {first['run_id']}"
        f" on the same commit {_short(current.commit_sha)}"
    )


def _flips(
    prior: Sequence[RunRecord], current: RunRecord, key: str, test: TestRecord
) -> list[dict[str, Any]]:
    """Earlier runs on the same commit whose final status of this test is the opposite (passed
    vs failed/error); infra-caused failures are no evidence."""
    if current.commit_sha is None or not (test.status == TestStatus.PASSED or test.failing):
        return []
    flips: list[dict[str, Any]] = []
    for run in prior:
        if run.commit_sha != current.commit_sha or run.infra_caused:
            continue
        other = run.tests.get(key)
        if other is None or other.infra_caused:
            continue
        if (test.status == TestStatus.PASSED and other.failing) or (
            test.failing and other.status == TestStatus.PASSED
        ):
            flips.append({"run_id": run.run_id, "status": str(other.status)})
    return flips


def _test_regressions(
    prior: Sequence[RunRecord], current: RunRecord, config: TestDetectorsConfig
) -> Iterable[Anomaly]:
    for key, test in current.tests.items():
        if test.infra_caused or test.status != TestStatus.PASSED or test.duration_s is None:
            continue
        samples = [
            other.duration_s
            for run in prior
            if run.complete
            for other in [run.tests.get(key)]
            if other is not None
            and not other.infra_caused
            and other.status == TestStatus.PASSED
            and other.duration_s is not None
        ]
        verdict = _judge_duration(test.duration_s, samples, config)
        if verdict is None:
            continue
        yield _anomaly(
            current,
            DURATION_REGRESSION,
            Severity.WARNING,
            key,
            f"Test {key} took {_secs(test.duration_s)}{_times(verdict)} its median"
            f" {_secs(verdict['baseline']['median_s'])} over"
            f" {verdict['baseline']['samples']} runs",
            verdict,
            _test_window(current, test),
        )


def _run_regression(
    prior: Sequence[RunRecord], current: RunRecord, config: TestDetectorsConfig
) -> Iterable[Anomaly]:
    if current.duration_s is None:
        return
    samples = [
        run.duration_s
        for run in prior
        if run.complete and run.status == RunStatus.SUCCEEDED and run.duration_s is not None
    ]
    verdict = _judge_duration(current.duration_s, samples, config)
    if verdict is None:
        return
    subject = current.pipeline or "unknown"
    yield _anomaly(
        current,
        RUN_DURATION_REGRESSION,
        Severity.WARNING,
        subject,
        f"Run of {subject} took {_secs(current.duration_s)}{_times(verdict)} the median"
        f" {_secs(verdict['baseline']['median_s'])} of {verdict['baseline']['samples']}"
        " succeeded runs",
        verdict,
        _run_window(current),
    )


def cold_factor(samples: int, config: TestDetectorsConfig) -> float | None:
    """How much the margins grow with `samples` samples: 1 from `min_samples` on, the
    `cold_start_factor` from `cold_start_samples` on (fewer samples, larger margin), None
    below (too few to judge at all)."""
    if samples >= config.min_samples:
        return 1.0
    if samples >= config.cold_start_samples:
        return config.cold_start_factor
    return None


def _judge_duration(
    observed: float, samples: Sequence[float], config: TestDetectorsConfig
) -> dict[str, Any] | None:
    """Evidence when `observed` is above all three guards, None otherwise (too few samples,
    erratic samples, or not slow enough). With few samples every guard is wider (cold start)."""
    samples = samples[-config.history_runs :]
    factor = cold_factor(len(samples), config)
    if factor is None:
        return None
    median = statistics.median(samples)
    mad = statistics.median(abs(value - median) for value in samples)
    mean = statistics.fmean(samples)
    cv = statistics.pstdev(samples) / mean if mean > 0 else 0.0
    if cv > config.erratic_cv:
        return None
    spread = max(MAD_SCALE * mad, MAD_FLOOR_SHARE * median)
    guards = {
        "ratio": median * config.duration_ratio * factor,
        "absolute": median + config.duration_min_delta_s * factor,
        "mad": median + config.duration_mads * factor * spread,
    }
    threshold = max(guards.values())
    if not observed > threshold:
        return None
    return {
        "observed_s": observed,
        "threshold_s": threshold,
        "guards_s": guards,
        "ratio": observed / median if median > 0 else None,
        "baseline": {
            "median_s": median,
            "mad_s": mad,
            "scaled_mad_s": spread,
            "cv": cv,
            "samples": len(samples),
        },
        "margin_factor": factor,
    }


def _failure_rate_spike(
    prior: Sequence[RunRecord], current: RunRecord, config: TestDetectorsConfig
) -> Iterable[Anomaly]:
    observed = _failed_share(current)
    if observed is None:
        return
    baseline = [
        (run.run_id, share)
        for run in prior
        if run.complete
        for share in [_failed_share(run)]
        if share is not None
    ]
    factor = cold_factor(len(baseline), config)
    if factor is None:
        return
    shares = [share for _, share in baseline]
    mean, top = statistics.fmean(shares), max(shares)
    margin = config.failure_rate_spike * factor
    threshold = max(mean + margin, top)
    # A float tolerance so that 0.05 + 0.3 equals 0.35 when the shares say so.
    if observed < mean + margin - 1e-9 or observed <= top:
        return
    failing = sorted(key for key, test in current.tests.items() if test.failing)
    failed, total = _counted(current)
    subject = current.pipeline or "unknown"
    yield _anomaly(
        current,
        FAILURE_RATE_SPIKE,
        Severity.ERROR,
        subject,
        f"{failed} of {total} tests failed in {subject} ({observed:.0%}), baseline"
        f" {mean:.0%} (max {top:.0%}) over {len(baseline)} runs",
        {
            "observed": {"failed": failed, "total": total, "share": observed},
            "baseline": {"mean_share": mean, "max_share": top, "runs": len(baseline)},
            "threshold_share": threshold,
            "margin_factor": factor,
            "failed_tests": failing[:_LISTED],
            "baseline_run_ids": [run_id for run_id, _ in baseline],
        },
        _run_window(current),
    )


def _counted(run: RunRecord) -> tuple[int, int]:
    """(failed, total) without the tests attribution marked infrastructure-caused."""
    infra = [test for test in run.tests.values() if test.infra_caused]
    failed = run.tests_failed - sum(1 for test in infra if test.failing)
    return failed, run.tests_total - len(infra)


def _failed_share(run: RunRecord) -> float | None:
    failed, total = _counted(run)
    return failed / total if total > 0 else None


def _missing_tests(
    prior: Sequence[RunRecord], current: RunRecord, config: TestDetectorsConfig
) -> Iterable[Anomaly]:
    if not current.tests:
        return
    complete = [run for run in prior if run.complete and run.tests]
    if cold_factor(len(complete), config) != 1.0:
        # Cold start: the test must have run in every earlier complete run (at least
        # missing_after_runs of them), not only in the last missing_after_runs.
        if cold_factor(len(complete), config) is None:
            return
        reference = complete
    else:
        reference = complete[-config.missing_after_runs :]
    if len(reference) < config.missing_after_runs:
        return
    expected = set.intersection(*(set(run.tests) for run in reference))
    missing = sorted(expected - set(current.tests))
    if not missing:
        return
    subject = current.pipeline or "unknown"
    shown = ", ".join(missing[:_SHOWN]) + (
        f", ... ({len(missing)} in all)" if len(missing) > _SHOWN else ""
    )
    yield _anomaly(
        current,
        MISSING_TESTS,
        Severity.WARNING,
        subject,
        f"{len(missing)} test(s) of {subject} seen in each of the last {len(reference)} runs"
        f" did not run: {shown}",
        {
            "observed": {"tests": len(current.tests), "missing_count": len(missing)},
            "missing": missing[:_LISTED],
            "baseline": {"tests": len(expected), "runs": len(reference)},
            "threshold_runs": config.missing_after_runs,
            "reference_run_ids": [run.run_id for run in reference],
        },
        _run_window(current),
    )


# --- helpers -------------------------------------------------------------------------------------


def _test_record(attempts: dict[int, TestResult], *, infra: bool) -> TestRecord:
    ordered = [attempts[number] for number in sorted(attempts)]
    times = [_utc(result.event_time) for result in ordered]
    return TestRecord(
        statuses=[result.status for result in ordered],
        duration_s=ordered[-1].duration_s,
        infra_caused=infra,
        first_at=min(times),
        last_at=max(times),
    )


def _newer(result: TestResult, kept: TestResult) -> bool:
    return (_utc(result.event_time), result.source) > (_utc(kept.event_time), kept.source)


def _run_duration(run: RunState, finished: datetime) -> float | None:
    if run.duration_s is not None:
        return run.duration_s
    started = run.started_at or run.created_at
    if started is None:
        return None
    return max(0.0, (_utc(finished) - _utc(started)).total_seconds())


def _run_window(run: RunRecord) -> tuple[datetime, datetime]:
    end = _utc(run.finished_at)
    start = _utc(run.started_at) if run.started_at is not None else end
    return (min(start, end), end)


def _test_window(run: RunRecord, test: TestRecord) -> tuple[datetime, datetime]:
    if test.first_at is None or test.last_at is None:
        return _run_window(run)
    return (_utc(test.first_at), _utc(test.last_at))


def _anomaly(
    run: RunRecord,
    kind: str,
    severity: Severity,
    subject: str,
    summary: str,
    evidence: dict[str, Any],
    window: tuple[datetime, datetime],
) -> Anomaly:
    start, end = window
    evidence = {
        "pipeline": run.pipeline,
        "branch": run.branch,
        "commit_sha": run.commit_sha,
        **evidence,
    }
    return Anomaly(
        anomaly_id=anomaly_id(run.run_id, kind, subject, start, end),
        run_id=run.run_id,
        category=AnomalyCategory.TEST,
        type=kind,
        severity=severity,
        subject=subject,
        summary=summary,
        evidence=evidence,
        window_start=start,
        window_end=end,
        detected_at=_utc(run.finished_at),
    )


def _iso(when: datetime) -> str:
    return _utc(when).isoformat(timespec="microseconds")


def _secs(seconds: float) -> str:
    text = f"{seconds:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "s"


def _times(verdict: dict[str, Any]) -> str:
    ratio = verdict["ratio"]
    return f", {ratio:.1f}x" if ratio is not None else ", above"


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "?"
