"""Run signals from Kubernetes objects and container log lines (pure, no broker)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.runs.correlation import route
from processors.runs.k8s_signals import parse_time, signals_from_k8s
from processors.runs.log_signals import LogSignals
from producers.k8s.objects import to_object_event
from runtime.config import K8sConfig, LogMarkerRule, MarkerAction, TrackingConfig
from schemas.messages import K8sObjectEvent, LogLine, RunSignal, RunStatus, SignalKind
from tests.support.paths import DATA

DATA = DATA / "test-logs"
RECEIVED = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
K8S = K8sConfig()
TEKTON_RUN = "tekton:ci/build-pipeline-run-x7k2p"


def k8s(event_type: str, obj: dict[str, Any]) -> K8sObjectEvent:
    return to_object_event(event_type, obj, RECEIVED, K8S)


def by_kind(signals: list[RunSignal], kind: SignalKind) -> list[RunSignal]:
    return [s for s in signals if s.kind is kind]


# ---------------------------------------------------------------------------------------------
# Kubernetes objects (shapes as `kubectl get -o json` prints them)


def tekton_pod() -> dict[str, Any]:
    """A Tekton TaskRun pod whose step was OOM-killed."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "build-pipeline-run-x7k2p-unit-tests-pod",
            "namespace": "ci",
            "uid": "5b0c7a9e-2f4d-4c1e-9a77-3d1f0b6e8c21",
            "resourceVersion": "884211",
            "creationTimestamp": "2026-03-02T09:59:58Z",
            "labels": {
                "app.kubernetes.io/managed-by": "tekton-pipelines",
                "sentinel.io/team": "payments",
                "tekton.dev/memberOf": "tasks",
                "tekton.dev/pipeline": "build-pipeline",
                "tekton.dev/pipelineRun": "build-pipeline-run-x7k2p",
                "tekton.dev/pipelineTask": "unit-tests",
                "tekton.dev/task": "pytest",
                "tekton.dev/taskRun": "build-pipeline-run-x7k2p-unit-tests",
            },
            "annotations": {"pipeline.tekton.dev/release": "v0.56.1"},
            "ownerReferences": [
                {
                    "apiVersion": "tekton.dev/v1",
                    "kind": "TaskRun",
                    "name": "build-pipeline-run-x7k2p-unit-tests",
                    "uid": "0c1d2e3f-aaaa-bbbb-cccc-111122223333",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": "worker-3",
            "restartPolicy": "Never",
            "initContainers": [{"name": "prepare", "image": "ghcr.io/tektoncd/entrypoint"}],
            "containers": [{"name": "step-pytest", "image": "python:3.12"}],
        },
        "status": {
            "phase": "Failed",
            "hostIP": "10.0.3.17",
            "podIP": "10.244.3.41",
            "qosClass": "Burstable",
            "startTime": "2026-03-02T09:59:59Z",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "PodFailed",
                    "lastTransitionTime": "2026-03-02T10:04:11Z",
                }
            ],
            "initContainerStatuses": [
                {
                    "name": "prepare",
                    "image": "ghcr.io/tektoncd/entrypoint:v0.56.1",
                    "imageID": "ghcr.io/tektoncd/entrypoint@sha256:1f2e",
                    "containerID": "containerd://a1b2",
                    "ready": True,
                    "restartCount": 0,
                    "lastState": {},
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": "2026-03-02T10:00:01Z",
                            "finishedAt": "2026-03-02T10:00:02Z",
                            "containerID": "containerd://a1b2",
                        }
                    },
                }
            ],
            "containerStatuses": [
                {
                    "name": "step-pytest",
                    "image": "docker.io/library/python:3.12",
                    "imageID": "docker.io/library/python@sha256:9c8d",
                    "containerID": "containerd://c3d4",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "lastState": {},
                    "state": {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "OOMKilled",
                            "startedAt": "2026-03-02T10:00:03Z",
                            "finishedAt": "2026-03-02T10:04:10.123456789Z",
                            "containerID": "containerd://c3d4",
                        }
                    },
                }
            ],
        },
    }


def running(pod: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    out["metadata"]["resourceVersion"] = "884100"
    out["status"]["phase"] = "Running"
    out["status"]["containerStatuses"][0]["state"] = {
        "running": {"startedAt": "2026-03-02T10:00:03Z"}
    }
    return out


def test_route_standalone_keys_are_runs_and_ci_keys_wait_for_a_link() -> None:
    for key in (TEKTON_RUN, "tekton-taskrun:ci/tr", "argo:ci/wf-1", "job:ci/nightly", "run-7"):
        assert route(key) == (key, None)
    for key in ("github-runner:linux-abc12-runner-x9", "jenkins:https://ci/job/app/42/"):
        assert route(key) == (None, key)


def test_oom_killed_tekton_pod_gives_pod_state_and_a_failed_stage() -> None:
    signals = signals_from_k8s(k8s("MODIFIED", tekton_pod()))
    assert [s.kind for s in signals] == [SignalKind.POD, SignalKind.STAGE]
    pod_signal, stage = signals
    for signal in signals:
        assert signal.run_id == TEKTON_RUN
        assert signal.correlation_key == TEKTON_RUN
        assert signal.source == "k8s"
        assert signal.provider == "tekton"
        assert signal.pipeline == "build-pipeline"
        assert signal.namespace == "ci"
        assert signal.labels == {"sentinel.io/team": "payments"}
    pod = pod_signal.pod
    assert pod is not None
    assert (pod.phase, pod.node, pod.deleted) == ("Failed", "worker-3", False)
    assert pod.resource_version == "884211"  # orders two reports with equal event times
    assert pod.stage_id == "build-pipeline-run-x7k2p-unit-tests"
    assert pod.created_at == datetime(2026, 3, 2, 9, 59, 58, tzinfo=UTC)
    assert pod.started_at == datetime(2026, 3, 2, 9, 59, 59, tzinfo=UTC)
    # Nanosecond finishedAt, latest of all containers, cut to microseconds.
    assert pod.finished_at == datetime(2026, 3, 2, 10, 4, 10, 123456, tzinfo=UTC)
    init, step = pod.containers
    assert (init.name, init.init, init.state, init.reason) == (
        "prepare",
        True,
        "terminated",
        "Completed",
    )
    assert (step.name, step.init, step.reason, step.exit_code) == (
        "step-pytest",
        False,
        "OOMKilled",
        137,
    )
    assert stage.stage_id == "build-pipeline-run-x7k2p-unit-tests"
    assert stage.stage_name == "unit-tests"
    assert stage.status is RunStatus.FAILED
    assert stage.conclusion == "OOMKilled"
    assert stage.started_at == pod.started_at
    assert stage.finished_at == pod.finished_at


def test_running_tekton_pod_is_a_running_stage_and_deleting_it_cancels_the_stage() -> None:
    alive = running(tekton_pod())
    stage = by_kind(signals_from_k8s(k8s("ADDED", alive)), SignalKind.STAGE)[0]
    assert stage.status is RunStatus.RUNNING
    assert stage.finished_at is None
    pod_signal, stage = signals_from_k8s(k8s("DELETED", alive))
    assert pod_signal.pod is not None and pod_signal.pod.deleted
    assert pod_signal.pod.terminated
    assert stage.status is RunStatus.CANCELLED
    assert stage.finished_at is not None


def test_crash_looping_container_keeps_why_its_last_instance_died() -> None:
    obj = running(tekton_pod())
    obj["status"]["containerStatuses"][0].update(
        restartCount=4,
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
        lastState={
            "terminated": {
                "exitCode": 137,
                "reason": "OOMKilled",
                "startedAt": "2026-03-02T10:02:00Z",
                "finishedAt": "2026-03-02T10:02:30Z",
            }
        },
    )
    pod = signals_from_k8s(k8s("MODIFIED", obj))[0].pod
    assert pod is not None
    step = pod.containers[1]
    assert (step.state, step.reason, step.restarts, step.last_reason) == (
        "waiting",
        "CrashLoopBackOff",
        4,
        "OOMKilled",
    )
    assert pod.finished_at is None  # still Running


def test_evicted_pod_without_container_times_ends_at_the_event_time() -> None:
    obj = running(tekton_pod())
    obj["status"].update(phase="Failed", reason="Evicted", message="low on memory")
    obj["status"]["containerStatuses"] = []
    event = k8s("MODIFIED", obj)
    pod_signal, stage = signals_from_k8s(event)
    assert pod_signal.pod is not None and pod_signal.pod.reason == "Evicted"
    assert pod_signal.pod.finished_at == event.event_time
    assert (stage.status, stage.conclusion) == (RunStatus.FAILED, "Evicted")


def test_bare_taskrun_pod_failed_in_its_init_container() -> None:
    obj = tekton_pod()
    labels = obj["metadata"]["labels"]
    for name in ("tekton.dev/pipeline", "tekton.dev/pipelineRun", "tekton.dev/pipelineTask"):
        del labels[name]
    labels["tekton.dev/taskRun"] = "lint-run-q8v"
    init = obj["status"]["initContainerStatuses"][0]["state"]["terminated"]
    init.update(exitCode=1, reason="Error", finishedAt="2026-03-02T10:00:05Z")
    obj["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "PodInitializing"}}
    pod_signal, stage = signals_from_k8s(k8s("MODIFIED", obj))
    assert pod_signal.pod is not None and pod_signal.pod.finished_at == stage.finished_at
    assert stage.run_id == "tekton-taskrun:ci/lint-run-q8v"
    assert (stage.provider, stage.pipeline) == ("tekton", "pytest")  # the Task repeats
    assert (stage.stage_id, stage.stage_name) == ("lint-run-q8v", "lint-run-q8v")
    assert (stage.status, stage.conclusion) == (RunStatus.FAILED, "Error")
    assert stage.finished_at == datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)


def nightly_job(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "nightly-e2e-29544120",
            "namespace": "qa",
            "uid": "7e57ab1e-0000-4000-8000-000000000001",
            "resourceVersion": "991",
            "creationTimestamp": "2026-03-02T02:00:00Z",
            "labels": {"batch.kubernetes.io/controller-uid": "7e57ab1e", "app": "e2e"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "nightly-e2e",
                    "uid": "c0ffee00-0000-4000-8000-000000000002",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"backoffLimit": 2, "completions": 1, "parallelism": 1},
        "status": status,
    }


FAILED_STATUS: dict[str, Any] = {
    "startTime": "2026-03-02T02:00:00Z",
    "failed": 3,
    "terminating": 0,
    "ready": 0,
    "uncountedTerminatedPods": {},
    "conditions": [
        {
            "type": "FailureTarget",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
            "lastProbeTime": "2026-03-02T02:14:55Z",
            "lastTransitionTime": "2026-03-02T02:14:55Z",
        },
        {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
            "lastProbeTime": "2026-03-02T02:15:01Z",
            "lastTransitionTime": "2026-03-02T02:15:01Z",
        },
    ],
}


def test_job_past_its_backoff_limit_is_a_failed_run_of_its_cronjob() -> None:
    (signal,) = signals_from_k8s(k8s("MODIFIED", nightly_job(**FAILED_STATUS)))
    assert signal.kind is SignalKind.JOB
    assert signal.run_id == signal.correlation_key == "job:qa/nightly-e2e-29544120"
    assert (signal.provider, signal.pipeline, signal.namespace) == (
        "kubernetes",
        "nightly-e2e",
        "qa",
    )
    assert (signal.status, signal.conclusion) == (RunStatus.FAILED, "BackoffLimitExceeded")
    assert signal.started_at == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert signal.finished_at == datetime(2026, 3, 2, 2, 15, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event_type", "status", "expected", "finished"),
    [
        ("ADDED", {}, RunStatus.PENDING, None),
        ("MODIFIED", {"startTime": "2026-03-02T02:00:00Z", "active": 1}, RunStatus.RUNNING, None),
        (
            "MODIFIED",
            {
                "startTime": "2026-03-02T02:00:00Z",
                "completionTime": "2026-03-02T02:09:30Z",
                "succeeded": 1,
                "conditions": [
                    {
                        "type": "Complete",
                        "status": "True",
                        "lastTransitionTime": "2026-03-02T02:09:31Z",
                    }
                ],
            },
            RunStatus.SUCCEEDED,
            datetime(2026, 3, 2, 2, 9, 30, tzinfo=UTC),
        ),
        (
            "MODIFIED",
            {"conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended"}]},
            RunStatus.PENDING,
            None,
        ),
        ("DELETED", {"startTime": "2026-03-02T02:00:00Z", "active": 1}, RunStatus.CANCELLED, ...),
    ],
)
def test_job_status_follows_its_conditions(
    event_type: str, status: dict[str, Any], expected: RunStatus, finished: Any
) -> None:
    event = k8s(event_type, nightly_job(**status))
    (signal,) = signals_from_k8s(event)
    assert signal.status is expected
    assert signal.finished_at == (event.event_time if finished is ... else finished)


def test_bare_job_pod_is_described_by_its_job() -> None:
    obj = running(tekton_pod())
    obj["metadata"]["labels"] = {
        "batch.kubernetes.io/job-name": "migrate-db",
        "job-name": "migrate-db",
    }
    obj["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "migrate-db", "uid": "j1"}]
    signals = signals_from_k8s(k8s("MODIFIED", obj))
    assert [s.kind for s in signals] == [SignalKind.POD]  # no Tekton stage
    assert (signals[0].run_id, signals[0].pipeline) == ("job:ci/migrate-db", "migrate-db")
    assert signals[0].pod is not None and signals[0].pod.stage_id is None


def test_ci_owned_pods_wait_for_their_ci_event_and_describe_nothing() -> None:
    jenkins_agent = running(tekton_pod())
    jenkins_agent["metadata"]["labels"] = {"jenkins/label": "k8s-agent"}
    jenkins_agent["metadata"]["annotations"] = {
        "runUrl": "job/shop/job/main/42/",
        "buildUrl": "https://jenkins.acme.dev/job/shop/job/main/42/",
    }
    (signal,) = signals_from_k8s(k8s("MODIFIED", jenkins_agent))
    assert signal.run_id is None
    assert signal.correlation_key == "jenkins:job/shop/job/main/42/"
    assert (signal.provider, signal.pipeline, signal.namespace) == (None, None, "ci")
    runner = running(tekton_pod())
    runner["metadata"]["labels"] = {"actions.github.com/scale-set-name": "linux-x64"}
    (signal,) = signals_from_k8s(k8s("MODIFIED", runner))
    assert (signal.run_id, signal.correlation_key) == (
        None,
        "github-runner:build-pipeline-run-x7k2p-unit-tests-pod",
    )


def test_uncorrelated_objects_events_and_services_give_nothing() -> None:
    plain = running(tekton_pod())
    plain["metadata"]["labels"] = {"app": "web"}
    assert signals_from_k8s(k8s("MODIFIED", plain)) == []
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "e2e-db",
            "namespace": "qa",
            "uid": "s1",
            "resourceVersion": "5",
            "labels": {"sentinel.io/run-id": "run-7"},
        },
        "spec": {"ports": [{"port": 5432}]},
    }
    assert signals_from_k8s(k8s("ADDED", service)) == []
    oom_event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "nightly.17f", "namespace": "qa", "uid": "e1", "resourceVersion": "7"},
        "involvedObject": {"kind": "Job", "name": "nightly-e2e-29544120", "namespace": "qa"},
        "reason": "BackoffLimitExceeded",
        "type": "Warning",
        "lastTimestamp": "2026-03-02T02:15:01Z",
    }
    assert k8s("ADDED", oom_event).correlation_key is not None
    normal = {**oom_event, "reason": "Completed", "type": "Normal"}
    assert signals_from_k8s(k8s("ADDED", normal)) == []  # routine: not about a problem
    assert signals_from_k8s(k8s("DELETED", oom_event)) == []  # the Event expiring is not news


def test_a_warning_event_about_a_run_object_reaches_the_run() -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": "e2e-x2kzq.17f",
            "namespace": "qa",
            "uid": "e9",
            "resourceVersion": "9",
        },
        "involvedObject": {"kind": "Pod", "name": "e2e-x2kzq", "namespace": "qa"},
        "reason": "FailedScheduling",
        "message": "0/3 nodes are available: 3 Insufficient cpu.",
        "type": "Warning",
        "count": 4,
        "firstTimestamp": "2026-03-02T02:10:00Z",
        "lastTimestamp": "2026-03-02T02:12:00Z",
        "source": {"component": "default-scheduler"},
    }
    watched = k8s("ADDED", event).model_copy(update={"correlation_key": "job:qa/e2e"})
    [found] = signals_from_k8s(watched)
    assert found.kind is SignalKind.K8S_EVENT and found.run_id == "job:qa/e2e"
    info = found.k8s_event
    assert info is not None
    assert (info.reason, info.count, info.involved_name) == ("FailedScheduling", 4, "e2e-x2kzq")
    assert info.message == "0/3 nodes are available: 3 Insufficient cpu."
    assert found.pipeline is None  # an Event says nothing about what the run is


def test_k8s_signal_ids_are_deterministic_and_distinct() -> None:
    first = signals_from_k8s(k8s("MODIFIED", tekton_pod()))
    again = signals_from_k8s(k8s("MODIFIED", tekton_pod()))
    assert [s.signal_id for s in first] == [s.signal_id for s in again]
    assert first == again
    assert first[0].signal_id != first[1].signal_id
    deleted = signals_from_k8s(k8s("DELETED", tekton_pod()))
    other_version = signals_from_k8s(k8s("MODIFIED", running(tekton_pod())))
    ids = {s.signal_id for s in first + deleted + other_version}
    assert len(ids) == 6


def test_parse_time_reads_api_timestamps() -> None:
    assert parse_time("2026-03-02T10:04:10Z") == datetime(2026, 3, 2, 10, 4, 10, tzinfo=UTC)
    assert parse_time("2026-03-02T10:04:10.123456789Z") == datetime(
        2026, 3, 2, 10, 4, 10, 123456, tzinfo=UTC
    )
    assert parse_time("2026-03-02T12:04:10.5+02:00") == datetime(
        2026, 3, 2, 10, 4, 10, 500000, tzinfo=UTC
    )
    for bad in (None, "", "yesterday", "2026-03-02T10:04:10", 17):
        assert parse_time(bad) is None


# ---------------------------------------------------------------------------------------------
# Log lines


def log_lines(
    texts: list[str],
    *,
    container: str = "jnlp",
    key: str | None = "jenkins:job/shop/job/main/42/",
    run_id: str | None = None,
    step_s: float = 1.0,
    start: datetime = T0,
) -> list[LogLine]:
    return [
        LogLine(
            namespace="ci",
            pod="shop-main-42-agent",
            container=container,
            line=text,
            correlation_key=key,
            run_id=run_id,
            event_time=start + timedelta(seconds=i * step_s),
            received_at=RECEIVED,
        )
        for i, text in enumerate(texts)
    ]


def feed_all(signals: LogSignals, lines: list[LogLine]) -> list[RunSignal]:
    out: list[RunSignal] = []
    for line in lines:
        out.extend(signals.feed(line))
    return out


def stages(signals: list[RunSignal]) -> list[tuple[str | None, str | None, str | None]]:
    return [
        (s.stage_id, s.status.value if s.status else None, s.conclusion)
        for s in by_kind(signals, SignalKind.STAGE)
    ]


# A declarative pipeline whose Test stage failed (the ERROR line only comes at the end),
# with a parallel stage, a catchError stage and a stage skipped by `when`.
JENKINS_CONSOLE = """\
Started by user Dana
[Pipeline] Start of Pipeline
[Pipeline] podTemplate
[Pipeline] {
[Pipeline] node
Agent shop-main-42-agent is provisioned from template shop-main-42
Running on shop-main-42-agent in /home/jenkins/agent/workspace/shop_main
[Pipeline] {
[Pipeline] stage
[Pipeline] { (Declarative: Checkout SCM)
[Pipeline] checkout
Checking out Revision 3f2a9c1 (refs/remotes/origin/main)
[Pipeline] }
[Pipeline] // stage
[Pipeline] withEnv
[Pipeline] {
[Pipeline] stage
[Pipeline] { (Build)
[Pipeline] sh
+ make build
[Pipeline] }
[Pipeline] // stage
[Pipeline] stage
[Pipeline] { (Checks)
[Pipeline] parallel
[Pipeline] { (Branch: Lint)
[Pipeline] { (Branch: Typecheck)
[Pipeline] stage
[Pipeline] { (Lint)
[Pipeline] stage
[Pipeline] { (Typecheck)
[Pipeline] sh
[Pipeline] sh
+ ruff check .
+ mypy --strict .
[Pipeline] }
[Pipeline] // stage
[Pipeline] }
[Pipeline] }
[Pipeline] // stage
[Pipeline] }
[Pipeline] // parallel
[Pipeline] }
[Pipeline] // stage
[Pipeline] stage
[Pipeline] { (Flaky smoke)
[Pipeline] catchError
[Pipeline] {
[Pipeline] sh
+ ./smoke.sh
[Pipeline] }
ERROR: script returned exit code 3
[Pipeline] // catchError
[Pipeline] }
[Pipeline] // stage
[Pipeline] stage
[Pipeline] { (Build)
[Pipeline] sh
+ make build-docs
[Pipeline] }
[Pipeline] // stage
[Pipeline] stage
[Pipeline] { (Test)
[Pipeline] sh
+ make test
make: *** [Makefile:12: test] Error 2
[Pipeline] }
[Pipeline] // stage
[Pipeline] stage
[Pipeline] { (Deploy)
Stage "Deploy" skipped due to earlier failure(s)
[Pipeline] }
[Pipeline] // stage
[Pipeline] stage
[Pipeline] { (Release)
Stage "Release" skipped due to when conditional
[Pipeline] }
[Pipeline] // stage
[Pipeline] }
[Pipeline] // withEnv
[Pipeline] }
[Pipeline] // node
[Pipeline] }
[Pipeline] // podTemplate
[Pipeline] End of Pipeline
ERROR: script returned exit code 2
Finished: FAILURE"""


def test_jenkins_console_gives_stages_with_outcomes() -> None:
    lines = log_lines(JENKINS_CONSOLE.splitlines())
    out = feed_all(LogSignals(TrackingConfig()), lines)
    assert stages(out) == [
        ("jenkins-stage:Declarative: Checkout SCM", "running", None),
        ("jenkins-stage:Declarative: Checkout SCM", "succeeded", None),
        ("jenkins-stage:Build", "running", None),
        ("jenkins-stage:Build", "succeeded", None),
        ("jenkins-stage:Checks", "running", None),
        ("jenkins-stage:Lint", "running", None),
        ("jenkins-stage:Typecheck", "running", None),
        ("jenkins-stage:Typecheck", "succeeded", None),  # innermost first: see module gaps
        ("jenkins-stage:Lint", "succeeded", None),
        ("jenkins-stage:Checks", "succeeded", None),
        ("jenkins-stage:Flaky smoke", "running", None),
        ("jenkins-stage:Flaky smoke", "failed", "failed"),
        ("jenkins-stage:Build#2", "running", None),
        ("jenkins-stage:Build#2", "succeeded", None),
        ("jenkins-stage:Test", "running", None),
        ("jenkins-stage:Test", "succeeded", None),
        ("jenkins-stage:Deploy", "running", None),
        ("jenkins-stage:Test", "failed", "failed (later stages skipped)"),
        ("jenkins-stage:Deploy", "cancelled", "skipped"),
        ("jenkins-stage:Release", "running", None),
        ("jenkins-stage:Release", "cancelled", "skipped"),
    ]
    # Flaky smoke failed through catchError (and the pipeline went on); the Test failure is
    # inferred from the skip line, since its ERROR line comes only after End of Pipeline.
    by_id = {s.stage_id: s for s in by_kind(out, SignalKind.STAGE) if s.status is not None}
    test_opened = lines[JENKINS_CONSOLE.splitlines().index("[Pipeline] { (Test)")].event_time
    test_closed = [s for s in by_kind(out, SignalKind.STAGE) if s.stage_id == "jenkins-stage:Test"]
    assert all(s.started_at == test_opened for s in test_closed)
    assert test_closed[1].finished_at == test_closed[2].finished_at  # correction keeps the end
    assert test_closed[2].event_time > test_closed[1].event_time  # and wins as the later event
    assert by_id["jenkins-stage:Build#2"].stage_name == "Build"
    # A Jenkins agent's logs wait for the CI event that names the run.
    assert {(s.run_id, s.correlation_key) for s in out} == {(None, "jenkins:job/shop/job/main/42/")}


def test_failure_inference_counts_failed_stages_once() -> None:
    # With `catchError` out of the picture: the first stage that fails is found from the skip.
    console = [
        "[Pipeline] stage",
        "[Pipeline] { (Compile)",
        "[Pipeline] }",
        "[Pipeline] // stage",
        "[Pipeline] stage",
        "[Pipeline] { (Unit)",
        "+ go test ./...",
        "[Pipeline] }",
        "[Pipeline] // stage",
        "[Pipeline] stage",
        "[Pipeline] { (Package)",
        'Stage "Package" skipped due to earlier failure(s)',
        "[Pipeline] }",
        "[Pipeline] // stage",
        "[Pipeline] stage",
        "[Pipeline] { (Publish)",
        'Stage "Publish" skipped due to earlier failure(s)',
        "[Pipeline] }",
        "[Pipeline] // stage",
    ]
    out = feed_all(LogSignals(TrackingConfig()), log_lines(console))
    failed = [s for s in by_kind(out, SignalKind.STAGE) if s.status is RunStatus.FAILED]
    assert [s.stage_id for s in failed] == ["jenkins-stage:Unit"]


def test_jenkins_lines_with_timestamper_prefix_and_colours_are_read() -> None:
    console = [
        "[2026-03-02T10:00:00.123Z] [Pipeline] stage",
        "[2026-03-02T10:00:00.125Z] \x1b[8mha:////4Lz\x1b[0m[Pipeline] { (Integration)",
        "[2026-03-02T10:00:03.001Z] \x1b[31mERROR: connection refused\x1b[0m",
        "[2026-03-02T10:00:03.010Z] [Pipeline] }",
        "[2026-03-02T10:00:03.011Z] [Pipeline] // stage",
    ]
    out = feed_all(LogSignals(TrackingConfig()), log_lines(console))
    assert stages(out) == [
        ("jenkins-stage:Integration", "running", None),
        ("jenkins-stage:Integration", "failed", "failed"),
    ]
    end = by_kind(out, SignalKind.STAGE)[1]
    assert end.started_at == T0 + timedelta(seconds=1)
    assert end.finished_at == T0 + timedelta(seconds=4)


def test_jenkins_stages_can_be_switched_off() -> None:
    lines = log_lines(JENKINS_CONSOLE.splitlines())
    out = feed_all(LogSignals(TrackingConfig(jenkins_stages=False)), lines)
    assert by_kind(out, SignalKind.STAGE) == []


def test_activity_is_reported_once_per_bucket_at_the_bucket_start() -> None:
    start = datetime(2026, 3, 2, 10, 0, 50, tzinfo=UTC)
    lines = log_lines([f"line {i}" for i in range(20)], step_s=5.0, start=start)  # to 10:02:25
    out = feed_all(LogSignals(TrackingConfig(activity_bucket_s=60)), lines)
    activity = by_kind(out, SignalKind.ACTIVITY)
    assert [s.event_time for s in activity] == [
        datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 10, 1, tzinfo=UTC),
        datetime(2026, 3, 2, 10, 2, tzinfo=UTC),
    ]
    assert len({s.signal_id for s in activity}) == 3
    late = log_lines(["written late"], start=start)[0]  # an older bucket: already reported
    signals = LogSignals(TrackingConfig())
    feed_all(signals, lines)
    assert by_kind(signals.feed(late), SignalKind.ACTIVITY) == []


def marker_config() -> TrackingConfig:
    rules = [
        LogMarkerRule(name="suite-start", pattern=r"^=== E2E START", action=MarkerAction.RUN_START),
        LogMarkerRule(
            name="suite-end",
            pattern=r"^=== E2E (?P<status>PASSED|FAILED|ABORTED)",
            action=MarkerAction.RUN_END,
        ),
        LogMarkerRule(
            name="phase-start",
            pattern=r"^>>> phase (?P<stage>[\w-]+) started",
            action=MarkerAction.STAGE_START,
        ),
        LogMarkerRule(
            name="phase-end",
            pattern=r"^>>> phase (?P<stage>[\w-]+) (?P<status>ok|failed)",
            action=MarkerAction.STAGE_END,
        ),
        LogMarkerRule(name="db-migrated", pattern=r"migrations applied", containers=["migrate*"]),
        LogMarkerRule(
            name="seeded",
            pattern=r"seed data loaded",
            action=MarkerAction.STAGE_END,
            stage="seed",
            status="succeeded",
        ),
    ]
    return TrackingConfig(log_markers=rules)


def test_log_markers_start_and_end_runs_and_stages() -> None:
    texts = [
        "=== E2E START suite=checkout",
        ">>> phase provision started",
        "seed data loaded (420 rows)",
        ">>> phase provision failed after 3 retries",
        "migrations applied",  # container glob does not match "e2e"
        "=== E2E FAILED (2 of 40 scenarios)",
    ]
    lines = log_lines(texts, container="e2e", key="job:qa/e2e-checkout")
    out = feed_all(LogSignals(marker_config()), lines)
    markers = [
        (s.marker, s.status.value if s.status else None) for s in by_kind(out, SignalKind.MARKER)
    ]
    assert markers == [
        ("suite-start", "running"),
        ("phase-start", None),
        ("seeded", None),
        ("phase-end", None),
        ("suite-end", "failed"),
    ]
    assert [(s.stage_id, s.stage_name, s.status) for s in by_kind(out, SignalKind.STAGE)] == [
        ("marker:provision", "provision", RunStatus.RUNNING),
        ("marker:seed", "seed", RunStatus.SUCCEEDED),
        ("marker:provision", "provision", RunStatus.FAILED),
    ]
    stage_end = by_kind(out, SignalKind.STAGE)[2]
    assert stage_end.finished_at == lines[3].event_time
    assert {s.run_id for s in out} == {"job:qa/e2e-checkout"}
    assert {s.source for s in out} == {"logs"}
    migrate = log_lines(["migrations applied"], container="migrate-db", key="job:qa/e2e")
    assert [
        s.marker for s in by_kind(LogSignals(marker_config()).feed(migrate[0]), SignalKind.MARKER)
    ] == ["db-migrated"]


def test_run_end_status_words_and_defaults() -> None:
    rules = [
        LogMarkerRule(name="end", pattern=r"RESULT: (?P<status>\w+)", action=MarkerAction.RUN_END),
        LogMarkerRule(
            name="bye", pattern=r"shutting down", action=MarkerAction.RUN_END, status="cancelled"
        ),
        LogMarkerRule(name="done", pattern=r"all done", action=MarkerAction.RUN_END),
    ]
    texts = ["RESULT: success", "RESULT: error", "RESULT: Aborted", "shutting down", "all done"]
    out = feed_all(LogSignals(TrackingConfig(log_markers=rules)), log_lines(texts, key="run-7"))
    assert [s.status for s in by_kind(out, SignalKind.MARKER)] == [
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.CANCELLED,
        RunStatus.SUCCEEDED,
    ]


def test_pytest_output_becomes_one_tests_signal_with_counts() -> None:
    texts = (DATA / "pytest-verbose-rerun.log").read_text(encoding="utf-8").splitlines()
    lines = log_lines(texts, container="step-pytest", key=TEKTON_RUN)
    out = feed_all(LogSignals(TrackingConfig()), lines)
    (tests,) = by_kind(out, SignalKind.TESTS)
    assert tests.run_id == TEKTON_RUN
    assert tests.tests is not None
    assert tests.tests.model_dump() == {
        "total": 8,
        "passed": 3,
        "failed": 2,  # one a RERUN attempt
        "skipped": 2,
        "error": 1,
    }
    assert len(tests.test_results) == 8
    # Results are completed by the session summary but stamped with their own lines' times.
    last_result = next(i for i, t in enumerate(texts) if "XFAIL (bug #12)" in t)
    assert tests.event_time == lines[last_result].event_time
    names = {(r.name, r.attempt, r.status.value) for r in tests.test_results}
    assert ("test_pay", 2, "passed") in names


def test_lines_redelivered_by_kafka_are_not_parsed_twice() -> None:
    # A rebalance redelivers from the last commit: the parser must not take the repeated
    # output for a retry of every test (that doubled the run's test counts).
    texts = (DATA / "pytest-verbose-rerun.log").read_text(encoding="utf-8").splitlines()
    lines = log_lines(texts, container="step-pytest", key=TEKTON_RUN)
    once = LogSignals(TrackingConfig())
    expected = [s for i, line in enumerate(lines) for s in once.feed(line, (3, 100 + i))]
    redelivered = LogSignals(TrackingConfig())
    half = len(lines) // 2
    got = [s for i, line in enumerate(lines[:half]) for s in redelivered.feed(line, (3, 100 + i))]
    for i, line in enumerate(lines):  # from the start again, as after a rebalance
        got.extend(redelivered.feed(line, (3, 100 + i)))
    assert got == expected
    (tests,) = by_kind(got, SignalKind.TESTS)
    assert tests.tests is not None and tests.tests.total == 8
    # Without positions (a capture replayed offline) the repeated lines are older than the
    # stream's newest line: sent again, they give nothing either.
    unpositioned = LogSignals(TrackingConfig())
    assert feed_all(unpositioned, lines + lines) == expected


def test_a_line_sent_again_does_not_open_a_second_attempt() -> None:
    # Issue 12: a go test stream whose first line came again (a log stream re-opened, a
    # capture holding it twice) counted 12 tests for 11, the first "passed and failed".
    texts = (DATA / "go-test-v.log").read_text(encoding="utf-8").splitlines()
    lines = log_lines(texts, container="go", key="argo:ci/wf-9")
    once = feed_all(LogSignals(TrackingConfig()), lines)
    again = feed_all(LogSignals(TrackingConfig()), [lines[0], lines[1], lines[0], *lines[2:]])
    assert again == once
    results = [r for signal in by_kind(again, SignalKind.TESTS) for r in signal.test_results]
    assert [r.name for r in results if r.name == "TestAdd"] == ["TestAdd"]
    assert all(result.attempt == 1 for result in results)


def test_go_results_pending_at_the_end_of_a_stream_come_out_on_finish() -> None:
    texts = (DATA / "go-test-v.log").read_text(encoding="utf-8").splitlines()
    texts = texts[: texts.index("FAIL\tgithub.com/acme/calc\t0.131s")]  # package line missing
    signals = LogSignals(TrackingConfig())
    out = feed_all(signals, log_lines(texts, container="go", key="argo:ci/wf-9"))
    assert by_kind(out, SignalKind.TESTS) == []
    (tests,) = signals.finish_stream("ci", "shop-main-42-agent", "go")
    assert tests.tests is not None and (tests.tests.total, tests.tests.failed) == (7, 2)
    assert tests.provider == "argo"
    assert len(signals) == 0
    assert signals.finish_stream("ci", "shop-main-42-agent", "go") == []


def test_least_recently_fed_stream_is_finished_to_make_room() -> None:
    go = (DATA / "go-test-v.log").read_text(encoding="utf-8").splitlines()[:2]
    signals = LogSignals(TrackingConfig(), max_streams=1)
    feed_all(signals, log_lines(go, container="go", key="job:ci/a"))
    out = signals.feed(log_lines(["hello"], container="other", key="job:ci/b")[0])
    (tests,) = by_kind(out, SignalKind.TESTS)
    assert (tests.run_id, tests.test_results[0].name) == ("job:ci/a", "TestAdd")
    assert len(signals) == 1
    assert signals.flush() == []


def test_flush_finishes_every_stream() -> None:
    go = (DATA / "go-test-v.log").read_text(encoding="utf-8").splitlines()[:2]
    signals = LogSignals(TrackingConfig())
    feed_all(signals, log_lines(go, container="a", key="job:ci/a"))
    feed_all(signals, log_lines(go, container="b", key="job:ci/b"))
    assert [s.run_id for s in signals.flush()] == ["job:ci/a", "job:ci/b"]
    assert len(signals) == 0


def test_routing_of_log_lines() -> None:
    signals = LogSignals(TrackingConfig())
    assert signals.feed(log_lines(["no key"], key=None)[0]) == []
    assert len(signals) == 0
    (direct,) = signals.feed(log_lines(["x"], key=None, run_id="github:acme/shop:77:1")[0])
    assert (direct.run_id, direct.correlation_key) == ("github:acme/shop:77:1", None)
    (linked,) = signals.feed(
        log_lines(["x"], container="runner", key="github-runner:linux-x64-abc")[0]
    )
    assert (linked.run_id, linked.correlation_key, linked.provider) == (
        None,
        "github-runner:linux-x64-abc",
        None,
    )


def test_same_lines_give_the_same_signals_in_a_fresh_instance() -> None:
    texts = (
        JENKINS_CONSOLE.splitlines()
        + (DATA / "pytest-verbose-rerun.log").read_text(encoding="utf-8").splitlines()
        + ["=== E2E START", ">>> phase provision started", "=== E2E PASSED"]
    )
    lines = log_lines(texts, step_s=7.0)
    first, second = LogSignals(marker_config()), LogSignals(marker_config())
    a = feed_all(first, lines) + first.flush()
    b = feed_all(second, lines) + second.flush()
    assert a == b
    assert len({s.signal_id for s in a}) == len(a)
    assert {s.kind for s in a} >= {
        SignalKind.ACTIVITY,
        SignalKind.STAGE,
        SignalKind.MARKER,
        SignalKind.TESTS,
    }


def test_a_stream_handed_away_and_back_is_rebuilt_not_carried_on_stale() -> None:
    """Scale-out: worker A reads the start of a pytest stream, its partition goes to worker B,
    which reads on, then comes back to A. A releases the stream when the partition
    goes and rebuilds it from the stream's start up to B's commit (as `log_recovery` does, its
    outputs discarded): what A then reports equals what one worker alone reports."""
    texts = (DATA / "pytest-verbose-rerun.log").read_text(encoding="utf-8").splitlines()
    lines = log_lines(texts, container="step-pytest", key=TEKTON_RUN)
    at = [(3, 100 + i) for i in range(len(lines))]
    # A reads the first two results, B the next three (a failure, a rerun, its pass).
    first = next(i for i, text in enumerate(texts) if "[two items] PASSED" in text) + 1
    second = next(i for i, text in enumerate(texts) if "test_pay PASSED" in text) + 1

    alone = LogSignals(TrackingConfig())
    expected = [s for i, line in enumerate(lines) for s in alone.feed(line, at[i])][-1:]

    def hand_back(release: bool) -> list[RunSignal]:
        worker_a = LogSignals(TrackingConfig())
        for i in range(first):
            worker_a.feed(lines[i], at[i])
        if release:
            assert worker_a.release(lambda key: key[2] == "step-pytest") == 1
            assert not worker_a.knows("ci", "shop-main-42-agent", "step-pytest")
            for i in range(second):  # the partition is back: rebuilt up to B's commit
                worker_a.feed(lines[i], at[i])
        return [s for i in range(second, len(lines)) for s in worker_a.feed(lines[i], at[i])]

    assert by_kind(hand_back(release=True), SignalKind.TESTS) == by_kind(expected, SignalKind.TESTS)
    # Kept instead (before: no release, so the router saw no need to rebuild), its parser
    # never saw B's third.
    assert by_kind(hand_back(release=False), SignalKind.TESTS) != by_kind(
        expected, SignalKind.TESTS
    )
