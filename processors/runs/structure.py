"""Structure validation: does a run look the way its rules say (pure: no Faust, no I/O).

Rules come from config (`structure.rules`); a rule applies to a run when every glob in its
`match` matches (`rule_matches`). `evaluate` returns every violation of every matching rule as an
`Anomaly` of category `structure`, sorted by anomaly id. All time is event time: `now` is the
watermark the caller has reached (None = not known), never the wall clock, so replaying a capture
gives the same anomalies as living through it.

Two kinds of check
    progress    `max_stage_duration_s`, `max_run_duration_s`: checked at any time. A stage or run
                still going is measured up to `now` (when known), so a hung deploy is reported
                while it hangs. The window is [start, start + limit]: it does not depend on when
                the finding was made, so the same finding made while running and again after
                the end has the same anomaly id (and downstream dedup keeps one).
    end         `required_stages`, `stage_order`, `min_tests`, `required_markers`,
                `required_containers`: only once the run is terminal and has settled (event time
                reached its end + `settle_s`, or `final`: no more input will come), because
                test results, markers and pods arrive late. A *cancelled* run is skipped: it was
                stopped on purpose and is expected to be incomplete, so its missing stages, tests
                and markers are not findings. Window: [started_at or created_at or
                first_event_at, finished_at or updated_at].

Judgment calls
    * A duration "exceeds" its limit when strictly longer; `next_deadline` therefore returns
      start + limit + 1µs for a running stage or run (the first event time at which it fires).
    * When several globs of `max_stage_duration_s` match one stage, one limit applies: a key
      equal to the stage name wins, else the first matching glob in the order the config lists
      them (so ``{"*": 600, "e2e": 3600}`` gives e2e an hour and everything else ten minutes).
    * A stage never reported finished in a run that ended is measured up to the run's end (it
      cannot have outlived the run), not up to `now`.
    * A stage whose conclusion is ``skipped`` does not satisfy `required_stages` (the job was
      there, the work was not done); it is listed in the evidence.
    * `stage_order` compares, for consecutive globs that do match a started stage, the first
      start of each; globs with no started stage are skipped (missing stages are
      `missing_stage`'s business). Equal start times are in order. One anomaly per rule lists
      every inversion.
    * `required_markers` are exact marker names (markers are named in config); stage and
      container requirements are globs (`fnmatch.fnmatchcase`, case-sensitive).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from itertools import pairwise
from typing import Any

from processors.anomalies.ids import anomaly_id as shared_anomaly_id
from runtime.config import StructureRule
from schemas.messages import (
    Anomaly,
    AnomalyCategory,
    RunState,
    RunStatus,
    Severity,
    StageState,
)
from schemas.utc import as_utc as _utc

STAGE_TOO_LONG = "stage_too_long"
RUN_TOO_LONG = "run_too_long"
MISSING_STAGE = "missing_stage"
STAGE_ORDER = "stage_order"
TOO_FEW_TESTS = "too_few_tests"
MISSING_MARKER = "missing_marker"
MISSING_CONTAINER = "missing_container"

_TICK = timedelta(microseconds=1)  # the finest step of event time: "strictly after" a limit
_SHOWN = 10  # names listed in a summary before "..."


def rule_matches(rule: StructureRule, run: RunState) -> bool:
    """True when every glob in `rule.match` matches the run (a glob for a missing field fails)."""
    match = rule.match
    fields = (
        (match.pipeline, run.pipeline),
        (match.namespace, run.namespace),
        (match.provider, run.provider),
        (match.repository, run.repository),
        (match.branch, run.branch),
    )
    fields_ok = all(_glob(value, pattern) for pattern, value in fields if pattern is not None)
    return fields_ok and all(
        _glob(run.labels.get(name), pattern) for name, pattern in match.labels.items()
    )


def evaluate(
    run: RunState,
    rules: Sequence[StructureRule],
    now: datetime | None,
    *,
    settle_s: float,
    final: bool = False,
) -> list[Anomaly]:
    """Every violation of every rule matching `run`, sorted by anomaly id (duplicates once).

    `now` is the event-time watermark (None = unknown: running stages are then not measured).
    End-of-run checks need a terminal run that has settled (`now` >= end + `settle_s`, or
    `final`) and are skipped for cancelled runs, which are expected to be incomplete.
    """
    now = _utc(now) if now is not None else None
    found: dict[str, Anomaly] = {}
    for rule in rules:
        if not rule_matches(rule, run):
            continue
        for finding in _progress_findings(rule, run, now):
            found.setdefault(finding.anomaly_id, finding)
        if _end_checks_due(run, now, settle_s=settle_s, final=final):
            for finding in _end_findings(rule, run, now):
                found.setdefault(finding.anomaly_id, finding)
    return [found[key] for key in sorted(found)]


def next_deadline(
    run: RunState,
    rules: Sequence[StructureRule],
    *,
    settle_s: float,
    after: datetime | None = None,
) -> datetime | None:
    """The earliest event time > `after` at which `evaluate` could newly report something
    with no new input: a running stage's or run's start + limit (+1µs, limits are exceeded
    strictly), or a terminal run's end + `settle_s`. None when there is no such time.

    `after` defaults to `run.watermark` (the event time already known to have passed for this
    run), so a deadline that has passed is not returned again.
    """
    reference = after if after is not None else run.watermark
    reference = _utc(reference) if reference is not None else None
    candidates = [
        when
        for rule in rules
        if rule_matches(rule, run)
        for when in _deadlines(rule, run, settle_s)
        if reference is None or when > reference
    ]
    return min(candidates, default=None)


# --- progress checks -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """How long something ran: from `start` to `end`; `running` = measured up to `now`."""

    start: datetime
    end: datetime
    running: bool

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _progress_findings(rule: StructureRule, run: RunState, now: datetime | None) -> list[Anomaly]:
    findings: list[Anomaly] = []
    for stage in run.stages:
        limit = _stage_limit(rule, stage.name)
        span = _stage_span(stage, run, now)
        if limit is not None and span is not None and _exceeds(span, limit[1]):
            findings.append(_stage_too_long(rule, run, stage, limit, span, now))
    if rule.max_run_duration_s is not None:
        span = _run_span(run, now)
        if span is not None and _exceeds(span, rule.max_run_duration_s):
            findings.append(_run_too_long(rule, run, rule.max_run_duration_s, span, now))
    return findings


def _stage_limit(rule: StructureRule, name: str) -> tuple[str, float] | None:
    """(glob, seconds) of the limit for stage `name`: an exact key wins, else the first glob."""
    limits = rule.max_stage_duration_s
    if name in limits:
        return name, limits[name]
    for pattern, seconds in limits.items():
        if fnmatchcase(name, pattern):
            return pattern, seconds
    return None


def _stage_span(stage: StageState, run: RunState, now: datetime | None) -> _Span | None:
    start = _stage_start(stage)
    if start is None:
        return None
    if stage.finished_at is not None:
        return _Span(start, _utc(stage.finished_at), running=False)
    if stage.status.terminal:
        end = (
            start + timedelta(seconds=stage.duration_s)
            if stage.duration_s is not None
            else _utc(stage.updated_at)
        )
        return _Span(start, end, running=False)
    if run.status.terminal:
        # The run ended without a word about this stage: it ran until the run's end at most.
        run_end = _run_end(run)
        return _Span(start, run_end if now is None else min(now, run_end), running=False)
    return None if now is None else _Span(start, now, running=True)


def _stage_start(stage: StageState) -> datetime | None:
    if stage.started_at is not None:
        return _utc(stage.started_at)
    if stage.finished_at is not None and stage.duration_s is not None:
        return _utc(stage.finished_at) - timedelta(seconds=stage.duration_s)
    return None


def _run_span(run: RunState, now: datetime | None) -> _Span | None:
    start = _run_start(run)
    if start is None:
        return None
    if run.finished_at is not None or run.status.terminal:
        return _Span(start, _run_end(run), running=False)
    return None if now is None else _Span(start, now, running=True)


def _run_start(run: RunState) -> datetime | None:
    start = run.started_at or run.created_at
    return _utc(start) if start is not None else None


def _run_end(run: RunState) -> datetime:
    return _utc(run.finished_at or run.updated_at)


def _exceeds(span: _Span, limit_s: float) -> bool:
    return span.end > span.start + timedelta(seconds=limit_s)


def _stage_too_long(
    rule: StructureRule,
    run: RunState,
    stage: StageState,
    limit: tuple[str, float],
    span: _Span,
    now: datetime | None,
) -> Anomaly:
    pattern, limit_s = limit
    verb = "has been running" if span.running else "ran"
    summary = (
        f"stage '{stage.name}' {verb} {_secs(span.seconds)}, rule '{rule.name}' allows at most "
        f"{_secs(limit_s)}"
    )
    evidence = _duration_evidence(rule, span, limit_s) | {
        "stage_glob": pattern,
        "stage_id": stage.stage_id,
        "stage_status": stage.status.value,
    }
    window = (span.start, span.start + timedelta(seconds=limit_s))
    return _anomaly(rule, run, STAGE_TOO_LONG, stage.name, summary, evidence, window, now)


def _run_too_long(
    rule: StructureRule, run: RunState, limit_s: float, span: _Span, now: datetime | None
) -> Anomaly:
    subject = run.pipeline or run.run_id
    verb = "has been running" if span.running else "ran"
    summary = (
        f"run of '{subject}' {verb} {_secs(span.seconds)}, rule '{rule.name}' allows at most "
        f"{_secs(limit_s)}"
    )
    evidence = _duration_evidence(rule, span, limit_s) | {"run_status": run.status.value}
    window = (span.start, span.start + timedelta(seconds=limit_s))
    return _anomaly(rule, run, RUN_TOO_LONG, subject, summary, evidence, window, now)


def _duration_evidence(rule: StructureRule, span: _Span, limit_s: float) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "expected": f"at most {_secs(limit_s)}",
        "observed": round(span.seconds, 3),
        "threshold": limit_s,
        "unit": "s",
        "still_running": span.running,
        "started_at": _iso(span.start),
        "measured_until": _iso(span.end),
    }


# --- end-of-run checks -----------------------------------------------------------------------


def _end_checks_due(run: RunState, now: datetime | None, *, settle_s: float, final: bool) -> bool:
    if not run.status.terminal or run.status is RunStatus.CANCELLED:
        return False
    return final or (now is not None and now >= _run_end(run) + timedelta(seconds=settle_s))


def _end_findings(rule: StructureRule, run: RunState, now: datetime | None) -> list[Anomaly]:
    window = (_utc(run.started_at or run.created_at or run.first_event_at), _run_end(run))
    findings = [
        *_missing_stages(rule, run),
        *_order(rule, run),
        *_too_few_tests(rule, run),
        *_missing_markers(rule, run),
        *_missing_containers(rule, run),
    ]
    return [
        _anomaly(rule, run, kind, subject, summary, evidence, window, now)
        for kind, subject, summary, evidence in findings
    ]


# (type, subject, summary, evidence) of one end-of-run violation; the window is the run's.
_Finding = tuple[str, str, str, dict[str, Any]]


def _missing_stages(rule: StructureRule, run: RunState) -> Iterable[_Finding]:
    names = [stage.name for stage in run.stages]
    for pattern in rule.required_stages:
        matching = [stage for stage in run.stages if fnmatchcase(stage.name, pattern)]
        if any(not _skipped(stage) for stage in matching):
            continue
        skipped = [stage.name for stage in matching]
        seen = f"skipped: {_names(skipped)}" if skipped else f"stages seen: {_names(names)}"
        summary = f"no stage ran matching '{pattern}', rule '{rule.name}' requires one ({seen})"
        evidence = _evidence(rule, pattern, names) | {"skipped": skipped}
        yield MISSING_STAGE, pattern, summary, evidence


def _skipped(stage: StageState) -> bool:
    return (stage.conclusion or "").lower() == "skipped"


def _order(rule: StructureRule, run: RunState) -> Iterable[_Finding]:
    firsts: list[tuple[str, StageState]] = []
    for pattern in rule.stage_order:
        started = [s for s in run.stages if s.started_at and fnmatchcase(s.name, pattern)]
        if started:
            firsts.append((pattern, min(started, key=_started_key)))
    inversions = [
        (before, after)
        for before, after in pairwise(firsts)
        if _started_key(after[1]) < _started_key(before[1])
    ]
    if not inversions:
        return
    (_, first), (_, then) = inversions[0]
    summary = (
        f"stage '{then.name}' started before '{first.name}', rule '{rule.name}' expects the "
        f"order {' -> '.join(rule.stage_order)}"
        + (f" ({len(inversions)} inversions)" if len(inversions) > 1 else "")
    )
    observed = [pattern for pattern, stage in sorted(firsts, key=lambda f: _started_key(f[1]))]
    evidence = _evidence(rule, list(rule.stage_order), observed) | {
        "first_starts": [
            {"glob": pattern, "stage": stage.name, "started_at": _iso(_started_key(stage))}
            for pattern, stage in firsts
        ],
        "inversions": [
            {"expected_first": a[0], "expected_then": b[0], "started_first": b[1].name}
            for a, b in inversions
        ],
    }
    yield STAGE_ORDER, rule.name, summary, evidence


def _started_key(stage: StageState) -> datetime:
    return _utc(stage.started_at) if stage.started_at else datetime.max.replace(tzinfo=UTC)


def _too_few_tests(rule: StructureRule, run: RunState) -> Iterable[_Finding]:
    minimum = rule.min_tests
    if minimum is None or run.tests.total >= minimum:
        return
    summary = (
        f"run reported {run.tests.total} tests, rule '{rule.name}' requires at least {minimum}"
    )
    evidence = _evidence(rule, f"at least {minimum}", run.tests.total, threshold=minimum)
    yield TOO_FEW_TESTS, "tests", summary, evidence | {"tests": run.tests.model_dump()}


def _missing_markers(rule: StructureRule, run: RunState) -> Iterable[_Finding]:
    seen = sorted(run.markers)
    for marker in rule.required_markers:
        if marker in run.markers:
            continue
        summary = (
            f"log marker '{marker}' never seen, rule '{rule.name}' requires it "
            f"(markers seen: {_names(seen)})"
        )
        yield MISSING_MARKER, marker, summary, _evidence(rule, marker, seen)


def _missing_containers(rule: StructureRule, run: RunState) -> Iterable[_Finding]:
    names = sorted({container.name for pod in run.pods for container in pod.containers})
    for pattern in rule.required_containers:
        if any(fnmatchcase(name, pattern) for name in names):
            continue
        summary = (
            f"no container matches '{pattern}', rule '{rule.name}' requires one "
            f"(containers seen: {_names(names)})"
        )
        evidence = _evidence(rule, pattern, names) | {"pods": [pod.name for pod in run.pods]}
        yield MISSING_CONTAINER, pattern, summary, evidence


def _evidence(
    rule: StructureRule, expected: Any, observed: Any, threshold: float | None = None
) -> dict[str, Any]:
    return {"rule": rule.name, "expected": expected, "observed": observed, "threshold": threshold}


# --- deadlines -------------------------------------------------------------------------------


def _deadlines(rule: StructureRule, run: RunState, settle_s: float) -> Iterable[datetime]:
    run_end = _run_end(run) if run.status.terminal else None
    for stage in run.stages:
        limit = _stage_limit(rule, stage.name)
        start = _stage_start(stage)
        if limit is None or start is None or stage.finished_at or stage.status.terminal:
            continue
        when = start + timedelta(seconds=limit[1]) + _TICK
        if run_end is None or when <= run_end:
            yield when
    start = _run_start(run)
    limit_s = rule.max_run_duration_s
    unfinished = run.finished_at is None and not run.status.terminal
    if limit_s is not None and start is not None and unfinished:
        yield start + timedelta(seconds=limit_s) + _TICK
    if _has_end_checks(rule) and run.status.terminal and run.status is not RunStatus.CANCELLED:
        yield _run_end(run) + timedelta(seconds=settle_s)


def _has_end_checks(rule: StructureRule) -> bool:
    return bool(
        rule.required_stages
        or len(rule.stage_order) > 1
        or rule.min_tests is not None
        or rule.required_markers
        or rule.required_containers
    )


# --- building anomalies ----------------------------------------------------------------------


def _anomaly(
    rule: StructureRule,
    run: RunState,
    kind: str,
    subject: str,
    summary: str,
    evidence: dict[str, Any],
    window: tuple[datetime, datetime],
    now: datetime | None,
) -> Anomaly:
    start, end = window
    return Anomaly(
        anomaly_id=anomaly_id(run.run_id, kind, subject, rule.name, start, end),
        run_id=run.run_id,
        category=AnomalyCategory.STRUCTURE,
        type=kind,
        severity=Severity(rule.severity),
        subject=subject,
        summary=summary,
        evidence=evidence,
        window_start=start,
        window_end=end,
        detected_at=now if now is not None else end,
    )


def anomaly_id(
    run_id: str, kind: str, subject: str, rule: str, start: datetime, end: datetime
) -> str:
    """The shared id (processors.anomalies.ids), with the rule's name among its parts."""
    return shared_anomaly_id(run_id, kind, subject, start, end, rule)


def _glob(value: str | None, pattern: str) -> bool:
    return value is not None and fnmatchcase(value, pattern)


def _iso(when: datetime) -> str:
    return _utc(when).isoformat(timespec="microseconds")


def _secs(seconds: float) -> str:
    text = f"{seconds:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "s"


def _names(names: Sequence[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:_SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")
