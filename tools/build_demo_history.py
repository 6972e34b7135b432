"""Build the history `sentinel demo` replays (issue 16; deterministic: same input, same bytes).

    .venv/bin/python tools/build_demo_history.py           # write sentinel/demo/data/*
    .venv/bin/python tools/build_demo_history.py --check   # write, then replay it through
                                                           # `sentinel analyze` and compare

Three pipelines over three simulated days (2026-03-09 .. 2026-03-11), built with the capture
builder the scenario generators share (``tests/data/capture_builder.py``: Pods, Jobs, Events
as the API server returns them, GitHub payloads from the octokit corpus, pytest lines):

- **GitHub Actions** workflow ``ci`` of octo-org/octo-repo, jobs ``lint`` and ``test`` on ARC
  ephemeral runner pods (namespace arc-runners), three runs a day; the test job runs
  ``pytest -v --reruns 2`` (15 tests). Run 6: a test fails once and passes on retry
  (flaky_test). Run 9: a test hangs; GitHub's job timeout (6 h) is far away, the runner pod
  stays Running and nothing more comes: log_silence while it hangs, then the run ends
  ``timed_out`` after ``tracking.inactivity_timeout_s`` (1 h).
- **Tekton** pipeline ``shop-verify`` (namespace shop), three PipelineRuns a day: fetch-source
  (git-init, JSON logs), unit-tests (``go test -v``), e2e-tests (``go test -v`` of an operator
  whose controller logs klog lines), build-image (kaniko). Run 6: TestCatalogReindex takes 26 s
  instead of 2.4 s (duration_regression). Run 7: the controller logs a "Reconciler error" never
  seen before (new_error_template). Run 8: build-image is skipped (missing_stage, from the
  demo's structure rule).
- **Jenkins** multibranch build ``shop/api/main`` on the Kubernetes plugin (agent pod with
  ``jnlp`` and ``maven`` containers, the console in the jnlp container's log), three builds a
  day; ``mvn -B verify``: Surefire output and the service's own log lines (plain Spring Boot
  format) while its integration tests run. Build 5: the maven container is OOMKilled during
  CheckoutIT (oom_killed). Build 7: the maven image tag does not exist; the plugin gives up on
  the pod after ~70 s (image_pull_failure).

Written files (package data of ``sentinel.demo``):

    history.jsonl.gz        the capture (schemas/capture.py), records ordered by ``ts``
    history.expected.json   every run with its status, EXACTLY the anomalies (run, type,
                            subject) analysis must find, and the run the demo features
    demo.config.yaml        the settings the history is analysed with (the structure rule)
    live.json.gz            clean runs the demo plays after the history ("now and then"), each
                            with the ids to renumber for every replay (sentinel/demo/history.py)

``--check`` replays the written history with ``sentinel analyze`` (the real pipeline: broker,
worker, sink, store) and requires exactly the expected runs and anomalies.
"""

# ruff: noqa: E501  (log and payload literals)
from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
for path in (ROOT, DATA, DATA / "anomaly_scenarios", DATA / "scenarios"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from build_anomaly_scenarios import (  # noqa: E402
    INTEGRATION,
    UNIT_ORDERS,
    UNIT_PRICING,
    PullingContainer,
    outcomes,
    pytest_session,
)
from build_scenarios import jenkins_body  # noqa: E402
from capture_builder import (  # noqa: E402
    Capture,
    Container,
    GithubJob,
    GithubRun,
    Obj,
    Pod,
    arc_runner_pod,
    at,
    background_rollout,
    completed_steps,
    core_event,
    emit_pod,
    epoch_ms,
    k8s_suffix,
    pod_ref,
    pod_scheduled,
    runner_online,
    runner_says,
    tekton_pod,
)

OUT = ROOT / "sentinel" / "demo" / "data"
FIRST_DAY = datetime(2026, 3, 9, tzinfo=UTC)
SUITE = UNIT_PRICING + UNIT_ORDERS + INTEGRATION  # 15 pytest tests


def noise(*parts: object) -> float:
    """A deterministic value in [-1, 1]."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 0xFFFFFFFF * 2 - 1


def slot(day: int, hour: int, minute: int = 0) -> datetime:
    return FIRST_DAY + timedelta(days=day, hours=hour, minutes=minute)


@dataclass
class Built:
    run_id: str
    status: str
    pipeline: str
    tokens: list[Obj] = field(default_factory=list)  # ids a live replay renumbers


def found(run: Built, type_: str, subject: str) -> Obj:
    return {"run_id": run.run_id, "type": type_, "subject": subject}


# --------------------------------------------------------------------------------------------
# GitHub Actions on ARC runner pods


@dataclass
class GithubPlan:
    index: int
    t0: datetime
    words: dict[str, list[str]] = field(default_factory=dict)  # nodeid -> pytest outcome words
    hang_after: int | None = None  # the test after this many hangs forever


def github_run(cap: Capture, plan: GithubPlan) -> Built:
    i, t0 = plan.index, plan.t0
    run = GithubRun(
        run_id=13_400_000_000 + 7919 * i,
        run_number=480 + i,
        workflow="ci",
        workflow_id=61553201,
        path=".github/workflows/ci.yml",
        branch="main",
        sha=hashlib.sha1(f"octo-repo/{i}".encode()).hexdigest(),
        message=f"cart: {['round discounts half-up', 'cache tax tables', 'retry webhooks', 'pin pytest'][i % 4]} (#{520 + i})",
        check_suite_id=34_100_000_000 + 6133 * i,
        created=t0,
    )
    scale = f"arc-runner-set-{k8s_suffix(5, 'arc', str(i // 6))}"
    lint_name = f"{scale}-runner-{k8s_suffix(5, 'lint', str(i))}"
    test_name = f"{scale}-runner-{k8s_suffix(5, 'test', str(i))}"
    job_base = 36_000_000_000 + 1000 * i
    lint = GithubJob(
        run, job_base + 11, "lint", ["arc-runner-set"], lint_name, 2000 + 2 * i, "Default", 1
    )
    test = GithubJob(
        run, job_base + 12, "test", ["arc-runner-set"], test_name, 2001 + 2 * i, "Default", 1
    )
    cap.github(at(t0, 1), "workflow_run", run.body("requested", "queued", None, t0, t0))
    q = at(t0, 2)
    cap.github(at(q, 0.8), "workflow_job", lint.queued(q))
    cap.github(at(q, 0.9), "workflow_job", test.queued(q))

    hang = plan.hang_after is not None
    lint_started, test_started = at(t0, 17), at(t0, 20)
    pytest_start = at(test_started, 40 + 2 * noise("gh", i, "install"))
    results = outcomes("demo-gh", i, SUITE, words=plan.words)
    # Log the session first: its end fixes when the job and the pod end.
    test_pod = arc_runner_pod(
        test_name,
        at(t0, 3),
        at(t0, 13),
        None,
        "aks-ci-38211745-vmss000005",
        f"10.244.5.{40 + i}",
        None,
    )
    lint_pod = arc_runner_pod(
        lint_name,
        at(t0, 3),
        at(t0, 12),
        at(t0, 77),
        "aks-ci-38211745-vmss000004",
        f"10.244.4.{20 + i}",
        at(t0, 79),
    )
    session_end = pytest_session(
        cap, test_pod, "runner", pytest_start, results, cut_after=plan.hang_after
    )
    lint_done = at(t0, 75)
    test_done = at(session_end, 2)
    if not hang:
        test_pod.containers[0].finished = at(test_done, 2)
        test_pod.deletion_requested = at(test_done, 4)
    for pod in (lint_pod, test_pod):
        emit_pod(cap, pod)
        if pod.deletion_requested is not None:
            pod.emit_deleted(cap, at(pod.deletion_requested, 1))

    cap.github(
        at(t0, 16.5), "workflow_run", run.body("in_progress", "in_progress", None, at(t0, 16), t0)
    )
    cap.github(at(lint_started, 1), "workflow_job", lint.picked_up(q, lint_started))
    cap.github(at(test_started, 1), "workflow_job", test.picked_up(q, test_started))
    for pod, job_name, started in (
        (lint_pod, "lint", lint_started),
        (test_pod, "test", test_started),
    ):
        runner_online(cap, pod)
        runner_says(cap, pod, at(started, 1), f"Running job: {job_name}")
    lint_steps = [
        ("Set up job", 2),
        ("Run actions/checkout@v4", 3),
        ("Run actions/setup-python@v5", 9),
        ("Run ruff check .", 41),
        ("Post Run actions/checkout@v4", 1),
        ("Complete job", 2),
    ]
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
            completed_steps(lint_started, lint_steps),
        ),
    )
    runner_says(cap, lint_pod, at(lint_done, 0.5), "Job lint completed with result: Succeeded")
    run_id = run.sentinel_id
    tokens = [
        {"kind": "number", "value": str(run.run_id)},
        {"kind": "number", "value": str(run.check_suite_id)},
        {"kind": "number", "value": str(lint.job_id)},
        {"kind": "number", "value": str(test.job_id)},
        {"kind": "name", "value": lint_name},
        {"kind": "name", "value": test_name},
        # two GitHub templates take turns: each keeps every other run number
        {"kind": "counter", "value": run.run_number, "contexts": ['"run_number": {}'], "step": 2},
    ]
    if hang:
        return Built(run_id, "timed_out", "ci", tokens)
    pytest_s = (session_end - pytest_start).total_seconds()
    test_steps = [
        ("Set up job", 2),
        ("Run actions/checkout@v4", 3),
        ("Run actions/setup-python@v5", 8),
        ("Install", (pytest_start - test_started).total_seconds() - 13),
        ("Run pytest -v --reruns 2 --durations=0", pytest_s),
        ("Post Run actions/checkout@v4", 1),
        ("Complete job", 1),
    ]
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
            completed_steps(test_started, test_steps),
        ),
    )
    runner_says(cap, test_pod, at(test_done, 0.5), "Job test completed with result: Succeeded")
    run_done = at(test_done, 1)
    cap.github(
        at(run_done, 1), "workflow_run", run.body("completed", "completed", "success", run_done, t0)
    )
    return Built(run_id, "succeeded", "ci", tokens)


# --------------------------------------------------------------------------------------------
# Tekton: fetch-source, unit-tests (go test), e2e-tests (go test + klog), build-image (kaniko)

TEKTON_NS = "shop"
TEKTON_PIPELINE = "shop-verify"
GIT_INIT = "gcr.io/tekton-releases/github.com/tektoncd/pipeline/cmd/git-init:v0.40.2"
GIT_INIT_ID = "gcr.io/tekton-releases/github.com/tektoncd/pipeline/cmd/git-init@sha256:28ff94e63e4058afc3f15b4c11c08cf3b54fa91faa5b6f4b7a1e3d0c5a9b8e7f"
GO_IMAGE = "docker.io/library/golang:1.23.4-bookworm"
GO_IMAGE_ID = "docker.io/library/golang@sha256:2e838582004fab0931693a3a84743ceccfbfeeafa8187e87291a1afea457ff7a"
KANIKO = "gcr.io/kaniko-project/executor:v1.23.2"
KANIKO_ID = "gcr.io/kaniko-project/executor@sha256:c6166717f7fe0b7da44908c986137ecfeab21f31ec3992f6e128fff8a94be8a5"
TEKTON_NODES = ["gke-shop-pool-1-5e0c7c8a-q1rz", "gke-shop-pool-1-5e0c7c8a-w7mt"]

CATALOG_PKG = "github.com/acme/shop/catalog"
SEARCH_PKG = "github.com/acme/shop/search"
UNIT_GO = [
    (CATALOG_PKG, "TestParseSKU", 0.003),
    (CATALOG_PKG, "TestPriceRounding", 0.004),
    (CATALOG_PKG, "TestCatalogReindex", 2.4),
    (CATALOG_PKG, "TestCatalogMerge", 0.31),
    (SEARCH_PKG, "TestTokenize", 0.002),
    (SEARCH_PKG, "TestRankByPopularity", 0.052),
    (SEARCH_PKG, "TestFacetCounts", 0.47),
]
E2E_PKG = "github.com/acme/shop/operator/test/e2e"
E2E_GO = [
    (E2E_PKG, "TestCatalogSyncCreatesIndex", 3.2),
    (E2E_PKG, "TestCatalogSyncUpdatesStatus", 4.1),
    (E2E_PKG, "TestCatalogDeletionCleansUp", 2.7),
]
RECONCILE_CONFLICT = (
    '"Reconciler error" err="failed to update Catalog status: Operation cannot be fulfilled on '
    'catalogs.shop.acme.io \\"default\\": the object has been modified; please apply your changes '
    'to the latest version and try again" controller="catalogsync" controllerGroup="shop.acme.io" '
    'controllerKind="Catalog" Catalog="e2e-{ns}/default" namespace="e2e-{ns}" name="default" '
    'reconcileID="{rid}"'
)


def klog(moment: datetime, level: str, where: str, text: str) -> str:
    """A klog line as Kubernetes components and controller-runtime print it."""
    return f"{level}{moment.strftime('%m%d %H:%M:%S.%f')}      42 {where}] {text}"


def go_test(
    start: datetime,
    tests: list[tuple[str, str, float]],
    salt: str,
    slow: dict[str, float] | None = None,
    interleave: Any = None,
) -> tuple[list[tuple[datetime, str]], datetime]:
    """`go test -v` output from `start` (each package built, then its tests); `interleave(name,
    began, ended)` adds lines logged while a test runs (a controller's klog lines)."""
    moment = start
    out: list[tuple[datetime, str]] = []
    by_pkg: dict[str, list[tuple[str, float]]] = {}
    for pkg, name, secs in tests:
        took = (slow or {}).get(name, secs * (1 + 0.05 * noise(salt, name)))
        by_pkg.setdefault(pkg, []).append((name, took))
    for pkg, cases in by_pkg.items():
        moment = at(moment, 1.4 + 0.2 * noise(salt, pkg))  # build and link the test binary
        pkg_start = moment
        for name, took in cases:
            out.append((moment, f"=== RUN   {name}"))
            if interleave is not None:
                out.extend(interleave(name, moment, at(moment, took)))
            moment = at(moment, took)
            out.append((moment, f"--- PASS: {name} ({took:.2f}s)"))
        moment = at(moment, 0.011)
        out.append((moment, "PASS"))
        out.append((moment, f"ok  \t{pkg}\t{(moment - pkg_start).total_seconds():.3f}s"))
    return out, at(moment, 0.05)


@dataclass
class TektonPlan:
    index: int
    t0: datetime
    slow: dict[str, float] = field(default_factory=dict)
    conflict: bool = False  # the controller logs a status-update conflict twice
    skip_build: bool = False  # build-image's when-expression is false: no pod, no stage


def tekton_run(cap: Capture, plan: TektonPlan) -> Built:
    i, t0 = plan.index, plan.t0
    pr = f"{TEKTON_PIPELINE}-{k8s_suffix(5, TEKTON_PIPELINE, str(i))}"
    node = TEKTON_NODES[i % 2]
    pods: list[Pod] = []

    def task_pod(
        task: str,
        pipeline_task: str,
        steps: list[Container],
        created: datetime,
        annotations: dict[str, str],
    ) -> Pod:
        pod = tekton_pod(
            pr,
            task,
            pipeline_task,
            steps,
            created,
            node,
            f"10.56.{i}.{11 + len(pods)}",
            {"version": "0.9", **annotations},
            namespace=TEKTON_NS,
            pipeline=TEKTON_PIPELINE,
        )
        pods.append(pod)
        return pod

    clone = Container("step-clone", GIT_INIT, GIT_INIT_ID, started=at(t0, 6), finished=at(t0, 12))
    fetch = task_pod(
        "git-clone", "fetch-source", [clone], at(t0, 1), {"tekton.dev/displayName": "git clone"}
    )
    sha = hashlib.sha1(f"shop/{i}".encode()).hexdigest()
    for offset, caller, msg in (
        (
            8.0,
            "git/git.go:176",
            f"Successfully cloned https://github.com/acme/shop.git @ {sha} (grafted, HEAD) in path /workspace/source",
        ),
        (
            8.4,
            "git/git.go:215",
            "Successfully initialized and updated submodules in path /workspace/source",
        ),
    ):
        moment = at(t0, offset)
        line = json.dumps(
            {"level": "info", "ts": round(moment.timestamp(), 6), "caller": caller, "msg": msg},
            separators=(",", ":"),
        )
        cap.log(moment, fetch, "step-clone", line)

    # unit-tests: go test -v ./...
    unit_step = Container("step-go-test", GO_IMAGE, GO_IMAGE_ID, started=at(t0, 18))
    unit = task_pod(
        "golang-test",
        "unit-tests",
        [unit_step],
        at(t0, 14),
        {"tekton.dev/displayName": "golang test"},
    )
    assert unit_step.started is not None
    lines, end = go_test(at(unit_step.started, 1), UNIT_GO, f"unit/{i}", plan.slow)
    cap.log(
        at(unit_step.started, 0.6),
        unit,
        "step-go-test",
        "go: downloading github.com/google/go-cmp v0.6.0",
    )
    for moment, text in lines:
        cap.log(moment, unit, "step-go-test", text)
    unit_step.finished = at(end, 0.3)

    # e2e-tests: the operator's controller runs inside the test binary and logs klog lines
    e2e_at = at(unit_step.finished, 3)
    e2e_step = Container("step-e2e", GO_IMAGE, GO_IMAGE_ID, started=at(e2e_at, 4))
    e2e = task_pod(
        "golang-test", "e2e-tests", [e2e_step], e2e_at, {"tekton.dev/displayName": "operator e2e"}
    )
    assert e2e_step.started is not None
    boot = at(e2e_step.started, 2)
    ns = k8s_suffix(5, "e2e-ns", str(i))
    prelude = [
        (boot, klog(boot, "I", "envtest.go:182", '"Starting control plane" etcd="127.0.0.1:2379"')),
        (
            at(boot, 1.2),
            klog(
                at(boot, 1.2),
                "I",
                "leaderelection.go:254",
                '"successfully acquired lease" lease="catalog-system/catalog-operator-lock"',
            ),
        ),
        (
            at(boot, 1.3),
            klog(
                at(boot, 1.3),
                "I",
                "controller.go:217",
                '"Starting Controller" controller="catalogsync" controllerGroup="shop.acme.io" controllerKind="Catalog"',
            ),
        ),
        (
            at(boot, 1.4),
            klog(
                at(boot, 1.4),
                "I",
                "controller.go:251",
                '"Starting workers" controller="catalogsync" worker count=2',
            ),
        ),
    ]

    def reconciles(name: str, began: datetime, ended: datetime) -> list[tuple[datetime, str]]:
        out = []
        for k in range(3):
            moment = at(began, 0.4 + k * (ended - began).total_seconds() / 4)
            out.append(
                (
                    moment,
                    klog(
                        moment,
                        "I",
                        "catalogsync_controller.go:88",
                        f'"Reconciling Catalog" controller="catalogsync" Catalog="e2e-{ns}/default" generation={k + 1}',
                    ),
                )
            )
        if plan.conflict and name == "TestCatalogSyncUpdatesStatus":
            for k in range(2):
                moment = at(began, 1.1 + 0.9 * k)
                text = RECONCILE_CONFLICT.format(
                    ns=ns,
                    rid=f"{hashlib.sha1(f'{i}/{k}'.encode()).hexdigest()[:8]}-7c1e-4b0a-9f55-{hashlib.sha1(f'{k}/{i}'.encode()).hexdigest()[:12]}",
                )
                out.append((moment, klog(moment, "E", "controller.go:316", text)))
        return out

    lines, end = go_test(at(boot, 2), E2E_GO, f"e2e/{i}", interleave=reconciles)
    for moment, text in sorted(prelude + lines, key=lambda item: item[0]):
        cap.log(moment, e2e, "step-e2e", text)
    e2e_step.finished = at(end, 0.3)

    if not plan.skip_build:
        build_at = at(e2e_step.finished, 3)
        push = Container(
            "step-build-and-push",
            KANIKO,
            KANIKO_ID,
            started=at(build_at, 4),
            finished=at(build_at, 52 + 3 * noise("kaniko", i)),
        )
        build = task_pod(
            "kaniko",
            "build-image",
            [push],
            build_at,
            {"tekton.dev/displayName": "Build and upload container image using Kaniko"},
        )
        assert push.started is not None
        kaniko = [
            "Retrieving image manifest gcr.io/distroless/static-debian12:nonroot",
            "Retrieving image gcr.io/distroless/static-debian12:nonroot from registry gcr.io",
            "Built cross stage deps: map[]",
            "Executing 0 build triggers",
            "Building stage 'gcr.io/distroless/static-debian12:nonroot' [idx: '0', base-idx: '-1']",
            "Unpacking rootfs as cmd COPY catalog /catalog requires it.",
            "COPY catalog /catalog",
            "Taking snapshot of files...",
            'ENTRYPOINT ["/catalog"]',
            f"Pushing image to ghcr.io/acme/shop-catalog:{sha[:12]}",
            f"Pushed ghcr.io/acme/shop-catalog@sha256:{hashlib.sha256(sha.encode()).hexdigest()}",
        ]
        for k, text in enumerate(kaniko):
            seconds = int(k * 4.2)
            cap.log(
                at(push.started, 1 + k * 4.2),
                build,
                "step-build-and-push",
                f"INFO[{seconds:04d}] {text}",
            )
    for pod in pods:
        emit_pod(cap, pod)
    tokens = [{"kind": "name", "value": pr}]
    return Built(f"tekton:{TEKTON_NS}/{pr}", "succeeded", TEKTON_PIPELINE, tokens)


# --------------------------------------------------------------------------------------------
# Jenkins on the Kubernetes plugin: Checkout, Build, Test (mvn verify), Publish

JENKINS_NS = "jenkins-agents"
MAVEN_IMAGE = "maven:3.9.9-eclipse-temurin-21"
MAVEN_ID = "docker.io/library/maven@sha256:3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
BAD_MAVEN = "maven:3.9.99-eclipse-temurin-21"
JNLP_IMAGE = "jenkins/inbound-agent:3283.v92c105e0f819-4"
JNLP_ID = "docker.io/jenkins/inbound-agent@sha256:7f9b5e3c1d2a4b6c8e0f1a3b5c7d9e2f4a6b8c0d1e3f5a7b9c2d4e6f8a0b1c3d"
JENKINS_NODES = [
    "ip-10-0-33-118.eu-west-1.compute.internal",
    "ip-10-0-35-41.eu-west-1.compute.internal",
]
SUREFIRE = [
    (
        "com.acme.cart.CartTest",
        [("testAddItem", 0.004), ("testTotal", 0.011), ("testRemoveItem", 0.006)],
    ),
    (
        "com.acme.cart.TaxTest",
        [
            ("testVat", 0.002),
            ("testReducedRate", 0.001),
            ("testZeroRated", 0.001),
            ("testRounding", 0.003),
        ],
    ),
    ("com.acme.cart.PaymentIT", [("testCharge", 1.2), ("testRefund", 0.9)]),
    (
        "com.acme.cart.CheckoutIT",
        [("testCheckoutEndToEnd", 3.4), ("testDeclinedCard", 1.1), ("testInventoryReserved", 0.8)],
    ),
]


@dataclass
class JenkinsPlan:
    index: int
    t0: datetime
    fault: str | None = None  # None | "oom" (maven OOMKilled in CheckoutIT) | "image_pull"


def spring(moment: datetime, level: str, logger: str, text: str, thread: str = "main") -> str:
    """A Spring Boot 3 console line (the service under test, started by the integration tests)."""
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return f"{stamp} {level:>5} 412 --- [cart] [{thread:>15}] {logger:<40} : {text}"


def jenkins_agent(
    plan: JenkinsPlan, number: int, run_url: str, pod_name: str
) -> tuple[Pod, Container, Container]:
    t0 = plan.t0
    jnlp = Container(
        "jnlp",
        JNLP_IMAGE,
        JNLP_ID,
        env=[
            {"name": "JENKINS_URL", "value": "http://jenkins.jenkins.svc.cluster.local:8080/"},
            {"name": "JENKINS_AGENT_NAME", "value": pod_name},
            {"name": "JENKINS_AGENT_WORKDIR", "value": "/home/jenkins/agent"},
        ],
        resources={"requests": {"cpu": "100m", "memory": "256Mi"}},
        started=at(t0, 9),
        extra={"workingDir": "/home/jenkins/agent"},
    )
    maven = Container(
        "maven",
        BAD_MAVEN if plan.fault == "image_pull" else MAVEN_IMAGE,
        MAVEN_ID,
        command=["sleep"],
        args=["99d"],
        resources={"limits": {"memory": "2Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
        started=None if plan.fault == "image_pull" else at(t0, 8),
        extra={"tty": True, "workingDir": "/home/jenkins/agent"},
    )
    pod = Pod(
        namespace=JENKINS_NS,
        name=pod_name,
        labels={
            "jenkins/jenkins-jenkins-agent": "true",
            "jenkins/label": f"shop_api_main_{number}-{pod_name[-11:-6]}",
            "kubernetes.jenkins.io/controller": "http___jenkins_jenkins_svc_cluster_local_8080x",
        },
        annotations={
            "buildUrl": f"http://jenkins.jenkins.svc.cluster.local:8080/{run_url}",
            "runUrl": run_url,
        },
        node=JENKINS_NODES[plan.index % 2],
        pod_ip=f"10.0.34.{100 + plan.index}",
        host_ip="10.0.33.118",
        created=at(t0, 2),
        scheduled=at(t0, 3),
        containers=[maven, jnlp],
        service_account="jenkins-agent",
        spec_extra={"nodeSelector": {"kubernetes.io/os": "linux"}},
        expected_key=f"jenkins:{run_url}",
    )
    return pod, jnlp, maven


def surefire_lines(
    moment: datetime, oom: bool
) -> tuple[list[tuple[datetime, str]], datetime, bool]:
    """`mvn -B verify` Surefire/Failsafe output (plain report format: every test with its time)
    and the service's log while CheckoutIT runs. With `oom` the JVM dies in CheckoutIT."""
    out: list[tuple[datetime, str]] = []

    def say(text: str, step: float = 0.05) -> None:
        nonlocal moment
        moment = at(moment, step)
        out.append((moment, text))

    for text in (
        "[INFO] ",
        "[INFO] --- surefire:3.2.5:test (default-test) @ cart ---",
        "[INFO] Using auto detected provider org.apache.maven.surefire.junitplatform.JUnitPlatformProvider",
        "[INFO] ",
        "[INFO] -------------------------------------------------------",
        "[INFO]  T E S T S",
        "[INFO] -------------------------------------------------------",
    ):
        say(text)
    total = 0
    for cls, cases in SUREFIRE:
        say(f"[INFO] Running {cls}", 0.3)
        if cls.endswith("IT"):
            say(
                spring(
                    moment,
                    "INFO",
                    "com.acme.cart.CartApplication",
                    "Starting CartApplication v1.4.0-SNAPSHOT using Java 21.0.5 with PID 412",
                ),
                0.4,
            )
            say(
                spring(
                    moment,
                    "INFO",
                    "o.s.b.w.embedded.tomcat.TomcatWebServer",
                    "Tomcat started on port 18080 (http) with context path '/'",
                ),
                2.1,
            )
            say(
                spring(
                    moment,
                    "INFO",
                    "com.acme.cart.CartApplication",
                    "Started CartApplication in 2.874 seconds (process running for 3.391)",
                ),
                0.3,
            )
        elapsed = 0.0
        for name, secs in cases:
            if oom and cls.endswith("CheckoutIT") and name == "testDeclinedCard":
                say(
                    spring(
                        moment,
                        "INFO",
                        "com.acme.cart.checkout.CheckoutService",
                        "reserving 120 line items for order 81234",
                        "http-nio-18080-exec-3",
                    ),
                    0.4,
                )
                return out, at(moment, 0.6), False
            if cls.endswith("IT"):
                say(
                    spring(
                        moment,
                        "INFO",
                        "com.acme.cart.web.RequestLog",
                        f"POST /api/{name.removeprefix('test').lower()} 200 {int(secs * 900)}ms",
                        "http-nio-18080-exec-1",
                    ),
                    secs * 0.8,
                )
            elapsed += secs
            total += 1
        say(
            f"[INFO] Tests run: {len(cases)}, Failures: 0, Errors: 0, Skipped: 0, Time elapsed: {elapsed + 0.02:.3f} s -- in {cls}",
            0.05,
        )
        for name, secs in cases:
            out.append((moment, f"[INFO] {cls}.{name} -- Time elapsed: {secs:.3f} s"))
    for text in (
        "[INFO] ",
        "[INFO] Results:",
        "[INFO] ",
        f"[INFO] Tests run: {total}, Failures: 0, Errors: 0, Skipped: 0",
        "[INFO] ",
    ):
        say(text, 0.02)
    return out, moment, True


def jenkins_run(cap: Capture, plan: JenkinsPlan) -> Built:
    i, t0 = plan.index, plan.t0
    number = 130 + i
    run_url = f"job/shop/job/api/job/main/{number}/"
    pod_name = (
        f"shop-api-main-{number}-{k8s_suffix(5, 'label', str(i))}-{k8s_suffix(5, 'pod', str(i))}"
    )
    sha = hashlib.sha1(f"shop-api/{i}".encode()).hexdigest()

    def body(phase: str, stamp: datetime, status: str | None = None, duration_ms: int = 0) -> Obj:
        payload = jenkins_body(phase, number, stamp, status, duration_ms)
        payload["build"]["queue_id"] = 20900 + i
        payload["build"]["scm"]["commit"] = sha
        return payload

    cap.jenkins(at(t0, 0.4), body("STARTED", t0))
    pod, jnlp, maven = jenkins_agent(plan, number, run_url, pod_name)
    if plan.fault == "image_pull":
        return jenkins_image_pull(cap, plan, pod, jnlp, maven, run_url, body)
    cap.log(
        at(t0, 12),
        pod,
        "jnlp",
        f"Running on {pod_name} in /home/jenkins/agent/workspace/shop_api_main",
    )
    console: list[tuple[datetime, str]] = []

    def stage(start: datetime, name: str, lines: list[str], step: float) -> datetime:
        moment = start
        for text in [
            "[Pipeline] stage",
            f"[Pipeline] {{ ({name})",
            *lines,
            "[Pipeline] }",
            "[Pipeline] // stage",
        ]:
            console.append((moment, text))
            moment = at(moment, step)
        return moment

    def follow(moment: datetime, lines: list[str], step: float) -> datetime:
        """Each line `step` seconds after the one before it (the first after `moment`)."""
        for text in lines:
            moment = at(moment, step)
            console.append((moment, text))
        return moment

    moment = stage(
        at(t0, 13),
        "Checkout",
        [
            "[Pipeline] checkout",
            "The recommended git tool is: NONE",
            "using credential github-app-shop",
            "Fetching upstream changes from https://github.com/octo-org/shop-api.git",
            f"Checking out Revision {sha} (main)",
        ],
        0.5,
    )
    moment = stage(
        at(moment, 1),
        "Build",
        [
            "[Pipeline] container",
            "[Pipeline] {",
            "[Pipeline] sh",
            "+ mvn -B -DskipTests package",
            "[INFO] Scanning for projects...",
            "[INFO] Building cart 1.4.0-SNAPSHOT",
            "[INFO] Building jar: /home/jenkins/agent/workspace/shop_api_main/target/cart-1.4.0-SNAPSHOT.jar",
            "[INFO] BUILD SUCCESS",
            f"[INFO] Total time:  {36 + 3 * noise('build', i):.3f} s",
            "[Pipeline] }",
            "[Pipeline] // container",
        ],
        3.2,
    )
    test_open = [
        "[Pipeline] stage",
        "[Pipeline] { (Test)",
        "[Pipeline] container",
        "[Pipeline] {",
        "[Pipeline] sh",
        "+ mvn -B verify",
        "[INFO] Scanning for projects...",
    ]
    moment = follow(moment, test_open, 0.3)
    tests, moment, ok = surefire_lines(at(moment, 8), oom=plan.fault == "oom")
    console.extend(tests)
    if ok:
        moment = follow(
            moment,
            [
                "[INFO] BUILD SUCCESS",
                f"[INFO] Total time:  {58 + 4 * noise('verify', i):.3f} s",
                "[Pipeline] }",
                "[Pipeline] // container",
                "[Pipeline] }",
                "[Pipeline] // stage",
            ],
            0.2,
        )
        moment = stage(
            at(moment, 0.5),
            "Publish",
            [
                "[Pipeline] junit",
                "Recording test results",
                "[Checks API] No suitable checks publisher found.",
                "[Pipeline] archiveArtifacts",
                "Archiving artifacts",
            ],
            0.6,
        )
        status = "SUCCESS"
    else:
        # the kernel's OOM killer ends the JVM: the sh step sees exit code 137
        maven.finished, maven.exit_code, maven.reason = at(moment, 0.1), 137, "OOMKilled"
        moment = follow(
            moment,
            [
                "Killed",
                "[Pipeline] }",
                "[Pipeline] // container",
                "[Pipeline] }",
                "ERROR: script returned exit code 137",
                "[Pipeline] // stage",
            ],
            0.4,
        )
        status = "FAILURE"
    moment = follow(
        moment,
        [
            "[Pipeline] }",
            "[Pipeline] // node",
            "[Pipeline] }",
            "[Pipeline] // podTemplate",
            "[Pipeline] End of Pipeline",
            f"Finished: {status}",
        ],
        0.2,
    )
    for when, text in console:
        cap.log(when, pod, "jnlp", text)
    end = at(moment, 0.5)
    # The plugin deletes the agent pod once the build is over.
    pod.deletion_requested = at(end, 1)
    jnlp.finished, jnlp.exit_code, jnlp.reason = at(end, 2), 143, "Error"
    if maven.finished is None:
        maven.finished, maven.exit_code, maven.reason = at(end, 31), 137, "Error"
    emit_pod(cap, pod, pulled={"maven": True})
    pod.emit_deleted(cap, at(end, 32))
    duration = epoch_ms(end) - epoch_ms(t0)
    cap.jenkins(at(end, 0.6), body("COMPLETED", end, status, duration))
    cap.jenkins(at(end, 3.6), body("FINALIZED", at(end, 3), status, duration))
    tokens: list[Obj] = [
        {"kind": "name", "value": pod_name},
        {
            "kind": "counter",
            "value": number,
            "contexts": ["main/{}/", '"number": {}', "main_{}", "main-{}-", "main:{}"],
            "step": 1,
        },
    ]
    return Built(
        f"jenkins:shop/api/main:{number}", "succeeded" if ok else "failed", "shop/api/main", tokens
    )


def jenkins_image_pull(
    cap: Capture,
    plan: JenkinsPlan,
    pod: Pod,
    jnlp: Container,
    maven: Container,
    run_url: str,
    body: Any,
) -> Built:
    """The maven image does not exist: its container waits in ErrImagePull / ImagePullBackOff;
    the Kubernetes plugin sees the pod will not start, deletes it and fails the build."""
    t0 = plan.t0
    pulls = [4.1, 19.3, 44.8]
    error = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/{BAD_MAVEN}": '
        f'failed to resolve reference "docker.io/library/{BAD_MAVEN}": docker.io/library/{BAD_MAVEN}: not found'
    )

    waits = []
    for offset in pulls:
        waits.append((at(t0, offset), "ErrImagePull", error))
        waits.append(
            (at(t0, offset + 1.2), "ImagePullBackOff", f'Back-off pulling image "{BAD_MAVEN}"')
        )

    pulling = PullingContainer(
        maven.name,
        maven.image,
        "",
        command=maven.command,
        args=maven.args,
        resources=maven.resources,
        extra=maven.extra,
        waits=waits,
    )
    pod.containers = [pulling, jnlp]
    gave_up = at(t0, 71)
    pod.deletion_requested = gave_up
    jnlp.finished, jnlp.exit_code, jnlp.reason = at(gave_up, 1), 143, "Error"
    moments = [
        pod.scheduled,
        at(pod.scheduled, 2),
        *(at(t0, o) for o in pulls),
        *(at(t0, o + 1.2) for o in pulls),
        at(t0, 9),
        gave_up,
    ]
    pod.emit(cap, sorted(set(moments)))
    pod_scheduled(cap, pod)
    ref = pod_ref(pod)
    for offset in pulls:
        for reason, message, kind, lag in (
            ("Pulling", f'Pulling image "{BAD_MAVEN}"', "Normal", -1.9),
            ("Failed", f'Failed to pull image "{BAD_MAVEN}": {error}', "Warning", 0.0),
            ("Failed", "Error: ErrImagePull", "Warning", 0.0),
            ("BackOff", f'Back-off pulling image "{BAD_MAVEN}"', "Normal", 1.2),
            ("Failed", "Error: ImagePullBackOff", "Warning", 1.2),
        ):
            when = at(t0, offset + lag)
            event = core_event(
                JENKINS_NS,
                ref,
                reason,
                message,
                when,
                "kubelet",
                pod.node,
                kind=kind,
                field_path="spec.containers{maven}",
            )
            cap.k8s(at(when, 0.25), "ADDED", event)
    cap.log(at(t0, 10), pod, "jnlp", "INFO: Connected")
    pod.emit_deleted(cap, at(gave_up, 2))
    end = at(gave_up, 3)
    duration = epoch_ms(end) - epoch_ms(t0)
    cap.jenkins(at(end, 0.6), body("COMPLETED", end, "FAILURE", duration))
    cap.jenkins(at(end, 3.6), body("FINALIZED", at(end, 3), "FAILURE", duration))
    return Built(
        f"jenkins:shop/api/main:{130 + plan.index}",
        "failed",
        "shop/api/main",
        [{"kind": "name", "value": pod.name}],
    )


# --------------------------------------------------------------------------------------------
# the history

FLAKY = "tests/unit/test_orders.py::TestRefunds::test_partial_refund"
HANG_AFTER = 13  # the 14th test (test_webhook_delivery) waits for a webhook that never comes
# Three pushes a day start all three pipelines within a minute (one quiet gap per push, so
# `sentinel analyze` and the demo replay it in few steps). The last push of the last day: the
# GitHub run hangs; Tekton and Jenkins start 35 minutes later (the hung pod is silent then,
# not yet timed out), and a rollout an hour after that carries event time past the timeout.
SLOTS = [(8, 30), (12, 40), (16, 50)]
LATE_START = timedelta(minutes=35)


def history() -> tuple[Capture, list[Built], list[Obj]]:
    cap = Capture("demo")
    runs: list[Built] = []
    anomalies: list[Obj] = []
    for day in range(3):
        for k in range(3):
            i = 3 * day + k + 1
            when = slot(day, *SLOTS[k])
            later = when + (LATE_START if i == 9 else timedelta(0))
            g = github_run(
                cap,
                GithubPlan(
                    i,
                    when,
                    words={FLAKY: ["RERUN", "PASSED"]} if i == 6 else {},
                    hang_after=HANG_AFTER if i == 9 else None,
                ),
            )
            t = tekton_run(
                cap,
                TektonPlan(
                    i,
                    at(later, 20),
                    slow={"TestCatalogReindex": 26.4} if i == 6 else {},
                    conflict=i == 7,
                    skip_build=i == 8,
                ),
            )
            j = jenkins_run(
                cap,
                JenkinsPlan(
                    i,
                    at(later, 45),
                    fault={5: "oom", 7: "image_pull"}.get(i),
                ),
            )
            runs += [g, t, j]
            if i == 6:
                anomalies.append(
                    found(
                        g, "flaky_test", "tests.unit.test_orders.TestRefunds::test_partial_refund"
                    )
                )
                anomalies.append(
                    found(t, "duration_regression", f"{CATALOG_PKG}::TestCatalogReindex")
                )
            if i == 9:
                anomalies.append(found(g, "log_silence", g.tokens[5]["value"]))
            if i == 7:
                anomalies.append(found(t, "new_error_template", "(computed)"))
            if i == 8:
                anomalies.append(found(t, "missing_stage", "build-image"))
            if i == 5:
                anomalies.append(found(j, "oom_killed", f"{j.tokens[0]['value']}/maven"))
            if i == 7:
                anomalies.append(found(j, "image_pull_failure", j.tokens[0]["value"]))
    background_rollout(cap, slot(2, 18, 40), "gke-shop-pool-1-5e0c7c8a-q1rz", "10.56.99.33")
    return cap, runs, anomalies


def config() -> Obj:
    return {
        "structure": {
            "rules": [
                {
                    "name": "shop-verify-stages",
                    "match": {"pipeline": TEKTON_PIPELINE},
                    "severity": "error",
                    "required_stages": ["fetch-source", "unit-tests", "e2e-tests", "build-image"],
                    "stage_order": ["fetch-source", "unit-tests", "e2e-tests", "build-image"],
                }
            ]
        }
    }


def new_template_subject(cap: Capture, runs: list[Built], run_id: str) -> str:
    """The id of the one error template `run_id` logs that no earlier run of its pipeline did,
    mined as the worker mines (warning and error lines in capture order, one miner)."""
    from processors.anomalies.logs import LogAnalyzer
    from processors.logs.levels import worth_analysing
    from schemas.messages import LogLine

    analyzer = LogAnalyzer()
    miner = analyzer.miner_for("shop-verify")
    states: dict[str, Any] = {}
    order: list[str] = []
    for ts, _, record in sorted(cap.records, key=lambda item: (item[0], item[1])):
        if record["type"] != "log" or record["namespace"] != TEKTON_NS:
            continue
        owner = record["correlation_key"]
        if owner not in states:
            states[owner] = analyzer.new_state(owner, TEKTON_PIPELINE)
            order.append(owner)
        if worth_analysing(record["line"]):
            line = LogLine(
                namespace=TEKTON_NS,
                pod=record["pod"],
                container=record["container"],
                line=record["line"],
                event_time=ts,
                received_at=ts,
            )
            analyzer.feed(states[owner], line, miner)
    earlier = order[: order.index(run_id)]
    known = {tid for rid in earlier for tid in states[rid].templates}
    new = sorted(set(states[run_id].templates) - known)
    assert len(new) == 1, new
    return new[0]


def live_templates() -> list[Obj]:
    """One clean run of each pipeline and one GitHub run with a flaky test (so the console
    receiver gets an alert now and then), numbered after the history's runs, played after it:
    sentinel/demo/history.py moves their times to "now" and renumbers their ids each time."""
    templates = []
    t0 = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
    for name, build in (
        ("github", lambda cap: github_run(cap, GithubPlan(10, t0))),
        ("tekton", lambda cap: tekton_run(cap, TektonPlan(10, t0))),
        ("jenkins", lambda cap: jenkins_run(cap, JenkinsPlan(10, t0))),
        (
            "github-flaky",
            lambda cap: github_run(cap, GithubPlan(11, t0, words={FLAKY: ["RERUN", "PASSED"]})),
        ),
    ):
        cap = Capture(f"live-{name}")
        built = build(cap)
        templates.append(
            {
                "pipeline": built.pipeline,
                "run_id": built.run_id,
                "tokens": built.tokens,
                "records": cap.ordered(),
            }
        )
    return templates


def gz(data: bytes) -> bytes:
    """gzip without a timestamp: the same input gives the same bytes."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as handle:
        handle.write(data)
    return out.getvalue()


def write() -> tuple[Path, Obj]:
    cap, runs, anomalies = history()
    for anomaly in anomalies:
        if anomaly["subject"] == "(computed)":
            anomaly["subject"] = new_template_subject(cap, runs, anomaly["run_id"])
    OUT.mkdir(parents=True, exist_ok=True)
    lines = "".join(
        json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in cap.ordered()
    )
    (OUT / "history.jsonl.gz").write_bytes(gz(lines.encode()))
    jenkins_oom = next(r for r in runs if r.run_id.endswith(":135"))
    expected = {
        "description": " ".join((__doc__ or "").split("\n\n")[2].split()),
        "runs": sorted(
            ({"run_id": r.run_id, "status": r.status, "pipeline": r.pipeline} for r in runs),
            key=lambda r: r["run_id"],
        ),
        "anomalies": sorted(anomalies, key=lambda a: (a["run_id"], a["type"], a["subject"])),
        "featured_run": jenkins_oom.run_id,
    }
    (OUT / "history.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    import yaml

    header = "# The settings the demo history is analysed with (tools/build_demo_history.py writes this file).\n"
    (OUT / "demo.config.yaml").write_text(
        header + yaml.safe_dump(config(), sort_keys=False, width=100)
    )
    live = json.dumps({"templates": live_templates()}, ensure_ascii=False, separators=(",", ":"))
    (OUT / "live.json.gz").write_bytes(gz(live.encode()))
    print(f"wrote {OUT}: {len(cap.records)} records, {len(runs)} runs, {len(anomalies)} anomalies")
    return OUT, expected


def check(expected: Obj) -> int:
    """Replay the written history through `sentinel analyze` and compare."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "history.jsonl"
        capture.write_bytes(gzip.decompress((OUT / "history.jsonl.gz").read_bytes()))
        command = [
            sys.executable,
            "-m",
            "sentinel",
            "--config",
            str(OUT / "demo.config.yaml"),
            "analyze",
            str(capture),
            "--json",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        print(result.stderr[-3000:])
        return 1
    report = json.loads(result.stdout)
    got_runs = sorted((r["run_id"], r["status"]) for r in report["runs"])
    want_runs = sorted((r["run_id"], r["status"]) for r in expected["runs"])
    got = sorted((a["run_id"], a["type"], a["subject"]) for a in report["anomalies"])
    want = sorted((a["run_id"], a["type"], a["subject"]) for a in expected["anomalies"])
    failures = 0
    if got_runs != want_runs:
        failures += 1
        print(
            "runs differ:\n  got  "
            + "\n       ".join(map(str, got_runs))
            + "\n  want "
            + "\n       ".join(map(str, want_runs))
        )
    if got != want:
        failures += 1
        print(
            "anomalies differ:\n  got  "
            + "\n       ".join(map(str, got))
            + "\n  want "
            + "\n       ".join(map(str, want))
        )
    for anomaly in report["anomalies"]:
        print(f"  {anomaly['type']}: {anomaly['summary']}")
    print("check: " + ("ok" if not failures else "FAILED"))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    _, expected = write()
    return check(expected) if "--check" in args else 0


if __name__ == "__main__":
    sys.exit(main())
