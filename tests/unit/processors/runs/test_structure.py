"""Structure rules: matching, each rule kind firing and not, progress vs end checks, settle,
cancelled runs, deterministic ids, and deadlines that say when to look again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.runs.structure import evaluate, next_deadline, rule_matches
from runtime.config import RuleMatch, StructureRule
from schemas.messages import (
    Anomaly,
    AnomalyCategory,
    ContainerState,
    PodState,
    RunState,
    RunStatus,
    Severity,
    StageState,
    TestCounts,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SETTLE = 60.0


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stage(
    name: str,
    start: float | None,
    end: float | None = None,
    *,
    status: RunStatus | None = None,
    conclusion: str | None = None,
) -> StageState:
    done = end is not None
    return StageState(
        stage_id=f"job-{name}",
        name=name,
        status=status or (RunStatus.SUCCEEDED if done else RunStatus.RUNNING),
        conclusion=conclusion or ("success" if done else None),
        started_at=at(start) if start is not None else None,
        finished_at=at(end) if end is not None else None,
        duration_s=(end - start) * 60 if end is not None and start is not None else None,
        updated_at=at(end if end is not None else start or 0),
    )


def github_run(
    stages: list[StageState],
    *,
    status: RunStatus = RunStatus.SUCCEEDED,
    end: float | None = 30,
    **fields: Any,
) -> RunState:
    """A GitHub Actions workflow run of acme/shop on main, started at T0."""
    values: dict[str, Any] = {
        "run_id": "github:acme/shop:100:1",
        "provider": "github",
        "provider_run_id": "100",
        "repository": "acme/shop",
        "pipeline": "CI",
        "branch": "main",
        "status": status,
        "conclusion": "success" if status is RunStatus.SUCCEEDED else None,
        "created_at": at(-1),
        "started_at": at(0),
        "finished_at": at(end) if end is not None and status.terminal else None,
        "stages": stages,
        "labels": {"team": "payments"},
        "tests": TestCounts(total=120, passed=118, skipped=2),
        "markers": {"tests-started": at(5), "deploy-ok": at(28)},
        "first_event_at": at(-1),
        "updated_at": at(end if end is not None else 10),
    }
    values.update(fields)
    return RunState(**values)


def healthy_github() -> RunState:
    return github_run([stage("build", 0, 5), stage("test", 5, 20), stage("deploy", 20, 30)])


def container(name: str, *, init: bool = False) -> ContainerState:
    return ContainerState(name=name, init=init, state="terminated", reason="Completed", exit_code=0)


def tekton_run(containers: list[ContainerState], **fields: Any) -> RunState:
    """A Tekton PipelineRun seen through Kubernetes: one TaskRun pod and its step containers."""
    pod = PodState(
        uid="0f9a7c1e-0000-4000-8000-000000000001",
        namespace="ci",
        name="release-x7k2p-build-pod",
        phase="Succeeded",
        containers=containers,
        started_at=at(0),
        finished_at=at(12),
        updated_at=at(12),
    )
    values: dict[str, Any] = {
        "run_id": "tekton:ci/release-x7k2p",
        "provider": "tekton",
        "provider_run_id": "release-x7k2p",
        "pipeline": "release",
        "namespace": "ci",
        "status": RunStatus.SUCCEEDED,
        "started_at": at(0),
        "finished_at": at(12),
        "labels": {"tekton.dev/pipeline": "release", "app.kubernetes.io/part-of": "shop"},
        "pods": [pod],
        "stages": [stage("build", 0, 12)],
        "first_event_at": at(0),
        "updated_at": at(12),
    }
    values.update(fields)
    return RunState(**values)


def rule(**fields: Any) -> StructureRule:
    fields.setdefault("name", "shape")
    match = fields.pop("match", None)
    if match is not None:
        fields["match"] = RuleMatch(**match)
    return StructureRule(**fields)


def settled(run: RunState) -> datetime:
    end = run.finished_at or run.updated_at
    return end + timedelta(seconds=SETTLE)


def check(
    run: RunState, *rules: StructureRule, now: datetime | None = None, final: bool = False
) -> list[Anomaly]:
    when = now if now is not None or final else settled(run)
    return evaluate(run, list(rules), when, settle_s=SETTLE, final=final)


def types(anomalies: list[Anomaly]) -> list[tuple[str, str]]:
    return sorted((a.type, a.subject) for a in anomalies)


# --- matching ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({}, True),
        ({"pipeline": "CI"}, True),
        ({"pipeline": "C*", "repository": "acme/*", "branch": "main", "provider": "git*"}, True),
        ({"pipeline": "ci"}, False),  # case-sensitive
        ({"branch": "release/*"}, False),
        ({"namespace": "*"}, False),  # the run has no namespace: a glob for it cannot match
        ({"labels": {"team": "pay*"}}, True),
        ({"labels": {"team": "search"}}, False),
        ({"labels": {"owner": "*"}}, False),  # label absent
        ({"pipeline": "CI", "labels": {"team": "payments"}, "branch": "dev"}, False),
    ],
)
def test_rule_matches_every_given_glob(match: dict[str, Any], expected: bool) -> None:
    assert rule_matches(rule(match=match), healthy_github()) is expected


def test_rule_matches_tekton_labels_and_namespace() -> None:
    run = tekton_run([container("step-build")])
    assert rule_matches(
        rule(match={"namespace": "ci", "labels": {"tekton.dev/pipeline": "rel*"}}), run
    )
    assert not rule_matches(rule(match={"namespace": "prod"}), run)


def test_rules_that_do_not_match_report_nothing() -> None:
    run = github_run([stage("build", 0, 5)])
    strict = rule(match={"pipeline": "nightly"}, required_stages=["deploy"], min_tests=1000)
    assert check(run, strict) == []


# --- healthy run ---------------------------------------------------------------------------


def test_healthy_run_passes_every_rule_kind() -> None:
    everything = rule(
        required_stages=["build", "test", "deploy*"],
        stage_order=["build", "test", "deploy"],
        max_run_duration_s=3600,
        max_stage_duration_s={"*": 1200},
        min_tests=100,
        required_markers=["tests-started", "deploy-ok"],
    )
    assert check(healthy_github(), everything, final=True) == []


# --- progress checks -----------------------------------------------------------------------


def test_stage_too_long_after_it_finished() -> None:
    run = github_run([stage("build", 0, 5), stage("deploy", 6, 20)], end=20)
    [found] = check(run, rule(name="e2e-shape", max_stage_duration_s={"deploy": 600}))
    assert (found.type, found.subject, found.category) == (
        "stage_too_long",
        "deploy",
        AnomalyCategory.STRUCTURE,
    )
    assert found.summary == "stage 'deploy' ran 840s, rule 'e2e-shape' allows at most 600s"
    assert found.evidence["rule"] == "e2e-shape"
    assert found.evidence["observed"] == 840
    assert found.evidence["threshold"] == 600
    assert found.evidence["still_running"] is False
    assert (found.window_start, found.window_end) == (at(6), at(16))
    assert found.severity is Severity.WARNING
    assert found.run_id == run.run_id


def test_stage_within_limit_and_exactly_at_limit_is_fine() -> None:
    run = github_run([stage("deploy", 0, 10)], end=10)
    assert check(run, rule(max_stage_duration_s={"deploy": 600})) == []
    assert check(run, rule(max_stage_duration_s={"deploy": 900})) == []


def test_stage_timeout_while_still_running_has_the_same_id_as_after_the_end() -> None:
    limit = rule(name="e2e-shape", max_stage_duration_s={"deploy*": 600}, severity="error")
    running = github_run(
        [stage("build", 0, 5), stage("deploy-prod", 5)], status=RunStatus.RUNNING, end=None
    )
    assert check(running, limit, now=at(14)) == []  # 9 minutes in
    [early] = check(running, limit, now=at(19))
    assert early.evidence["still_running"] is True
    assert early.summary.startswith("stage 'deploy-prod' has been running 840s")
    assert early.detected_at == at(19)
    assert early.severity is Severity.ERROR

    finished = github_run([stage("build", 0, 5), stage("deploy-prod", 5, 40)], end=40)
    [late] = check(finished, limit)
    assert late.evidence["still_running"] is False
    assert late.anomaly_id == early.anomaly_id
    assert (late.window_start, late.window_end) == (early.window_start, early.window_end)


def test_running_stage_is_not_measured_without_a_watermark() -> None:
    running = github_run([stage("deploy", 0)], status=RunStatus.RUNNING, end=None)
    assert evaluate(running, [rule(max_stage_duration_s={"*": 60})], None, settle_s=SETTLE) == []


def test_exact_stage_key_beats_a_catch_all_glob() -> None:
    run = github_run([stage("build", 0, 15), stage("e2e", 15, 55)], end=55)
    limits = rule(max_stage_duration_s={"*": 600, "e2e": 3600})
    assert types(check(run, limits)) == [("stage_too_long", "build")]
    first_glob_wins = rule(max_stage_duration_s={"e*": 3600, "*": 600})
    assert types(check(run, first_glob_wins)) == [("stage_too_long", "build")]


def test_unfinished_stage_of_an_ended_run_is_measured_to_the_run_end() -> None:
    # The workflow timed out; GitHub never sent the deploy job's completion.
    run = github_run(
        [stage("deploy", 0)], status=RunStatus.TIMED_OUT, end=30, conclusion="timed_out"
    )
    [found] = check(run, rule(max_stage_duration_s={"deploy": 600}), now=at(500))
    assert found.evidence["observed"] == 1800
    assert found.evidence["still_running"] is False


def test_run_too_long_running_and_finished_share_an_id() -> None:
    limit = rule(name="budget", max_run_duration_s=1800)
    running = github_run([stage("test", 0)], status=RunStatus.RUNNING, end=None)
    assert check(running, limit, now=at(30)) == []  # exactly at the limit
    [early] = check(running, limit, now=at(31))
    assert (early.type, early.subject) == ("run_too_long", "CI")
    assert early.evidence["still_running"] is True
    finished = github_run([stage("test", 0, 45)], end=45)
    [late] = check(finished, limit)
    assert late.anomaly_id == early.anomaly_id
    assert late.summary == "run of 'CI' ran 2700s, rule 'budget' allows at most 1800s"


def test_run_without_pipeline_is_named_by_its_id() -> None:
    run = github_run([], pipeline=None, end=90)
    [found] = check(run, rule(max_run_duration_s=60))
    assert found.subject == run.run_id


def test_progress_checks_apply_to_cancelled_runs() -> None:
    run = github_run([stage("deploy", 0, 50)], status=RunStatus.CANCELLED, end=50)
    found = check(run, rule(max_stage_duration_s={"deploy": 600}, required_stages=["smoke"]))
    assert types(found) == [("stage_too_long", "deploy")]


# --- end-of-run checks ---------------------------------------------------------------------


def test_missing_stage() -> None:
    run = github_run([stage("build", 0, 5), stage("test", 5, 20)], end=20)
    [found] = check(run, rule(name="release", required_stages=["build", "deploy*"]))
    assert (found.type, found.subject) == ("missing_stage", "deploy*")
    assert found.evidence["observed"] == ["build", "test"]
    assert "'deploy*'" in found.summary and "'release'" in found.summary
    assert (found.window_start, found.window_end) == (at(0), at(20))
    assert found.detected_at == settled(run)


def test_skipped_stage_does_not_count_as_present() -> None:
    skipped = stage("deploy", 20, 20, conclusion="skipped")
    run = github_run([stage("build", 0, 5), skipped], end=20)
    [found] = check(run, rule(required_stages=["deploy"]))
    assert found.evidence["skipped"] == ["deploy"]
    assert "skipped" in found.summary


def test_stage_order_violation_and_no_violation() -> None:
    order = rule(name="build-first", stage_order=["build", "test", "deploy"])
    assert check(healthy_github(), order) == []
    swapped = github_run(
        [stage("test", 0, 5), stage("build", 2, 8), stage("deploy", 9, 12)], end=12
    )
    [found] = check(swapped, order)
    assert (found.type, found.subject) == ("stage_order", "build-first")
    assert found.evidence["observed"] == ["test", "build", "deploy"]
    assert found.evidence["inversions"] == [
        {"expected_first": "build", "expected_then": "test", "started_first": "test"}
    ]
    assert found.summary.startswith("stage 'test' started before 'build'")


def test_stage_order_ignores_missing_stages_and_uses_first_start() -> None:
    order = rule(stage_order=["build", "test", "deploy"])
    # test is missing; a retried build started again after deploy: the first build counts.
    run = github_run([stage("build", 0, 3), stage("deploy", 4, 6), stage("build", 7, 9)], end=9)
    assert check(run, order) == []
    late_deploy = github_run([stage("deploy", 0, 2), stage("build", 3, 5)], end=5)
    assert types(check(late_deploy, order)) == [("stage_order", "shape")]


def test_too_few_tests() -> None:
    run = github_run([], tests=TestCounts(total=3, passed=3))
    [found] = check(run, rule(name="suite", min_tests=50))
    assert (found.type, found.subject) == ("too_few_tests", "tests")
    assert found.evidence["observed"] == 3 and found.evidence["threshold"] == 50
    assert found.summary == "run reported 3 tests, rule 'suite' requires at least 50"
    assert check(run, rule(min_tests=3)) == []


def test_missing_marker() -> None:
    run = healthy_github()
    [found] = check(run, rule(required_markers=["deploy-ok", "smoke-ok"]))
    assert (found.type, found.subject) == ("missing_marker", "smoke-ok")
    assert found.evidence["observed"] == ["deploy-ok", "tests-started"]


def test_required_containers_match_init_and_step_containers() -> None:
    run = tekton_run(
        [
            container("prepare", init=True),
            container("place-scripts", init=True),
            container("step-build"),
            container("step-push"),
        ]
    )
    ok = rule(required_containers=["prepare", "step-*"])
    assert check(run, ok) == []
    [found] = check(run, rule(required_containers=["step-scan*", "place-*"]))
    assert (found.type, found.subject) == ("missing_container", "step-scan*")
    assert found.evidence["observed"] == ["place-scripts", "prepare", "step-build", "step-push"]
    assert found.evidence["pods"] == ["release-x7k2p-build-pod"]


def test_every_violation_of_every_matching_rule_sorted_by_id() -> None:
    run = tekton_run([container("step-build")], tests=TestCounts(total=0))
    rules = [
        rule(name="all-tekton", match={"labels": {"tekton.dev/pipeline": "*"}}, min_tests=1),
        rule(
            name="release",
            match={"pipeline": "release", "namespace": "ci"},
            severity="critical",
            required_stages=["build", "publish"],
            required_markers=["signed"],
        ),
        rule(name="other", match={"pipeline": "nightly"}, min_tests=1),
    ]
    found = check(run, *rules)
    assert types(found) == [
        ("missing_marker", "signed"),
        ("missing_stage", "publish"),
        ("too_few_tests", "tests"),
    ]
    assert [a.anomaly_id for a in found] == sorted(a.anomaly_id for a in found)
    assert {a.evidence["rule"]: a.severity for a in found} == {
        "all-tekton": Severity.WARNING,
        "release": Severity.CRITICAL,
    }


# --- when end checks run -------------------------------------------------------------------


END_RULE = rule(required_stages=["deploy"])


def incomplete() -> RunState:
    return github_run([stage("build", 0, 5)], end=10)


def test_end_checks_wait_for_the_settle_period() -> None:
    run = incomplete()
    end = at(10)
    assert check(run, END_RULE, now=end) == []
    assert check(run, END_RULE, now=end + timedelta(seconds=SETTLE - 1)) == []
    assert len(check(run, END_RULE, now=end + timedelta(seconds=SETTLE))) == 1
    assert evaluate(run, [END_RULE], None, settle_s=SETTLE) == []


def test_final_runs_end_checks_at_once_with_the_window_end_as_detection_time() -> None:
    [found] = evaluate(incomplete(), [END_RULE], None, settle_s=SETTLE, final=True)
    assert found.detected_at == at(10)
    [same] = evaluate(incomplete(), [END_RULE], at(10), settle_s=SETTLE, final=True)
    assert same.anomaly_id == found.anomaly_id


def test_end_checks_wait_for_a_terminal_run() -> None:
    running = github_run([stage("build", 0, 5)], status=RunStatus.RUNNING, end=None)
    assert evaluate(running, [END_RULE], at(600), settle_s=SETTLE, final=True) == []


@pytest.mark.parametrize("status", [RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.SUCCEEDED])
def test_end_checks_run_for_every_terminal_status_but_cancelled(status: RunStatus) -> None:
    run = github_run([stage("build", 0, 5)], status=status, end=10)
    assert types(check(run, END_RULE)) == [("missing_stage", "deploy")]


def test_cancelled_run_skips_end_checks() -> None:
    run = github_run([stage("build", 0, 5)], status=RunStatus.CANCELLED, end=10)
    everything = rule(
        required_stages=["deploy"], min_tests=10_000, required_markers=["nope"], stage_order=["x"]
    )
    assert evaluate(run, [everything], at(999), settle_s=SETTLE, final=True) == []


def test_end_window_falls_back_to_updated_at_and_created_at() -> None:
    run = github_run([], started_at=None, finished_at=None, updated_at=at(7))
    [found] = check(run, END_RULE)
    assert (found.window_start, found.window_end) == (at(-1), at(7))


# --- ids -----------------------------------------------------------------------------------


def test_ids_are_deterministic_and_independent_of_time_zone_and_detection_time() -> None:
    run = incomplete()
    rules = [END_RULE, rule(name="t", min_tests=500, max_stage_duration_s={"build": 60})]
    first = check(run, *rules, now=at(100))
    again = check(run, *rules, now=at(200))
    assert [a.anomaly_id for a in first] == [a.anomaly_id for a in again]
    assert all(len(a.anomaly_id) == 32 and int(a.anomaly_id, 16) >= 0 for a in first)
    assert len({a.anomaly_id for a in first}) == len(first) == 3
    shifted = timezone(timedelta(hours=-7))
    elsewhere = run.model_copy(
        update={
            "started_at": at(0).astimezone(shifted),
            "finished_at": at(10).astimezone(shifted),
        }
    )
    assert [a.anomaly_id for a in check(elsewhere, *rules, now=at(100))] == [
        a.anomaly_id for a in first
    ]


def test_ids_differ_by_run_rule_and_subject() -> None:
    run = incomplete()
    base = check(run, END_RULE)[0].anomaly_id
    other_run = run.model_copy(update={"run_id": "github:acme/shop:101:1"})
    assert check(other_run, END_RULE)[0].anomaly_id != base
    assert check(run, rule(name="other", required_stages=["deploy"]))[0].anomaly_id != base
    assert check(run, rule(required_stages=["deploy*"]))[0].anomaly_id != base


def test_evaluate_does_not_mutate_the_run() -> None:
    run = github_run([stage("deploy", 0)], status=RunStatus.RUNNING, end=None)
    before = run.model_dump()
    check(run, rule(max_stage_duration_s={"*": 1}, max_run_duration_s=1), now=at(60))
    assert run.model_dump() == before


# --- deadlines -----------------------------------------------------------------------------


def test_next_deadline_for_a_running_stage_and_run() -> None:
    run = github_run([stage("build", 0, 5), stage("deploy", 5)], status=RunStatus.RUNNING, end=None)
    limits = rule(max_stage_duration_s={"deploy": 600}, max_run_duration_s=3600)
    tick = timedelta(microseconds=1)
    assert next_deadline(run, [limits], settle_s=SETTLE, after=at(6)) == at(15) + tick
    # Once the stage deadline passed, the run's is next.
    assert next_deadline(run, [limits], settle_s=SETTLE, after=at(15) + tick) == at(60) + tick
    assert next_deadline(run, [limits], settle_s=SETTLE, after=at(61)) is None
    # The deadline is exactly when evaluate starts reporting.
    assert check(run, limits, now=at(15)) == []
    assert types(check(run, limits, now=at(15) + tick)) == [("stage_too_long", "deploy")]


def test_next_deadline_for_a_terminal_run_is_end_plus_settle() -> None:
    run = incomplete()
    expected = at(10) + timedelta(seconds=SETTLE)
    assert next_deadline(run, [END_RULE], settle_s=SETTLE) == expected
    assert next_deadline(run, [END_RULE], settle_s=SETTLE, after=expected) is None
    # The run's watermark is the default reference.
    passed = run.model_copy(update={"watermark": expected})
    assert next_deadline(passed, [END_RULE], settle_s=SETTLE) is None


def test_no_deadline_without_matching_rules_or_anything_to_wait_for() -> None:
    run = incomplete()
    assert next_deadline(run, [], settle_s=SETTLE) is None
    assert next_deadline(run, [rule(match={"pipeline": "x"}, min_tests=1)], settle_s=SETTLE) is None
    # Only progress limits and a finished run: everything is known already.
    assert next_deadline(run, [rule(max_run_duration_s=1)], settle_s=SETTLE) is None
    cancelled = github_run([], status=RunStatus.CANCELLED)
    assert next_deadline(cancelled, [END_RULE], settle_s=SETTLE) is None


# --- properties ----------------------------------------------------------------------------

NAMES = ["build", "test", "deploy", "lint", "e2e"]
GLOBS = [*NAMES, "*", "d*", "te?t", "missing"]
minutes = st.integers(min_value=0, max_value=120)


@st.composite
def stages(draw: st.DrawFn) -> StageState:
    name = draw(st.sampled_from(NAMES))
    start = draw(minutes)
    end = draw(st.one_of(st.none(), st.integers(min_value=start, max_value=start + 120)))
    made = stage(name, start, end)
    return made.model_copy(update={"stage_id": f"{name}-{draw(st.integers(0, 3))}"})


@st.composite
def runs(draw: st.DrawFn) -> RunState:
    status = draw(st.sampled_from(list(RunStatus)))
    end = draw(st.integers(min_value=0, max_value=300))
    return github_run(
        draw(st.lists(stages(), max_size=5)),
        status=status,
        end=end,
        tests=TestCounts(total=draw(st.integers(0, 20))),
        markers={m: at(1) for m in draw(st.sets(st.sampled_from(["a", "b", "c"])))},
        branch=draw(st.sampled_from(["main", "dev"])),
    )


@st.composite
def rules(draw: st.DrawFn) -> StructureRule:
    globs = st.lists(st.sampled_from(GLOBS), max_size=3, unique=True)
    return rule(
        name=draw(st.sampled_from(["r1", "r2", "r3"])),
        match=draw(st.sampled_from([{}, {"branch": "main"}, {"labels": {"team": "pay*"}}])),
        severity=draw(st.sampled_from(["info", "warning", "error", "critical"])),
        required_stages=draw(globs),
        stage_order=draw(globs),
        max_run_duration_s=draw(st.one_of(st.none(), st.integers(60, 7200))),
        max_stage_duration_s=draw(st.dictionaries(st.sampled_from(GLOBS), st.integers(60, 3600))),
        min_tests=draw(st.one_of(st.none(), st.integers(0, 20))),
        required_markers=draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=2)),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    run=runs(),
    ruleset=st.lists(rules(), max_size=4),
    now=st.one_of(st.none(), minutes.map(at)),
    final=st.booleans(),
    data=st.data(),
)
def test_evaluate_is_deterministic_and_rule_order_does_not_matter(
    run: RunState,
    ruleset: list[StructureRule],
    now: datetime | None,
    final: bool,
    data: st.DataObject,
) -> None:
    first = evaluate(run, ruleset, now, settle_s=SETTLE, final=final)
    again = evaluate(run, ruleset, now, settle_s=SETTLE, final=final)
    shuffled = data.draw(st.permutations(ruleset))
    reordered = evaluate(run, shuffled, now, settle_s=SETTLE, final=final)
    assert first == again
    assert [a.anomaly_id for a in reordered] == [a.anomaly_id for a in first]
    assert [a.anomaly_id for a in first] == sorted({a.anomaly_id for a in first})
    assert all(a.run_id == run.run_id and a.window_start <= a.window_end for a in first)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=runs(), ruleset=st.lists(rules(), max_size=3), after=minutes.map(at))
def test_nothing_new_is_reported_before_the_next_deadline(
    run: RunState, ruleset: list[StructureRule], after: datetime
) -> None:
    def ids(now: datetime) -> set[str]:
        return {a.anomaly_id for a in evaluate(run, ruleset, now, settle_s=SETTLE)}

    deadline = next_deadline(run, ruleset, settle_s=SETTLE, after=after)
    if deadline is None:
        assert ids(after + timedelta(days=30)) == ids(after)
    else:
        assert deadline > after
        assert ids(deadline - timedelta(microseconds=1)) == ids(after)
