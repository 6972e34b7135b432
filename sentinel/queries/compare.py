"""Compare a run with a known-good one: stage durations, changed tests, new log templates,
restarted pods (pure, but for the SQL that finds the baseline)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from processors.logs.templates import LogTemplateMiner
from schemas.messages import RunState
from schemas.utc import as_utc
from sentinel.queries.common import TIME_PARAM
from sentinel.queries.logs import MINED_LEVELS, is_error
from sentinel.queries.models import (
    Comparison,
    LogLineView,
    RestartedPod,
    StageDelta,
    TemplateCount,
    TestCase,
    TestChange,
)

NEW_TEMPLATES_SHOWN = 50


def baseline_sql(database: str, run: RunState) -> tuple[str, dict[str, Any]]:
    """The pipeline's last successful run on the same branch that began before `run`."""
    sql = (
        f"SELECT * FROM {database}.runs FINAL WHERE status = 'succeeded'"
        " AND provider = {provider:String} AND ifNull(repository, '') = {repository:String}"
        " AND ifNull(pipeline, '') = {pipeline:String} AND ifNull(branch, '') = {branch:String}"
        " AND run_id != {run_id:String}"
        f" AND ifNull(created_at, first_event_at) < {{before:{TIME_PARAM}}}"
        " ORDER BY ifNull(created_at, first_event_at) DESC, run_id DESC LIMIT 1"
    )
    params = {
        "provider": run.provider,
        "repository": run.repository or "",
        "pipeline": run.pipeline or "",
        "branch": run.branch or "",
        "run_id": run.run_id,
        "before": run_began(run),
    }
    return sql, params


def run_began(run: RunState) -> datetime:
    return as_utc(run.created_at or run.first_event_at)


def no_baseline(run: RunState, note: str) -> Comparison:
    return Comparison(
        run_id=run.run_id,
        baseline_run_id=None,
        baseline_chosen="none",
        note=note,
        duration_s=run.duration_s,
    )


def compare(
    run: RunState,
    base: RunState,
    chosen: str,
    tests: tuple[Sequence[TestCase], Sequence[TestCase]],
    lines: tuple[Sequence[LogLineView], Sequence[LogLineView]],
) -> Comparison:
    """`run` against `base`; `tests` and `lines` are (run's, baseline's)."""
    return Comparison(
        run_id=run.run_id,
        baseline_run_id=base.run_id,
        baseline_chosen=chosen,
        duration_s=run.duration_s,
        baseline_duration_s=base.duration_s,
        stages=stage_deltas(run, base),
        tests_changed=test_changes(*tests),
        new_templates=new_templates(*lines),
        restarted_pods=restarted_pods(run),
    )


def stage_deltas(run: RunState, base: RunState) -> list[StageDelta]:
    before = {stage.name: stage for stage in base.stages}
    names = [stage.name for stage in run.stages]
    names += [name for name in before if name not in names]
    now = {stage.name: stage for stage in run.stages}
    out = []
    for name in names:
        mine, theirs = now.get(name), before.get(name)
        duration = mine.duration_s if mine else None
        baseline = theirs.duration_s if theirs else None
        out.append(
            StageDelta(
                name=name,
                status=mine.status.value if mine else None,
                baseline_status=theirs.status.value if theirs else None,
                duration_s=duration,
                baseline_duration_s=baseline,
                delta_s=None if duration is None or baseline is None else duration - baseline,
            )
        )
    return out


def test_changes(run: Sequence[TestCase], base: Sequence[TestCase]) -> list[TestChange]:
    """Tests whose outcome differs, plus new and missing ones; failures first. A test that
    passed only after failing (flaky) differs from one that simply passed."""
    now = {case.key: outcome(case) for case in run}
    before = {case.key: outcome(case) for case in base}
    changes = [
        TestChange(key=key, status=now.get(key, "missing"), baseline_status=before.get(key, "new"))
        for key in sorted(now.keys() | before.keys())
        if now.get(key) != before.get(key)
    ]
    order = {"failed": 0, "error": 0, "flaky": 1, "missing": 2}
    return sorted(changes, key=lambda c: (order.get(c.status, 2), c.key))


def outcome(case: TestCase) -> str:
    """The final status, or "flaky" for a final pass after a failure in the same run."""
    if case.flaky and case.status.value == "passed":
        return "flaky"
    return case.status.value


def new_templates(run: Sequence[LogLineView], base: Sequence[LogLineView]) -> list[TemplateCount]:
    """Warning and error templates of `run` that no line of `base` has. Both runs are mined
    by one miner, so a template is the same cluster in both whatever line founded it."""
    mine = [line for line in run if line.level in MINED_LEVELS]
    theirs = [line for line in base if line.level in MINED_LEVELS]
    if not mine:
        return []
    mined = LogTemplateMiner().mine([line.line for line in theirs] + [line.line for line in mine])
    known = {template_id for template_id, _ in mined[: len(theirs)]}
    found: dict[str, TemplateCount] = {}
    for line, (template_id, template) in zip(mine, mined[len(theirs) :], strict=True):
        if template_id in known:
            continue
        count = found.setdefault(
            template_id,
            TemplateCount(template_id=template_id, template=template, lines=0, errors=0),
        )
        count.lines += 1
        count.errors += is_error(line)
    ranked = sorted(found.values(), key=lambda c: (-c.errors, -c.lines, c.template_id))
    return ranked[:NEW_TEMPLATES_SHOWN]


def restarted_pods(run: RunState) -> list[RestartedPod]:
    """Containers that restarted or were OOMKilled in `run`."""
    out = []
    for pod in run.pods:
        for container in pod.containers:
            reason = container.last_reason or (
                container.reason if container.reason == "OOMKilled" else None
            )
            if container.restarts > 0 or reason == "OOMKilled":
                out.append(
                    RestartedPod(
                        name=pod.name,
                        container=container.name,
                        restarts=container.restarts,
                        reason=reason,
                    )
                )
    return sorted(out, key=lambda p: (p.name, p.container))
