"""A run's identity does not depend on the order its inputs arrive in, for every provider.

Issue 12: a CronJob's run was filed under its Job's name because the latest signal claimed the
pipeline. The inputs here are the real ones of the scenario captures (GitHub on ARC runners,
Jenkins agents, a Tekton pipeline, a bare Job, and CronJob runs whose pods name only their Job),
turned into CI events and run signals by the producers' and the router's own code; each run's
inputs are folded in capture order and then in orders hypothesis picks, and the identity fields
must not move.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.runs.correlation import route
from processors.runs.k8s_signals import RANK_CRON_NAME, cronjob_of, signals_from_k8s
from processors.runs.log_signals import LogSignals
from processors.runs.state import apply, apply_signal
from producers.k8s.log_lines import to_log_line
from producers.k8s.objects import K8sNormalizer
from producers.webhooks import github, jenkins
from runtime.config import load_settings
from schemas.capture import K8sRecord, LogRecord, WebhookRecord, read_capture
from schemas.messages import CiEvent, RunSignal, RunState
from tests.support.paths import DATA

Input = CiEvent | RunSignal
IDENTITY = (
    "provider",
    "provider_run_id",
    "attempt",
    "repository",
    "pipeline",
    "branch",
    "commit_sha",
    "trigger",
    "namespace",
    "status",
)
CAPTURES = {
    "github-arc": DATA / "scenarios" / "arc_github_run",
    "jenkins": DATA / "scenarios" / "jenkins_k8s_plugin",
    "tekton": DATA / "scenarios" / "tekton_pipeline",
    "bare-job": DATA / "scenarios" / "bare_job",
    "cronjob": DATA / "anomaly_scenarios" / "side_by_side",
    "cronjob-manual": DATA / "anomaly_scenarios" / "side_by_side",
}
# `kubectl create job --from=cronjob/ledger-nightly ledger-manual-rerun`: the Job is the
# CronJob's (owner reference) but has a name of its own, which is all its pods know.
MANUAL_JOB = ("ledger-nightly-29540280", "ledger-manual-rerun")


def _ci_events(record: WebhookRecord) -> list[CiEvent]:
    if record.provider == "jenkins":
        result = jenkins.normalize(record.body, record.ts)
    else:
        event, delivery = record.header("X-GitHub-Event"), record.header("X-GitHub-Delivery")
        result = github.normalize(event or "", delivery or "", record.body, record.ts)
    events = result if isinstance(result, list) else [result]
    return [event for event in events if isinstance(event, CiEvent)]


@cache
def run_inputs(name: str) -> dict[str, list[Input]]:
    """Every run's CI events and signals in capture `name`, as the worker derives them."""
    base = CAPTURES[name]
    config = load_settings(base.with_suffix(".config.yaml"))
    normalizer = K8sNormalizer(config.k8s)
    logs = LogSignals(config.tracking)
    inputs: dict[str, list[Input]] = defaultdict(list)
    links: dict[str, str] = {}  # correlation key of CI-owned pods -> run id (BIND)
    waiting: list[RunSignal] = []
    records = list(read_capture(base.with_suffix(".jsonl")))
    if name == "cronjob":  # two teams are enough (one with its runs broken in several ways)
        records = [r for r in records if _namespace(r) in ("team-a", "team-e", "monitoring")]
    if name == "cronjob-manual":
        records = [_manual(r) for r in records if _namespace(r) == "team-d"]
    for record in records:
        if isinstance(record, WebhookRecord):
            for event in _ci_events(record):
                inputs[event.run_id].append(event)
                if event.runner_name:
                    links[f"github-runner:{event.runner_name}"] = event.run_id
                if event.labels.get("jenkins.run_url"):
                    links[f"jenkins:{event.labels['jenkins.run_url']}"] = event.run_id
            continue
        if isinstance(record, K8sRecord):
            signals = signals_from_k8s(normalizer.normalize(record.event, record.object, record.ts))
        else:
            stamp = record.ts.isoformat().replace("+00:00", "Z")
            raw = f"{stamp} {record.line}".encode()
            line = to_log_line(
                record.namespace,
                record.pod,
                record.container,
                raw,
                record.ts,
                65536,
                record.correlation_key,
            )
            signals = logs.feed(line)
        waiting.extend(s for s in signals if s.kind.value not in ("log", "activity"))
    waiting.extend(logs.flush())
    for signal in waiting:
        run_id = signal.run_id or links.get(signal.correlation_key or "")
        if run_id is None:
            run_id, _ = route(signal.correlation_key or "")
        if run_id is not None:
            inputs[run_id].append(signal.model_copy(update={"run_id": run_id}))
    return dict(inputs)


def _manual(record: WebhookRecord | K8sRecord | LogRecord) -> WebhookRecord | K8sRecord | LogRecord:
    text = record.model_dump_json(by_alias=True).replace(*MANUAL_JOB)
    return type(record).model_validate_json(text)


def _namespace(record: WebhookRecord | K8sRecord | LogRecord) -> str | None:
    if isinstance(record, LogRecord):
        return record.namespace
    if isinstance(record, K8sRecord):
        return str(record.object.get("metadata", {}).get("namespace") or "")
    return None


def fold(inputs: Sequence[Input]) -> RunState:
    state: RunState | None = None
    for given_input in inputs:
        if isinstance(given_input, CiEvent):
            state = apply(state, given_input) or state
        else:
            state = apply_signal(state, given_input) or state
    assert state is not None
    return state


def identity(state: RunState) -> dict[str, object]:
    return {field: getattr(state, field) for field in IDENTITY}


def runs_of(name: str) -> list[str]:
    return sorted(run_inputs(name))


def test_every_provider_has_runs_to_fold() -> None:
    providers = {fold(run_inputs(name)[run]).provider for name in CAPTURES for run in runs_of(name)}
    assert providers == {"github", "jenkins", "tekton", "kubernetes"}


def test_a_cronjob_run_is_filed_under_its_cronjob_whatever_came_last() -> None:
    inputs = run_inputs("cronjob")
    for run_id, items in inputs.items():
        state = fold(items)
        assert state.pipeline == "ledger-nightly", run_id
        # Even the pods alone, before their Job is seen, recognise the CronJob's Job by name.
        pods = [i for i in items if isinstance(i, RunSignal) and i.pod is not None]
        assert fold(pods).pipeline == "ledger-nightly", run_id
        assert {p.pipeline_rank for p in pods} == {RANK_CRON_NAME}


def test_a_job_created_from_a_cronjob_is_filed_under_the_cronjob_in_any_order() -> None:
    run_id = "job:team-d/ledger-manual-rerun"
    items = run_inputs("cronjob-manual")[run_id]
    pods = [i for i in items if isinstance(i, RunSignal) and i.pod is not None]
    assert {p.pipeline for p in pods} == {"ledger-manual-rerun"}  # all a pod can know
    assert fold(pods).pipeline == "ledger-manual-rerun"
    assert fold(items).pipeline == "ledger-nightly"
    # The pod is updated (deleted by the TTL controller, say) after the Job's last word.
    last = max(i.event_time for i in items)
    later = pods[-1].model_copy(
        update={"signal_id": "pod-deleted-later", "event_time": last + timedelta(minutes=5)}
    )
    assert fold([*items, later]).pipeline == "ledger-nightly"


def test_a_bare_job_named_like_a_cronjob_job_keeps_its_own_name_once_the_job_is_seen() -> None:
    (run_id,) = runs_of("bare-job")
    items = run_inputs("bare-job")[run_id]
    job_name = run_id.split("/", 1)[1]
    state = fold(items)
    assert state.pipeline == job_name
    assert cronjob_of("db-backup-29411520") == "db-backup"
    assert cronjob_of("migrate-2024") is None


@st.composite
def shuffled_run(draw: st.DrawFn) -> tuple[str, str, list[Input]]:
    name = draw(st.sampled_from(sorted(CAPTURES)))
    run_id = draw(st.sampled_from(runs_of(name)))
    items = run_inputs(name)[run_id]
    order = draw(st.permutations(range(len(items))))
    return name, run_id, [items[i] for i in order]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=shuffled_run())
def test_any_order_gives_the_same_identity_for_every_provider(
    case: tuple[str, str, list[Input]],
) -> None:
    name, run_id, shuffled = case
    assert identity(fold(shuffled)) == identity(fold(run_inputs(name)[run_id]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=shuffled_run(), late=st.floats(min_value=1, max_value=7200))
def test_a_late_pod_update_does_not_rename_the_run(
    case: tuple[str, str, list[Input]], late: float
) -> None:
    # The case of issue 12: after the Job's last word, a pod update (newer event time) comes.
    name, run_id, shuffled = case
    pods = [i for i in shuffled if isinstance(i, RunSignal) and i.pod is not None]
    if not pods:
        return
    last = max(i.event_time for i in shuffled)
    echo = pods[0].model_copy(
        update={"signal_id": "late-pod-update", "event_time": last + timedelta(seconds=late)}
    )
    assert fold([*shuffled, echo]).pipeline == fold(run_inputs(name)[run_id]).pipeline


def test_captures_exist() -> None:
    for base in CAPTURES.values():
        assert Path(f"{base}.jsonl").exists()
