"""Build the scenario captures in this directory (deterministic: same input, same bytes).

    .venv/bin/python tests/data/scenarios/build_scenarios.py           # (re)write every scenario
    .venv/bin/python tests/data/scenarios/build_scenarios.py --check   # write, then verify

Each scenario NAME gets three files:

    NAME.jsonl          the capture (schemas/capture.py), records ordered by ``ts``
    NAME.expected.json  every run the capture should produce, with its stages and test counts,
                        and exactly the structure anomalies it should raise
    NAME.config.yaml    the config for ``sentinel --config NAME.config.yaml analyze NAME.jsonl``

Inputs are real payload shapes: GitHub webhooks are the corpus payloads in
``tests/data/github-webhooks`` with ids, times, names and conclusions changed; Jenkins posts follow
``tests/data/jenkins`` (Notification plugin); Kubernetes objects are Pods, Jobs and core/v1 Events
as the API server returns them (built from per-container timelines, so every snapshot is
self-consistent); test output reuses lines of ``tests/data/test-logs``. The builders of all these
(and of the capture itself) are in ``tests/data/capture_builder.py``, shared with
``tests/data/anomaly_scenarios/build_anomaly_scenarios.py``; this file holds the scenarios and
their checks.

Every scenario ends with unrelated background activity (a Deployment rollout in another
namespace: a pod with no correlation label and its Events), minutes after the last run ended, so
that event time passes every run's end, quiet period, lateness and settle time without creating
a run. ``--check`` verifies what can be verified without the pipeline: captures parse, configs
load, webhooks normalise to the expected run ids, Kubernetes objects to the expected correlation
keys (and event times that match the record times), log lines carry their pod's key, test lines
give the expected counts through ``TestLogParser``, and the expected structure anomalies follow
from the rules (a small independent evaluation of the rules against the scenario's facts).
"""

# ruff: noqa: E501  (payload literals: image digests, coloured Maven lines)
from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
for path in (ROOT, HERE.parent):  # the project, and tests/data for capture_builder
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from capture_builder import (  # noqa: E402  (tests/data/capture_builder.py)
    ANSI,
    BUSYBOX_IMAGE,
    JENKINS_CORPUS,
    BaseScenario,
    Capture,
    CheckFailed,
    Container,
    GithubJob,
    GithubRun,
    Job,
    Obj,
    Pod,
    arc_runner_pod,
    at,
    background_rollout,
    completed_steps,
    cronjob_job_name,
    emit_pod,
    epoch_ms,
    expect,
    job_pod,
    job_scenario_objects,
    k8s_time,
    owner_ref,
    pytest_banner,
    pytest_header,
    pytest_line,
    read_written,
    replayed_log_line,
    run_generator,
    runner_online,
    runner_says,
    source_lines,
    steps,
    surefire_line,
    tekton_pod,
    uid,
)

# --------------------------------------------------------------------------------------------
# scenarios


@dataclass
class RunFacts:
    """What the generator knows about a run, for the --check rule evaluation."""

    run_id: str
    provider: str
    pipeline: str | None
    namespace: str | None
    status: str
    stages: list[tuple[str, str, datetime, datetime | None]]  # name, status, start, end
    containers: set[str]
    start: datetime
    end: datetime


@dataclass
class Scenario(BaseScenario):
    runs: list[RunFacts]
    tests: dict[str, dict[str, int]]
    key_runs: dict[str, str]  # correlation key -> run id
    anomalies: list[Obj]
    hung: tuple[str, datetime] | None = None  # run id, its last input

    def expected(self) -> Obj:
        zero = {"total": 0, "passed": 0, "failed": 0, "skipped": 0, "error": 0}
        return {
            "runs": [
                {
                    "run_id": run.run_id,
                    "status": run.status,
                    "stages": [{"name": n, "status": s} for n, s, _, _ in run.stages],
                    "tests": self.tests.get(run.run_id, zero),
                }
                for run in self.runs
            ],
            "anomalies": self.anomalies,
        }


def counts(passed: int = 0, failed: int = 0, skipped: int = 0, error: int = 0) -> dict[str, int]:
    return {
        "total": passed + failed + skipped + error,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "error": error,
    }


# --- arc_github_run ---------------------------------------------------------------------------


def arc_github_run() -> Scenario:
    cap = Capture("arc_github_run")
    t0 = datetime(2026, 1, 12, 9, 0, 0, tzinfo=UTC)
    run = GithubRun(
        run_id=12790345118,
        run_number=842,
        workflow="ci",
        workflow_id=61553201,
        path=".github/workflows/ci.yml",
        branch="main",
        sha="9c1d3f0e7b2a4c5d8e9f0a1b2c3d4e5f6a7b8c9d",
        message="cart: round discounts half-up (#412)",
        check_suite_id=33104517720,
        created=t0,
    )
    lint_pod_name = "arc-runner-set-7x2kq-runner-9tqzl"
    test_pod_name = "arc-runner-set-7x2kq-runner-hx4m8"
    lint = GithubJob(
        run, 35650012741, "lint", ["arc-runner-set"], lint_pod_name, 1041, "Default", 1
    )
    test = GithubJob(
        run, 35650012893, "test", ["arc-runner-set"], test_pod_name, 1042, "Default", 1
    )

    cap.github(at(t0, 1), "workflow_run", run.body("requested", "queued", None, t0, t0))
    q = at(t0, 2)
    cap.github(at(q, 0.8), "workflow_job", lint.queued(q))
    cap.github(at(q, 0.9), "workflow_job", test.queued(q))

    # ARC's listener scales the runner set: one ephemeral runner pod per queued job.
    lint_pod = arc_runner_pod(
        lint_pod_name,
        at(t0, 3),
        at(t0, 12),
        at(t0, 77),
        "aks-ci-38211745-vmss000004",
        "10.244.4.23",
        at(t0, 79),
    )
    test_pod = arc_runner_pod(
        test_pod_name,
        at(t0, 3),
        at(t0, 13),
        at(t0, 113),
        "aks-ci-38211745-vmss000005",
        "10.244.5.41",
        at(t0, 115),
    )
    for pod in (lint_pod, test_pod):
        emit_pod(cap, pod)
        pod.emit_deleted(cap, at(pod.deletion_requested, 1))  # type: ignore[arg-type]

    cap.github(
        at(t0, 16.5), "workflow_run", run.body("in_progress", "in_progress", None, at(t0, 16), t0)
    )

    lint_started, test_started = at(t0, 17), at(t0, 20)
    cap.github(at(lint_started, 1), "workflow_job", lint.picked_up(q, lint_started))
    cap.github(at(test_started, 1), "workflow_job", test.picked_up(q, test_started))

    # Runner stdout (the actions runner prints these; the pytest lines stand for the step
    # output a runner container shows when the job runs in it).
    for pod, job_name, started in (
        (lint_pod, "lint", lint_started),
        (test_pod, "test", test_started),
    ):
        runner_online(cap, pod)
        runner_says(cap, pod, at(started, 1), f"Running job: {job_name}")

    workspace = "/home/runner/_work/octo-repo/octo-repo"
    pytest_lines = [
        *pytest_header("3.11.7", f"{workspace}/.venv/bin/python", workspace),
        "collecting ... collected 5 items",
        "",
        pytest_line("tests/unit/test_cart.py::test_add_item", "PASSED", 20),
        pytest_line("tests/unit/test_cart.py::test_total[two items]", "PASSED", 40),
        pytest_line("tests/unit/test_cart.py::TestCheckout::test_pay", "PASSED", 60),
        pytest_line(
            "tests/unit/test_cart.py::TestCheckout::test_refund",
            "SKIPPED (refunds are disabled)",
            80,
        ),
        pytest_line("tests/unit/test_db.py::test_legacy", "XFAIL (bug #12)", 100),
        "",
        pytest_banner("slowest 3 durations"),
        "0.52s call     tests/unit/test_cart.py::TestCheckout::test_pay",
        "0.01s call     tests/unit/test_cart.py::test_add_item",
        "0.01s setup    tests/unit/test_cart.py::test_total[two items]",
        "",
        "(2 durations < 0.005s hidden.  Use -vv to show these durations.)",
        pytest_banner("3 passed, 1 skipped, 1 xfailed in 0.98s"),
    ]
    cap.lines(at(t0, 62), 0.25, test_pod, "runner", pytest_lines)

    lint_done, test_done = at(t0, 75), at(t0, 110)
    cap.github(
        at(lint_done, 1),
        "workflow_job",
        lint.body(
            "completed",
            "completed",
            "success",
            q,
            lint_started,
            lint_done,
            completed_steps(
                lint_started,
                [
                    ("Set up job", 2),
                    ("Run actions/checkout@v4", 3),
                    ("Run actions/setup-python@v5", 9),
                    ("Run ruff check .", 41),
                    ("Post Run actions/checkout@v4", 1),
                    ("Complete job", 2),
                ],
            ),
        ),
    )
    runner_says(cap, lint_pod, at(lint_done, 0.5), "Job lint completed with result: Succeeded")
    cap.github(
        at(test_done, 1),
        "workflow_job",
        test.body(
            "completed",
            "completed",
            "success",
            q,
            test_started,
            test_done,
            completed_steps(
                test_started,
                [
                    ("Set up job", 2),
                    ("Run actions/checkout@v4", 3),
                    ("Run actions/setup-python@v5", 8),
                    ("Install", 25),
                    ("Run pytest -v --durations=3", 47),
                    ("Post Run actions/checkout@v4", 1),
                    ("Complete job", 4),
                ],
            ),
        ),
    )
    runner_says(cap, test_pod, at(test_done, 0.5), "Job test completed with result: Succeeded")
    run_done = at(t0, 111)
    cap.github(
        at(run_done, 1), "workflow_run", run.body("completed", "completed", "success", run_done, t0)
    )

    background_rollout(cap, at(t0, 420), "aks-system-38211745-vmss000000", "10.244.0.57")

    config = {
        "structure": {
            "rules": [
                {
                    "name": "ci-workflow-shape",
                    "match": {"provider": "github", "repository": "octo-org/*", "pipeline": "ci"},
                    "severity": "error",
                    "required_stages": ["lint", "test"],
                    "stage_order": ["lint", "test"],
                    "max_run_duration_s": 1800,
                    "max_stage_duration_s": {"test": 900, "lint": 600},
                    "min_tests": 3,
                    "required_containers": ["runner"],
                }
            ]
        }
    }
    facts = RunFacts(
        run.sentinel_id,
        "github",
        "ci",
        None,
        "succeeded",
        [
            ("lint", "succeeded", lint_started, lint_done),
            ("test", "succeeded", test_started, test_done),
        ],
        {"runner"},
        t0,
        run_done,
    )
    return Scenario(
        name="arc_github_run",
        description=(
            "GitHub workflow run 'ci' (octo-org/octo-repo, main) with two jobs, lint and test, each "
            "on an ARC ephemeral runner pod (label actions.github.com/scale-set-name, pod name = "
            "workflow_job.runner_name). The test runner's log holds pytest -v output (3 passed, "
            "1 skipped, 1 xfailed). Jobs and run succeed; runner pods end and are deleted. The "
            "rule ci-workflow-shape is satisfied: no structure anomaly."
        ),
        capture=cap,
        config=config,
        runs=[facts],
        tests={run.sentinel_id: counts(passed=3, skipped=2)},
        key_runs={
            lint_pod.expected_key: run.sentinel_id,  # type: ignore[dict-item]
            test_pod.expected_key: run.sentinel_id,
        },  # type: ignore[dict-item]
        anomalies=[],
    )


# --- tekton_pipeline --------------------------------------------------------------------------


def tekton_pipeline() -> Scenario:
    cap = Capture("tekton_pipeline")
    t0 = datetime(2026, 1, 13, 11, 0, 0, tzinfo=UTC)
    pr = "shop-build-x7k2p"
    node = "gke-ci-pool-2-5e0c7c8a-q1rz"
    sha = "9c1d3f0e7b2a4c5d8e9f0a1b2c3d4e5f6a7b8c9d"

    fetch = tekton_pod(
        pr,
        "git-clone",
        "fetch-source",
        [
            Container(
                "step-clone",
                "gcr.io/tekton-releases/github.com/tektoncd/pipeline/cmd/git-init:v0.40.2",
                "gcr.io/tekton-releases/github.com/tektoncd/pipeline/cmd/git-init@sha256:"
                "28ff94e63e4058afc3f15b4c11c08cf3b54fa91faa5b6f4b7a1e3d0c5a9b8e7f",
                started=at(t0, 6),
                finished=at(t0, 14),
            ),
        ],
        at(t0, 1),
        node,
        "10.52.3.17",
        {
            "version": "0.9",
            "tekton.dev/categories": "Git",
            "tekton.dev/displayName": "git clone",
            "tekton.dev/pipelines.minVersion": "0.38.0",
            "tekton.dev/platforms": "linux/amd64,linux/s390x,linux/ppc64le,linux/arm64",
            "tekton.dev/tags": "git",
        },
    )
    maven_image = "gcr.io/cloud-builders/mvn:3.5.0-jdk-8"
    maven_id = "gcr.io/cloud-builders/mvn@sha256:57523fc43394d6d9d2414ee8d1c85ed7a13460cbb268c3cd16d28cfb3859e641"
    unit = tekton_pod(
        pr,
        "maven",
        "unit-tests",
        [
            Container(
                "step-mvn-settings",
                "cgr.dev/chainguard/busybox",
                BUSYBOX_IMAGE,
                started=at(t0, 21),
                finished=at(t0, 23),
            ),
            Container(
                "step-mvn-goals",
                maven_image,
                maven_id,
                started=at(t0, 21),
                finished=at(t0, 96),
                resources={"limits": {"memory": "2Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
            ),
        ],
        at(t0, 16),
        node,
        "10.52.3.18",
        {
            "version": "0.3",
            "tekton.dev/categories": "Build Tools",
            "tekton.dev/displayName": "Maven",
            "tekton.dev/pipelines.minVersion": "0.17.0",
            "tekton.dev/platforms": "linux/amd64,linux/s390x,linux/ppc64le",
            "tekton.dev/tags": "build-tool",
        },
    )
    kaniko_image = "gcr.io/kaniko-project/executor:v1.5.1"
    kaniko_id = "gcr.io/kaniko-project/executor@sha256:c6166717f7fe0b7da44908c986137ecfeab21f31ec3992f6e128fff8a94be8a5"
    build = tekton_pod(
        pr,
        "kaniko",
        "build-image",
        [
            Container(
                "step-build-and-push",
                kaniko_image,
                kaniko_id,
                started=at(t0, 102),
                finished=at(t0, 157),
            ),
            Container(
                "step-write-url",
                "docker.io/library/bash:5.1.4@sha256:c523c636b722339f41b6a431b44588ab2f762c5de5ec3bd7964420ff982fb1d9",
                "docker.io/library/bash@sha256:c523c636b722339f41b6a431b44588ab2f762c5de5ec3bd7964420ff982fb1d9",
                started=at(t0, 102),
                finished=at(t0, 158),
            ),
        ],
        at(t0, 97),
        node,
        "10.52.3.19",
        {
            "version": "0.6",
            "tekton.dev/categories": "Image Build",
            "tekton.dev/displayName": "Build and upload container image using Kaniko",
            "tekton.dev/pipelines.minVersion": "0.17.0",
            "tekton.dev/platforms": "linux/amd64,linux/arm64,linux/ppc64le",
            "tekton.dev/tags": "image-build",
        },
    )
    for pod in (fetch, unit, build):
        emit_pod(cap, pod)

    clone_ts = at(t0, 9)
    cap.log(
        clone_ts,
        fetch,
        "step-clone",
        json.dumps(
            {
                "level": "info",
                "ts": round(clone_ts.timestamp(), 6),
                "caller": "git/git.go:176",
                "msg": f"Successfully cloned https://github.com/octo-org/octo-repo.git @ {sha} "
                "(grafted, HEAD) in path /workspace/output/",
            },
            separators=(",", ":"),
        ),
    )
    cap.log(
        at(clone_ts, 1),
        fetch,
        "step-clone",
        json.dumps(
            {
                "level": "info",
                "ts": round(at(clone_ts, 1).timestamp(), 6),
                "caller": "git/git.go:215",
                "msg": "Successfully initialized and updated submodules in path /workspace/output/",
            },
            separators=(",", ":"),
        ),
    )

    info = surefire_line("[INFO] ")[: surefire_line("[INFO] ").index("]") + 1]  # coloured [INFO]
    warning = "[\x1b[1;33mWARNING\x1b[m]"
    mvn = [
        f"{info} Scanning for projects...",
        f"{info} ",
        f"{info} \x1b[1m-----------------------------< \x1b[0;36mcom.acme:cart\x1b[0;1m >------------------------------\x1b[m",
        f"{info} \x1b[1mBuilding cart 1.4.0-SNAPSHOT\x1b[m",
        f"{info}   from pom.xml",
        f"{info} \x1b[1m--------------------------------[ jar ]---------------------------------\x1b[m",
        *source_lines("surefire-3.x.log")[:8],  # surefire banner, T E S T S, Running CartTest
        f"{warning} \x1b[1;33mTests \x1b[mrun: \x1b[1m3\x1b[m, Failures: 0, Errors: 0, "
        f"\x1b[1;33mSkipped: \x1b[0;1;33m1\x1b[m, Time elapsed: 0.048 s -- in \x1b[1mcom.acme.cart.CartTest\x1b[m",
        f"{info} com.acme.cart.CartTest.testAddItem -- Time elapsed: 0.004 s",
        f"{info} com.acme.cart.CartTest.testTotal -- Time elapsed: 0.011 s",
        f"{warning} com.acme.cart.CartTest.testLegacyCoupon -- Time elapsed: 0 s <<< SKIPPED!",
        f"{info} ",
        surefire_line("[INFO] Running com.acme.cart.TaxTest"),
        surefire_line("[INFO] Tests run: 4, Failures: 0"),
        f"{info} com.acme.cart.TaxTest.testVat -- Time elapsed: 0.002 s",
        f"{info} com.acme.cart.TaxTest.testReducedRate -- Time elapsed: 0.001 s",
        f"{info} com.acme.cart.TaxTest.testZeroRated -- Time elapsed: 0.001 s",
        f"{info} com.acme.cart.TaxTest.testRounding -- Time elapsed: 0.003 s",
        f"{info} ",
        surefire_line("[INFO] Results:"),
        f"{info} ",
        f"{warning} \x1b[1;33mTests run: 7, Failures: 0, Errors: 0, Skipped: 1\x1b[m",
        f"{info} ",
        f"{info} \x1b[1m------------------------------------------------------------------------\x1b[m",
        f"{info} \x1b[1;32mBUILD SUCCESS\x1b[m",
        f"{info} \x1b[1m------------------------------------------------------------------------\x1b[m",
        f"{info} Total time:  01:12 min",
        f"{info} Finished at: 2026-01-13T11:01:35Z",
        f"{info} \x1b[1m------------------------------------------------------------------------\x1b[m",
    ]
    cap.lines(at(t0, 24), 0.5, unit, "step-mvn-goals", mvn[:6])
    cap.lines(at(t0, 80), 0.25, unit, "step-mvn-goals", mvn[6:])

    kaniko = [
        "INFO[0000] Retrieving image manifest eclipse-temurin:21-jre ",
        "INFO[0000] Retrieving image eclipse-temurin:21-jre from registry index.docker.io ",
        "INFO[0003] Built cross stage deps: map[]                ",
        "INFO[0003] Retrieving image manifest eclipse-temurin:21-jre ",
        "INFO[0003] Returning cached image manifest              ",
        "INFO[0004] Executing 0 build triggers                   ",
        "INFO[0004] Building stage 'eclipse-temurin:21-jre' [idx: '0', base-idx: '-1'] ",
        "INFO[0004] Unpacking rootfs as cmd COPY target/cart-1.4.0-SNAPSHOT.jar /app/app.jar requires it. ",
        "INFO[0041] COPY target/cart-1.4.0-SNAPSHOT.jar /app/app.jar ",
        "INFO[0041] Taking snapshot of files...                  ",
        'INFO[0042] ENTRYPOINT ["java", "-jar", "/app/app.jar"] ',
        "INFO[0042] Pushing image to registry.example.com/shop/cart:9c1d3f0 ",
        "INFO[0054] Pushed registry.example.com/shop/cart@sha256:"
        "4b1f0c6d2e8a9b7c5d3e1f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c ",
    ]
    cap.lines(at(t0, 103), 4.0, build, "step-build-and-push", kaniko)

    background_rollout(cap, at(t0, 480), "gke-ci-pool-1-3b1d9e2f-h7kd", "10.52.1.40")

    run_id = f"tekton:ci/{pr}"
    config = {
        "structure": {
            "rules": [
                {
                    "name": "shop-build-pipeline",
                    "match": {"namespace": "ci"},
                    "severity": "warning",
                    "required_stages": ["fetch-source", "unit-tests", "build-image"],
                    "stage_order": ["fetch-source", "unit-tests", "build-image"],
                    "max_run_duration_s": 1800,
                    "max_stage_duration_s": {"unit-tests": 600, "build-image": 600},
                    "min_tests": 5,
                    "required_containers": ["step-mvn-goals"],
                }
            ]
        }
    }
    facts = RunFacts(
        run_id,
        "tekton",
        "shop-build",
        "ci",
        "succeeded",
        [
            ("fetch-source", "succeeded", at(t0, 6), at(t0, 14)),
            ("unit-tests", "succeeded", at(t0, 21), at(t0, 96)),
            ("build-image", "succeeded", at(t0, 102), at(t0, 158)),
        ],
        {
            "step-clone",
            "step-mvn-settings",
            "step-mvn-goals",
            "step-build-and-push",
            "step-write-url",
        },
        at(t0, 1),
        at(t0, 158),
    )
    return Scenario(
        name="tekton_pipeline",
        description=(
            "Tekton PipelineRun ci/shop-build-x7k2p of Pipeline shop-build: three TaskRun pods "
            "(labels tekton.dev/pipelineRun, taskRun, pipelineTask) run one after the other: "
            "fetch-source (git-clone), unit-tests (maven; Surefire 3 output, plain report format: "
            "7 tests, 6 passed, 1 skipped) and build-image (kaniko). No CI webhook and no Job: "
            "the run (tekton:ci/shop-build-x7k2p) ends succeeded when all its pods have "
            "Succeeded plus the quiet period. Stages are the pipelineTask names. The rule "
            "shop-build-pipeline is satisfied: no structure anomaly."
        ),
        capture=cap,
        config=config,
        runs=[facts],
        tests={run_id: counts(passed=6, skipped=1)},
        key_runs={fetch.expected_key: run_id},  # type: ignore[dict-item]
        anomalies=[],
    )


# --- jenkins_k8s_plugin -----------------------------------------------------------------------


def jenkins_body(
    phase: str, number: int, stamp: datetime, status: str | None = None, duration_ms: int = 0
) -> Obj:
    """A Notification plugin post, in the shape of tests/data/jenkins/multibranch_completed.json."""
    body = json.loads((JENKINS_CORPUS / "multibranch_completed.json").read_text())
    job_url = "job/shop/job/api/job/main/"
    body["name"] = "main"
    body["display_name"] = "main"
    body["url"] = job_url
    build = body["build"]
    build.update(
        {
            "full_url": f"https://ci.example.com/{job_url}{number}/",
            "number": number,
            "queue_id": 20931,
            "timestamp": epoch_ms(stamp),
            "duration": duration_ms,
            "phase": phase,
            "url": f"{job_url}{number}/",
            "scm": {
                "url": "https://github.com/octo-org/shop-api.git",
                "branch": "main",
                "commit": "5e7a9c1b3d2f4e6a8b0c1d2e3f4a5b6c7d8e9f01",
                "changes": [
                    "src/main/java/com/acme/cart/Cart.java",
                    "src/test/java/com/acme/cart/CartTest.java",
                ],
                "culprits": ["alice"],
            },
            "log": "",
            "notes": "",
            "artifacts": {},
        }
    )
    build.pop("parameters", None)
    build.pop("test_summary", None)  # no junit step in this Jenkinsfile
    if status is None:
        build.pop("status", None)
    else:
        build["status"] = status
    if phase != "COMPLETED":
        build.pop("changes", None)
    return body


def jenkins_k8s_plugin() -> Scenario:
    cap = Capture("jenkins_k8s_plugin")
    t0 = datetime(2026, 1, 15, 14, 0, 0, tzinfo=UTC)
    number = 57
    run_url = f"job/shop/job/api/job/main/{number}/"
    pod_name = "shop-api-main-57-q0m4t-3bz8h"
    node = "ip-10-0-33-118.eu-west-1.compute.internal"
    cap.jenkins(at(t0, 0.4), jenkins_body("STARTED", number, t0))

    jnlp = Container(
        "jnlp",
        "jenkins/inbound-agent:3283.v92c105e0f819-4",
        "docker.io/jenkins/inbound-agent@sha256:"
        "7f9b5e3c1d2a4b6c8e0f1a3b5c7d9e2f4a6b8c0d1e3f5a7b9c2d4e6f8a0b1c3d",
        env=[
            {"name": "JENKINS_URL", "value": "http://jenkins.jenkins.svc.cluster.local:8080/"},
            {"name": "JENKINS_TUNNEL", "value": "jenkins-agent.jenkins.svc.cluster.local:50000"},
            {"name": "JENKINS_AGENT_NAME", "value": pod_name},
            {"name": "JENKINS_NAME", "value": pod_name},
            {"name": "JENKINS_AGENT_WORKDIR", "value": "/home/jenkins/agent"},
            {"name": "REMOTING_OPTS", "value": "-noReconnectAfter 1d"},
        ],
        resources={"requests": {"cpu": "100m", "memory": "256Mi"}},
        started=at(t0, 9),
        finished=at(t0, 193),
        exit_code=143,
        reason="Error",
        extra={"workingDir": "/home/jenkins/agent"},
    )
    maven = Container(
        "maven",
        "maven:3.9.9-eclipse-temurin-21",
        "docker.io/library/maven@sha256:"
        "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b",
        command=["sleep"],
        args=["99d"],
        resources={"limits": {"memory": "3Gi"}, "requests": {"cpu": "1", "memory": "2Gi"}},
        started=at(t0, 8),
        finished=at(t0, 222),
        exit_code=137,
        reason="Error",
        extra={"tty": True, "workingDir": "/home/jenkins/agent"},
    )
    pod = Pod(
        namespace="jenkins-agents",
        name=pod_name,
        labels={
            "jenkins/jenkins-jenkins-agent": "true",
            "jenkins/label": "shop_api_main_57-q0m4t",
            "jenkins/label-digest": "0c1a7a3e9b6f2d4c8e1a5b7d9f3c6e2a4b8d0f1c",
            "kubernetes.jenkins.io/controller": "http___jenkins_jenkins_svc_cluster_local_8080x",
        },
        annotations={
            "buildUrl": f"http://jenkins.jenkins.svc.cluster.local:8080/{run_url}",
            "runUrl": run_url,
        },
        node=node,
        pod_ip="10.0.34.201",
        host_ip="10.0.33.118",
        created=at(t0, 2),
        scheduled=at(t0, 3),
        containers=[maven, jnlp],
        service_account="jenkins-agent",
        deletion_requested=at(t0, 192),
        spec_extra={"nodeSelector": {"kubernetes.io/os": "linux"}},
        expected_key=f"jenkins:{run_url}",
    )
    emit_pod(cap, pod, pulled={"maven": False})
    pod.emit_deleted(cap, at(t0, 222.5))

    remoting = [
        "Jan 15, 2026 2:00:10 PM hudson.remoting.jnlp.Main createEngine",
        f"INFO: Setting up agent: {pod_name}",
        "Jan 15, 2026 2:00:10 PM hudson.remoting.Engine startEngine",
        "INFO: Using Remoting version: 3283.v92c105e0f819",
        "Jan 15, 2026 2:00:11 PM hudson.remoting.jnlp.Main$CuiListener status",
        "INFO: Connected",
    ]
    cap.lines(at(t0, 10), 0.3, pod, "jnlp", remoting)

    surefire = [
        ANSI.sub("", line) for line in source_lines("surefire-3.x.log")
    ]  # mvn -B: no colour
    console_build = [
        "[Pipeline] {",
        "[Pipeline] stage",
        "[Pipeline] { (Checkout)",
        "[Pipeline] checkout",
        "The recommended git tool is: NONE",
        "using credential github-app-shop",
        "Cloning the remote Git repository",
        "Cloning with configured refspecs honoured and without tags",
        "Fetching upstream changes from https://github.com/octo-org/shop-api.git",
        " > git --version # timeout=10",
        "Checking out Revision 5e7a9c1b3d2f4e6a8b0c1d2e3f4a5b6c7d8e9f01 (main)",
        'Commit message: "cart: round discounts half-up"',
        "[Pipeline] }",
        "[Pipeline] // stage",
        "[Pipeline] stage",
        "[Pipeline] { (Build)",
        "[Pipeline] container",
        "[Pipeline] {",
        "[Pipeline] sh",
        "+ mvn -B -DskipTests package",
        "[INFO] Scanning for projects...",
        "[INFO] ",
        "[INFO] ---------------------------< com.acme:cart >----------------------------",
        "[INFO] Building cart 1.4.0-SNAPSHOT",
        "[INFO]   from pom.xml",
        "[INFO] --------------------------------[ jar ]---------------------------------",
        "[INFO] Tests are skipped.",
        "[INFO] Building jar: /home/jenkins/agent/workspace/shop_api_main/target/cart-1.4.0-SNAPSHOT.jar",
        "[INFO] ------------------------------------------------------------------------",
        "[INFO] BUILD SUCCESS",
        "[INFO] ------------------------------------------------------------------------",
        "[INFO] Total time:  38.412 s",
        "[Pipeline] }",
        "[Pipeline] // container",
        "[Pipeline] }",
        "[Pipeline] // stage",
    ]
    console_test = [
        "[Pipeline] stage",
        "[Pipeline] { (Test)",
        "[Pipeline] container",
        "[Pipeline] {",
        "[Pipeline] catchError",
        "[Pipeline] {",
        "[Pipeline] sh",
        "+ mvn -B test",
        "[INFO] Scanning for projects...",
        *surefire,
        "[INFO] ------------------------------------------------------------------------",
        "[INFO] BUILD FAILURE",
        "[INFO] ------------------------------------------------------------------------",
        "[INFO] Total time:  51.903 s",
        "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-surefire-plugin:3.2.5:test "
        "(default-test) on project cart: There are test failures.",
        "[Pipeline] }",
        "ERROR: script returned exit code 1",
        "[Pipeline] // catchError",
        "[Pipeline] }",
        "[Pipeline] // container",
        "[Pipeline] }",
        "[Pipeline] // stage",
    ]
    console_end = [
        "[Pipeline] }",
        "[Pipeline] // node",
        "[Pipeline] }",
        "[Pipeline] // podTemplate",
        "[Pipeline] End of Pipeline",
        "Finished: FAILURE",
    ]
    cap.log(
        at(t0, 12),
        pod,
        "jnlp",
        f"Running on {pod_name} in /home/jenkins/agent/workspace/shop_api_main",
    )
    cap.lines(at(t0, 13), 0.5, pod, "jnlp", console_build[:14])  # Checkout 13 .. 19.5
    cap.lines(at(t0, 20), 2.0, pod, "jnlp", console_build[14:])  # Build    20 .. 64
    cap.lines(at(t0, 70), 1.5, pod, "jnlp", console_test[:9])  # Test     70 ..
    cap.lines(at(t0, 120), 0.5, pod, "jnlp", console_test[9:])  #          .. ~144
    cap.lines(at(t0, 190), 0.5, pod, "jnlp", console_end)

    end = at(t0, 195)
    duration = epoch_ms(end) - epoch_ms(t0)
    cap.jenkins(at(end, 0.6), jenkins_body("COMPLETED", number, end, "FAILURE", duration))
    cap.jenkins(at(end, 3.6), jenkins_body("FINALIZED", number, at(end, 3), "FAILURE", duration))

    background_rollout(cap, at(t0, 560), "ip-10-0-31-7.eu-west-1.compute.internal", "10.0.30.12")

    run_id = f"jenkins:shop/api/main:{number}"
    config = {
        "structure": {
            "rules": [
                {
                    "name": "shop-api-pipeline-shape",
                    "match": {"provider": "jenkins", "pipeline": "shop/api/*"},
                    "severity": "warning",
                    "required_stages": ["Checkout", "Build", "Test"],
                    "stage_order": ["Checkout", "Build", "Test"],
                    "max_run_duration_s": 1800,
                    "max_stage_duration_s": {"Build": 300, "Test": 600},
                    "required_containers": ["jnlp", "maven"],
                },
                {
                    "name": "shop-api-main-deploys",
                    "match": {"provider": "jenkins", "pipeline": "shop/api/main"},
                    "severity": "error",
                    "required_stages": ["Deploy*"],
                },
            ]
        }
    }
    facts = RunFacts(
        run_id,
        "jenkins",
        "shop/api/main",
        None,
        "failed",
        [
            ("Checkout", "succeeded", at(t0, 13.5), at(t0, 19.5)),
            ("Build", "succeeded", at(t0, 22), at(t0, 64)),
            ("Test", "failed", at(t0, 71.5), at(t0, 144)),
        ],
        {"jnlp", "maven"},
        t0,
        at(end, 3),
    )
    return Scenario(
        name="jenkins_k8s_plugin",
        description=(
            "Jenkins multibranch build shop/api/main #57 (Notification plugin STARTED, COMPLETED "
            "FAILURE, FINALIZED FAILURE). Its agent pod (Kubernetes plugin: annotation runUrl "
            "job/shop/job/api/job/main/57/, containers jnlp and maven) carries the console: "
            "stages Checkout and Build succeed, Test runs mvn test (Surefire 3 output of "
            "surefire-3.x.log, default report format: only the failure and the error are named) "
            "inside catchError, which prints 'ERROR: script returned exit code 1' inside the "
            "stage: Test fails, the build is FAILURE. Rule shop-api-pipeline-shape is satisfied; "
            "rule shop-api-main-deploys requires a Deploy* stage the build never had: one "
            "missing_stage anomaly."
        ),
        capture=cap,
        config=config,
        runs=[facts],
        tests={run_id: counts(failed=1, error=1)},
        key_runs={pod.expected_key: run_id},  # type: ignore[dict-item]
        anomalies=[{"run_id": run_id, "type": "missing_stage", "subject": "Deploy*"}],
    )


# --- bare_job ---------------------------------------------------------------------------------

GO_IMAGE = "golang:1.23.4-bookworm"
GO_IMAGE_ID = "docker.io/library/golang@sha256:2e838582004fab0931693a3a84743ceccfbfeeafa8187e87291a1afea457ff7a"


def bare_job() -> Scenario:
    cap = Capture("bare_job")
    t0 = datetime(2026, 1, 16, 3, 0, 0, tzinfo=UTC)
    ns, name = "batch-tests", "calc-unit-tests"
    container = Container(
        "go-test",
        GO_IMAGE,
        GO_IMAGE_ID,
        command=["go", "test", "-v", "-short", "./..."],
        resources={"limits": {"memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "512Mi"}},
        started=at(t0, 6),
        finished=at(t0, 41),
        extra={"workingDir": "/src"},
    )
    pod = job_pod(
        ns,
        name,
        "x9v2k",
        [container],
        node="kind-worker2",
        pod_ip="10.244.2.14",
        host_ip="172.18.0.3",
        created=at(t0, 0),
        scheduled=at(t0, 1),
    )
    job = Job.for_pod(pod, t0, ready=at(t0, 6), finished=at(t0, 43), backoff_limit=2)
    job_scenario_objects(cap, job, pod, pulled=False)

    go_lines = [
        "go: downloading github.com/google/go-cmp v0.6.0",
        "=== RUN   TestAdd",
        "--- PASS: TestAdd (0.00s)",
        "=== RUN   TestDivide",
        "=== RUN   TestDivide/positive",
        "=== RUN   TestDivide/negative_numbers",
        "--- PASS: TestDivide (0.00s)",
        "    --- PASS: TestDivide/positive (0.00s)",
        "    --- PASS: TestDivide/negative_numbers (0.00s)",
        "=== RUN   TestSlow",
        "    calc_test.go:40: skipping slow test in -short mode",
        "--- SKIP: TestSlow (0.00s)",
        "=== RUN   TestParallelA",
        "=== PAUSE TestParallelA",
        "=== CONT  TestParallelA",
        "--- PASS: TestParallelA (0.12s)",
        "PASS",
        "ok  \tgithub.com/acme/calc\t0.131s",
        "?   \tgithub.com/acme/calc/cmd/calc\t[no test files]",
        "=== RUN   TestFormat",
        "--- PASS: TestFormat (0.01s)",
        "PASS",
        "ok  \tgithub.com/acme/calc/format\t0.014s",
    ]
    source = set(source_lines("go-test-v.log"))
    reused = [line for line in go_lines if line in source]
    assert len(reused) >= 17, "go lines should come from go-test-v.log"
    cap.log(at(t0, 8), pod, "go-test", go_lines[0])
    cap.lines(at(t0, 31), 0.4, pod, "go-test", go_lines[1:])

    background_rollout(cap, at(t0, 360), "kind-worker", "10.244.1.33")
    run_id = f"job:{ns}/{name}"
    config = {
        "structure": {
            "rules": [
                {
                    "name": "batch-unit-tests",
                    "match": {"namespace": "batch-tests"},
                    "severity": "warning",
                    "max_run_duration_s": 600,
                    "min_tests": 5,
                    "required_containers": ["go-test"],
                }
            ]
        }
    }
    facts = RunFacts(run_id, "kubernetes", name, ns, "succeeded", [], {"go-test"}, t0, at(t0, 43))
    return Scenario(
        name="bare_job",
        description=(
            "A plain Kubernetes Job batch-tests/calc-unit-tests (no CI system) whose pod (label "
            "batch.kubernetes.io/job-name) runs go test -v -short ./... (lines of go-test-v.log, "
            "all packages passing: 7 tests, 6 passed, 1 skipped). The Job gets Complete: run "
            "job:batch-tests/calc-unit-tests, provider kubernetes, succeeded, closed by the Job "
            "condition. No stages. Rule batch-unit-tests is satisfied: no structure anomaly."
        ),
        capture=cap,
        config=config,
        runs=[facts],
        tests={run_id: counts(passed=6, skipped=1)},
        key_runs={run_id: run_id},
        anomalies=[],
    )


# --- hang_timeout -----------------------------------------------------------------------------


def hang_timeout() -> Scenario:
    cap = Capture("hang_timeout")
    t0 = datetime(2026, 1, 17, 2, 0, 0, tzinfo=UTC)
    timeout = 600

    # The hung one: a nightly e2e Job created by a CronJob.
    ns, cron = "qa-e2e", "checkout-e2e"
    name = cronjob_job_name(cron, t0)
    app_labels = {"app.kubernetes.io/name": "checkout-e2e", "app.kubernetes.io/part-of": "qa"}
    image = "registry.example.com/qa/checkout-e2e:1.8.2"
    e2e = Container(
        "e2e",
        image,
        "registry.example.com/qa/checkout-e2e@sha256:"
        "c0ffee5e7a9c1b3d2f4e6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d",
        command=["/bin/sh", "-c", "./run-e2e.sh"],
        env=[
            {"name": "CHECKOUT_API", "value": "http://checkout-api.qa-e2e.svc.cluster.local:8080"}
        ],
        resources={"limits": {"memory": "2Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}},
        started=at(t0, 7),
        finished=None,
    )
    pod = job_pod(
        ns,
        name,
        "5n8wq",
        [e2e],
        node="worker-pool-a-7",
        pod_ip="10.42.7.88",
        host_ip="10.1.0.27",
        created=at(t0, 1),
        scheduled=at(t0, 2),
        extra_labels=app_labels,
    )
    job = Job.for_pod(
        pod,
        t0,
        labels=dict(app_labels),
        ready=at(t0, 7),
        finished=None,
        backoff_limit=0,
        annotations={"batch.kubernetes.io/cronjob-scheduled-timestamp": k8s_time(t0)},
        owner=owner_ref("CronJob", "batch/v1", cron, uid("cronjob", ns, cron)),
    )
    job_scenario_objects(cap, job, pod)
    hung_lines = [
        (10, "==> stage seed-data started"),
        (11, "seeding products into postgres://checkout-db.qa-e2e.svc:5432/checkout ..."),
        (95, "seeded 1200/4800 products"),
        (180, "seeded 2400/4800 products"),
        (250, "seeded 4800/4800 products in 248.6s"),
        (261, "==> stage seed-data succeeded"),
        (262, "==> stage wait-for-services started"),
        (263, "resolving checkout-api.qa-e2e.svc.cluster.local ..."),
        (265, "connecting to checkout-api.qa-e2e.svc.cluster.local:8080 (timeout: none)"),
    ]
    cap.timed(t0, pod, "e2e", hung_lines)
    last_input = at(t0, 265)

    # Another workload keeps event time moving: the reporting Job, later in the night.
    ns2, name2 = "reporting", "nightly-report"
    t1 = at(t0, 780)
    report = Container(
        "report",
        "registry.example.com/data/report-builder:3.2.0",
        "registry.example.com/data/report-builder@sha256:"
        "7e57ab1e5e7a9c1b3d2f4e6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c",
        args=["--date=2026-01-16", "--out=s3://reports/nightly/"],
        started=at(t1, 6),
        finished=at(t1, 482),
    )
    pod2 = job_pod(
        ns2,
        name2,
        "r7c4j",
        [report],
        node="worker-pool-a-3",
        pod_ip="10.42.3.51",
        host_ip="10.1.0.23",
        created=at(t1, 0),
        scheduled=at(t1, 1),
    )
    job2 = Job.for_pod(pod2, t1, ready=at(t1, 6), finished=at(t1, 484), backoff_limit=1)
    job_scenario_objects(cap, job2, pod2)
    report_lines = ["INFO building nightly report for 2026-01-16"]
    report_lines += [f"INFO aggregated {n * 250000} rows" for n in range(1, 8)]
    report_lines += ["INFO wrote s3://reports/nightly/2026-01-16.parquet (41.7 MiB)", "INFO done"]
    cap.lines(at(t1, 8), 52.0, pod2, "report", report_lines)  # t1+8 .. t1+476

    background_rollout(cap, at(t0, 1500), "worker-pool-a-1", "10.42.1.19")

    hung_id = f"job:{ns}/{name}"
    other_id = f"job:{ns2}/{name2}"
    config = {
        "tracking": {
            "inactivity_timeout_s": timeout,
            "log_markers": [
                {
                    "name": "stage-start",
                    "pattern": r"^==> stage (?P<stage>[a-z0-9-]+) started$",
                    "action": "stage_start",
                    "containers": ["e2e"],
                },
                {
                    "name": "stage-end",
                    "pattern": r"^==> stage (?P<stage>[a-z0-9-]+) (?P<status>succeeded|failed)$",
                    "action": "stage_end",
                    "containers": ["e2e"],
                },
            ],
        },
        "structure": {
            "rules": [
                {
                    "name": "checkout-e2e-nightly",
                    "match": {"namespace": "qa-e2e"},
                    "severity": "error",
                    "required_stages": ["seed-data", "wait-for-services", "e2e-tests"],
                    "max_stage_duration_s": {"seed-data": 180},
                }
            ]
        },
    }
    facts = [
        RunFacts(
            hung_id,
            "kubernetes",
            name,
            ns,
            "timed_out",
            [
                ("seed-data", "succeeded", at(t0, 10), at(t0, 261)),
                ("wait-for-services", "timed_out", at(t0, 262), None),
            ],
            {"e2e"},
            t0,
            at(last_input, timeout),
        ),
        RunFacts(other_id, "kubernetes", name2, ns2, "succeeded", [], {"report"}, t1, at(t1, 484)),
    ]
    return Scenario(
        name="hang_timeout",
        description=(
            "A nightly e2e Job qa-e2e/checkout-e2e-<minutes> (created by CronJob checkout-e2e) "
            "whose pod starts, logs stage markers (tracking.log_markers): seed-data runs 251 s "
            "and succeeds, wait-for-services starts and the pod blocks on a TCP connect with no "
            "timeout. Nothing more ever comes from it (pod stays Running, Job stays active). "
            "inactivity_timeout_s is 600; the other workload (Job reporting/nightly-report, "
            "13..21 min later, succeeded) and a monitoring rollout at +25 min carry event time "
            "far past last input + timeout + lateness + settle, so the e2e run ends timed_out "
            "with wait-for-services timed_out. Rule checkout-e2e-nightly is violated twice: "
            "seed-data took longer than 180 s (stage_too_long) and e2e-tests never started "
            "(missing_stage). The reporting run matches no rule."
        ),
        capture=cap,
        config=config,
        runs=facts,
        tests={},
        key_runs={hung_id: hung_id, other_id: other_id},
        anomalies=[
            {"run_id": hung_id, "type": "stage_too_long", "subject": "seed-data"},
            {"run_id": hung_id, "type": "missing_stage", "subject": "e2e-tests"},
        ],
        hung=(hung_id, last_input),
    )


# --- cancelled_run ----------------------------------------------------------------------------


def cancelled_run() -> Scenario:
    cap = Capture("cancelled_run")
    t0 = datetime(2026, 1, 18, 16, 20, 0, tzinfo=UTC)
    run = GithubRun(
        run_id=12811977450,
        run_number=317,
        workflow="e2e",
        workflow_id=61553377,
        path=".github/workflows/e2e.yml",
        branch="feature/checkout-v2",
        sha="4f2a8c6e0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a",
        message="checkout: new payment step",
        check_suite_id=33161200544,
        created=t0,
    )
    pod_name = "arc-runner-set-7x2kq-runner-m2p6d"
    build = GithubJob(
        run, 35721188230, "build", ["ubuntu-latest"], "GitHub Actions 17", 17, "GitHub Actions", 2
    )
    e2e = GithubJob(run, 35721190412, "e2e", ["arc-runner-set"], pod_name, 1057, "Default", 1)

    cap.github(at(t0, 1), "workflow_run", run.body("requested", "queued", None, t0, t0))
    q1 = at(t0, 1)
    cap.github(at(q1, 0.7), "workflow_job", build.queued(q1))
    cap.github(
        at(t0, 5.5), "workflow_run", run.body("in_progress", "in_progress", None, at(t0, 5), t0)
    )
    b_start, b_end = at(t0, 6), at(t0, 70)
    cap.github(at(b_start, 1), "workflow_job", build.picked_up(q1, b_start))
    cap.github(
        at(b_end, 1),
        "workflow_job",
        build.body(
            "completed",
            "completed",
            "success",
            q1,
            b_start,
            b_end,
            completed_steps(
                b_start,
                [
                    ("Set up job", 2),
                    ("Run actions/checkout@v4", 3),
                    ("Run make build", 55),
                    ("Run actions/upload-artifact@v4", 3),
                    ("Complete job", 1),  # until b_end
                ],
            ),
        ),
    )

    q2 = at(t0, 71)
    cap.github(at(q2, 0.6), "workflow_job", e2e.queued(q2))
    e_start, cancelled = at(t0, 86), at(t0, 305)
    pod = arc_runner_pod(
        pod_name,
        at(t0, 72),
        at(t0, 80),
        at(t0, 307),
        "aks-ci-38211745-vmss000004",
        "10.244.4.61",
        at(t0, 309),
    )
    emit_pod(cap, pod)
    pod.emit_deleted(cap, at(t0, 310))
    runner_online(cap, pod)
    cap.github(at(e_start, 1), "workflow_job", e2e.picked_up(q2, e_start))
    runner_says(cap, pod, at(e_start, 1), "Running job: e2e")

    # Someone cancels the run at +5 min: the running step is cancelled, the rest skipped, the
    # post steps still run; the runner reports Canceled and exits (ephemeral).
    cap.github(
        at(cancelled, 1),
        "workflow_job",
        e2e.body(
            "completed",
            "completed",
            "cancelled",
            q2,
            e_start,
            cancelled,
            steps(
                [
                    ("Set up job", "completed", "success", e_start, at(e_start, 3)),
                    (
                        "Run actions/checkout@v4",
                        "completed",
                        "success",
                        at(e_start, 3),
                        at(e_start, 6),
                    ),
                    (
                        "Run actions/download-artifact@v4",
                        "completed",
                        "success",
                        at(e_start, 6),
                        at(e_start, 9),
                    ),
                    (
                        "Run ./scripts/e2e.sh",
                        "completed",
                        "cancelled",
                        at(e_start, 9),
                        at(cancelled, -4),
                    ),
                    ("Run actions/upload-artifact@v4", "completed", "skipped", None, None),
                    (
                        "Post Run actions/checkout@v4",
                        "completed",
                        "success",
                        at(cancelled, -4),
                        at(cancelled, -3),
                    ),
                    ("Complete job", "completed", "success", at(cancelled, -3), cancelled),
                ]
            ),
        ),
    )
    runner_says(cap, pod, at(cancelled, 0.5), "Job e2e completed with result: Canceled")
    run_done = at(t0, 306)
    cap.github(
        at(run_done, 1),
        "workflow_run",
        run.body("completed", "completed", "cancelled", run_done, t0),
    )

    background_rollout(cap, at(t0, 600), "aks-system-38211745-vmss000000", "10.244.0.58")
    config = {
        "structure": {
            "rules": [
                {
                    "name": "e2e-workflow-shape",
                    "match": {"provider": "github", "pipeline": "e2e"},
                    "severity": "warning",
                    "required_stages": ["build", "e2e"],
                    "stage_order": ["build", "e2e"],
                    "max_run_duration_s": 3600,
                    "max_stage_duration_s": {"e2e": 2400},
                    "required_containers": ["runner"],
                }
            ]
        }
    }
    facts = RunFacts(
        run.sentinel_id,
        "github",
        "e2e",
        None,
        "cancelled",
        [
            ("build", "succeeded", b_start, b_end),
            ("e2e", "cancelled", e_start, cancelled),
        ],
        {"runner"},
        t0,
        run_done,
    )
    return Scenario(
        name="cancelled_run",
        description=(
            "GitHub workflow run 'e2e' on feature/checkout-v2: job build on a GitHub-hosted runner "
            "succeeds, then job e2e runs on an ARC runner pod and is cancelled after ~4 min (the "
            "running step cancelled, later steps skipped, post steps run; the runner logs "
            "'completed with result: Canceled' and its pod ends and is deleted). The run ends "
            "cancelled. No test output. Rule e2e-workflow-shape is satisfied: no structure anomaly."
        ),
        capture=cap,
        config=config,
        runs=[facts],
        tests={},
        key_runs={pod.expected_key: run.sentinel_id},  # type: ignore[dict-item]
        anomalies=[],
    )


SCENARIOS = [
    arc_github_run,
    tekton_pipeline,
    jenkins_k8s_plugin,
    bare_job,
    hang_timeout,
    cancelled_run,
]


# --------------------------------------------------------------------------------------------
# --check


def check(scenario: Scenario) -> list[str]:
    """Verify one written scenario; returns notes (raises CheckFailed on a problem)."""
    from processors.test_results.log_parsers import TestLogParser
    from producers.k8s.objects import K8sNormalizer
    from producers.webhooks import github as gh
    from producers.webhooks import jenkins as jk
    from schemas.capture import K8sRecord, LogRecord, WebhookRecord
    from schemas.messages import TestCounts

    notes: list[str] = []
    name = scenario.name
    written = read_written(HERE, name)
    settings, records, expected = written.settings, written.records, written.expected
    stamps = [r.ts for r in records]
    run_ids = {run["run_id"] for run in expected["runs"]}
    expect(len(run_ids) == len(expected["runs"]), f"{name}: duplicate run in expected")

    # webhooks
    deliveries: set[str] = set()
    runner_joins: dict[str, str] = {}
    jenkins_run_urls: dict[str, str] = {}
    ci_runs: set[str] = set()
    for record in records:
        if not isinstance(record, WebhookRecord):
            continue
        if record.provider == "github":
            event, delivery = record.header("X-GitHub-Event"), record.header("X-GitHub-Delivery")
            expect(bool(event and delivery), f"{name}: github record without headers")
            expect(delivery not in deliveries, f"{name}: delivery {delivery} repeated")
            deliveries.add(delivery)  # type: ignore[arg-type]
            result = gh.normalize(event, delivery, record.body, record.ts)  # type: ignore[arg-type]
            expect(hasattr(result, "run_id"), f"{name}: {event} not normalised: {result}")
            expect(result.run_id in run_ids, f"{name}: unexpected run {result.run_id}")  # type: ignore[union-attr]
            expect(result.event_time <= record.ts, f"{name}: {event} event time after ts")  # type: ignore[union-attr]
            ci_runs.add(result.run_id)  # type: ignore[union-attr]
            if result.runner_name:  # type: ignore[union-attr]
                runner_joins[result.runner_name] = result.run_id  # type: ignore[union-attr]
        elif record.provider == "jenkins":
            result = jk.normalize(record.body, record.ts)
            expect(hasattr(result, "run_id"), f"{name}: jenkins post not normalised: {result}")
            expect(result.run_id in run_ids, f"{name}: unexpected run {result.run_id}")  # type: ignore[union-attr]
            expect(result.event_time <= record.ts, f"{name}: jenkins event time after ts")  # type: ignore[union-attr]
            ci_runs.add(result.run_id)  # type: ignore[union-attr]
            jenkins_run_urls[result.labels["jenkins.run_url"]] = result.run_id  # type: ignore[union-attr]
        else:
            raise CheckFailed(f"{name}: provider {record.provider}")

    # kubernetes objects: correlation keys and event times
    normalizer = K8sNormalizer(settings.k8s)
    pod_keys: dict[tuple[str, str], str | None] = {}
    key_counts: Counter[str | None] = Counter()
    pod_containers: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if not isinstance(record, K8sRecord):
            continue
        event = normalizer.normalize(record.event, record.object, record.ts)
        lag = (record.ts - event.event_time).total_seconds()
        expect(
            # A Job's ready count carries no timestamp: its update keeps the older time.
            0 <= lag <= (2.0 if event.kind != "Job" else 3600.0),
            f"{name}: {event.kind} {event.name} event time {event.event_time} vs ts {record.ts}",
        )
        key = event.correlation_key
        key_counts[key] += 1
        if event.kind == "Pod":
            pod_keys[(event.namespace or "", event.name)] = key
            if key is not None:
                for c in record.object["spec"]["containers"]:
                    pod_containers[key].add(c["name"])
        if key is None:
            continue
        expect(
            key in scenario.key_runs or key.startswith("job:"),
            f"{name}: {event.kind} {event.name} has unexpected key {key}",
        )
    for key in key_counts:
        if key is None:
            continue
        run = _run_of(key, scenario, runner_joins, jenkins_run_urls)
        expect(run in run_ids, f"{name}: key {key} joins no expected run ({run})")
    # pods declared with an expected key got it
    for record in records:
        if isinstance(record, K8sRecord) and record.object.get("kind") == "Pod":
            meta = record.object["metadata"]
            got = pod_keys[(meta["namespace"], meta["name"])]
            want = _declared_key(scenario, meta["namespace"], meta["name"])
            expect(got == want, f"{name}: pod {meta['name']} key {got}, declared {want}")

    # log lines: keys and test counts
    parsers: dict[tuple[str, str, str], TestLogParser] = {}
    results: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        if not isinstance(record, LogRecord):
            continue
        pod_key = pod_keys.get((record.namespace, record.pod))
        expect(
            record.correlation_key == pod_key,
            f"{name}: log of {record.pod} carries {record.correlation_key}, pod has {pod_key}",
        )
        expect(pod_key is not None, f"{name}: log line of an unseen pod {record.pod}")
        run = _run_of(record.correlation_key, scenario, runner_joins, jenkins_run_urls)  # type: ignore[arg-type]
        line = replayed_log_line(record)
        expect(line.event_time == record.ts, f"{name}: log time {line.event_time} != {record.ts}")
        stream = (record.namespace, record.pod, record.container)
        parser = parsers.setdefault(stream, TestLogParser(run))
        results[run].extend(parser.feed(line))
    pending = {stream: p.finish() for stream, p in parsers.items()}
    for stream, left in pending.items():
        expect(not left, f"{name}: {len(left)} test results still pending at end of {stream}")
    for run in expected["runs"]:
        got = TestCounts.of(results.get(run["run_id"], [])).model_dump()
        expect(got == run["tests"], f"{name}: {run['run_id']} tests {got} != {run['tests']}")

    # stages from Jenkins console lines and from log markers
    for facts in scenario.runs:
        if facts.provider == "jenkins":
            stages = _jenkins_stages(
                [
                    r
                    for r in records
                    if isinstance(r, LogRecord)
                    and _run_of(r.correlation_key or "", scenario, runner_joins, jenkins_run_urls)
                    == facts.run_id
                ]
            )
            want = [(n, s) for n, s, _, _ in facts.stages]
            expect(stages == want, f"{name}: jenkins stages {stages} != {want}")
        if settings.tracking.log_markers and facts.stages and facts.provider == "kubernetes":
            stages = _marker_stages(
                settings,
                [
                    r
                    for r in records
                    if isinstance(r, LogRecord) and r.correlation_key == facts.run_id
                ],
            )
            want = [(n, "running" if s == "timed_out" else s) for n, s, _, _ in facts.stages]
            expect(stages == want, f"{name}: marker stages {stages} != {want}")

    # the runs opened by CI must be expected, and every expected run must have an opener
    for run in expected["runs"]:
        rid = run["run_id"]
        opened = rid in ci_runs or any(
            _run_of(k, scenario, runner_joins, jenkins_run_urls) == rid
            for k in key_counts
            if k is not None
        )
        expect(opened, f"{name}: nothing opens {rid}")

    # timeout: event time must pass last input + timeout + lateness + settle
    if scenario.hung is not None:
        hung_id, last = scenario.hung
        last_seen = max(
            r.ts
            for r in records
            if (isinstance(r, LogRecord) and r.correlation_key == hung_id)
            or (isinstance(r, K8sRecord) and normalizer.config and _k8s_key(r, settings) == hung_id)
        )
        expect(
            last_seen == at(last, 0) or abs((last_seen - last).total_seconds()) < 1,
            f"{name}: hung run's last input {last_seen} != {last}",
        )
        tracking = settings.tracking
        needed = at(
            last, tracking.inactivity_timeout_s + tracking.allowed_lateness_s + tracking.settle_s
        )
        expect(stamps[-1] > at(needed, 120), f"{name}: capture ends {stamps[-1]}, needs > {needed}")
        notes.append(
            f"hung run last input {last.isoformat()}, capture ends "
            f"{(stamps[-1] - last).total_seconds():.0f}s later "
            f"(timeout {tracking.inactivity_timeout_s:.0f}s)"
        )

    # every run ends well before the capture does (quiet period, lateness, settle)
    for facts in scenario.runs:
        tracking = settings.tracking
        margin = tracking.pod_quiet_period_s + tracking.allowed_lateness_s + tracking.settle_s
        expect(
            stamps[-1] > at(facts.end, margin),
            f"{name}: capture ends too soon after {facts.run_id} ({facts.end})",
        )

    # structure rules, evaluated independently on the scenario's facts
    run_containers: dict[str, set[str]] = defaultdict(set)
    for key, names in pod_containers.items():
        joined = _run_of(key, scenario, runner_joins, jenkins_run_urls)
        if joined is not None:
            run_containers[joined] |= names
    anomalies = _evaluate_rules(settings, scenario, run_containers, results)
    want = sorted((a["run_id"], a["type"], a["subject"]) for a in expected["anomalies"])
    expect(anomalies == want, f"{name}: rules give {anomalies}, expected {want}")
    notes.append(f"{len(records)} records, runs {sorted(run_ids)}, anomalies {want}")
    return notes


def _k8s_key(record: Any, settings: Any) -> str | None:
    from producers.k8s.objects import correlation_key

    return correlation_key(record.object, settings.k8s)


def _declared_key(scenario: Scenario, namespace: str, name: str) -> str | None:
    return scenario.capture.pods.get((namespace, name))


def _run_of(
    key: str, scenario: Scenario, runner_joins: dict[str, str], jenkins_run_urls: dict[str, str]
) -> str | None:
    """The run a correlation key joins, the way the pipeline is to join it."""
    if key.startswith("github-runner:"):
        return runner_joins.get(key.removeprefix("github-runner:"))
    if key.startswith("jenkins:"):
        return jenkins_run_urls.get(key.removeprefix("jenkins:"))
    if key.startswith(("job:", "tekton:")):
        return key
    return scenario.key_runs.get(key)


def _jenkins_stages(lines: list[Any]) -> list[tuple[str, str]]:
    stages: list[tuple[str, str]] = []
    current: str | None = None
    failed = False
    opening = re.compile(r"^\[Pipeline\] \{ \((?P<name>.+)\)$")
    for record in lines:
        text = record.line
        match = opening.match(text)
        if match:
            current, failed = match.group("name"), False
        elif text == "[Pipeline] // stage" and current is not None:
            stages.append((current, "failed" if failed else "succeeded"))
            current = None
        elif current is not None and text.startswith("ERROR:"):
            failed = True
    return stages


def _marker_stages(settings: Any, lines: list[Any]) -> list[tuple[str, str]]:
    stages: dict[str, str] = {}
    for record in lines:
        for rule in settings.tracking.log_markers:
            if not any(fnmatch.fnmatchcase(record.container, g) for g in rule.containers):
                continue
            match = re.search(rule.pattern, record.line)
            if not match:
                continue
            stage = match.groupdict().get("stage") or rule.stage
            if rule.action == "stage_start":
                stages[stage] = "running"
            elif rule.action == "stage_end":
                stages[stage] = match.groupdict().get("status") or rule.status or "succeeded"
    return list(stages.items())


def _evaluate_rules(
    settings: Any,
    scenario: Scenario,
    containers: dict[str, set[str]],
    results: dict[str, list[Any]],
) -> list[tuple[str, str, str]]:
    found = []
    for facts in scenario.runs:
        run_containers = containers.get(facts.run_id, set())
        expect(
            run_containers == facts.containers or not run_containers,
            f"{scenario.name}: containers {sorted(run_containers)} != {sorted(facts.containers)}",
        )
        for rule in settings.structure.rules:
            if not _matches(rule.match, facts, scenario):
                continue
            names = [n for n, _, _, _ in facts.stages]
            for glob in rule.required_stages:
                if not any(fnmatch.fnmatchcase(n, glob) for n in names):
                    found.append((facts.run_id, "missing_stage", glob))
            if rule.stage_order:
                starts = []
                for glob in rule.stage_order:
                    times = [s for n, _, s, _ in facts.stages if fnmatch.fnmatchcase(n, glob)]
                    if times:
                        starts.append(min(times))
                if starts != sorted(starts):
                    found.append((facts.run_id, "stage_order", rule.name))
            if (
                rule.max_run_duration_s
                and (facts.end - facts.start).total_seconds() > rule.max_run_duration_s
            ):
                found.append((facts.run_id, "run_too_long", facts.pipeline or facts.run_id))
            for glob, limit in rule.max_stage_duration_s.items():
                for n, _, start, end in facts.stages:
                    stop = end or facts.end
                    if fnmatch.fnmatchcase(n, glob) and (stop - start).total_seconds() > limit:
                        found.append((facts.run_id, "stage_too_long", n))
            if rule.min_tests is not None and len(results.get(facts.run_id, [])) < rule.min_tests:
                found.append((facts.run_id, "too_few_tests", rule.name))
            for glob in rule.required_containers:
                if not any(fnmatch.fnmatchcase(c, glob) for c in run_containers):
                    found.append((facts.run_id, "missing_container", glob))
    return sorted(found)


def _matches(match: Any, facts: RunFacts, scenario: Scenario) -> bool:
    checks = [
        (match.pipeline, facts.pipeline),
        (match.namespace, facts.namespace),
        (match.provider, facts.provider),
    ]
    for glob, value in checks:
        if glob is not None and (value is None or not fnmatch.fnmatchcase(value, glob)):
            return False
    if match.repository is not None:
        repo = "octo-org/octo-repo" if facts.provider == "github" else None
        if repo is None or not fnmatch.fnmatchcase(repo, match.repository):
            return False
    return not match.branch and not match.labels


def main(argv: list[str] | None = None) -> int:
    return run_generator(argv, __file__, __doc__, SCENARIOS, check)


if __name__ == "__main__":
    sys.exit(main())
