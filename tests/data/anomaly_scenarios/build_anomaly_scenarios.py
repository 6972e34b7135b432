"""Build the anomaly-engine scenario captures in this directory (issue 5; deterministic).

    .venv/bin/python tests/data/anomaly_scenarios/build_anomaly_scenarios.py           # write all
    .venv/bin/python tests/data/anomaly_scenarios/build_anomaly_scenarios.py --check   # + verify
    .venv/bin/python tests/data/anomaly_scenarios/build_anomaly_scenarios.py --check oom_mid_test

Each scenario NAME gets three files:

    NAME.jsonl          the capture (schemas/capture.py), records ordered by ``ts``
    NAME.expected.json  ``{"runs": [{"run_id", "status"}], "anomalies": [{"run_id", "type",
                        "subject"}]}``: every run and EXACTLY the anomalies the detectors must
                        raise (precision and recall 1.0), sorted
    NAME.config.yaml    the config for ``sentinel --config NAME.config.yaml analyze NAME.jsonl``
                        (``anomalies:`` thresholds spelled out at their defaults, no structure
                        rules, so only detector types can appear)

Every scenario is a multi-run history of one pipeline: a CronJob (``0 * * * *``) whose Jobs run
a test container (pytest -v --durations=0 --reruns 2; the log scenarios add the service under
test as a second container). Each Job and its pod carry ``sentinel.io/pipeline`` from the
CronJob's templates, so Job and pod signals agree on the pipeline; the run id is
``job:<namespace>/<job>`` (pod label ``batch.kubernetes.io/job-name``); bare Jobs have no
branch, so the history key is (pipeline, None). Kubernetes objects are built with the capture
builder both generators share, ``tests/data/capture_builder.py`` (Pods, Jobs and core/v1 Events
as the API returns them); pytest lines follow ``tests/data/test-logs/pytest-verbose-rerun.log``.

``--check`` replays each written capture through the pure pipeline code, the way the worker does
(producers' normalisers -> ``processors.signals`` -> ``processors.runs`` fold, watermark =
newest event time - ``allowed_lateness_s``, a final watermark at the end of the capture):
``detect_infra`` on every changed state, ``attribute`` on terminal runs, ``summarise_run`` +
``detect_tests`` per (pipeline, branch) in finished order, and ``LogAnalyzer`` per pipeline
(baseline updated in finished order). The (run_id, type, subject) set must equal the expected
file, the run statuses too; it is checked twice, with and without flushing unfinished test
sessions at the end (whether the worker flushes a stream cut by an OOM kill is its business).
It also reports what the test detectors would say if infra attribution were ignored, so the
wiring can be checked against it.
"""

# ruff: noqa: E501  (log and event message literals)
from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
for path in (ROOT, HERE.parent, HERE):  # the project, tests/data (capture_builder), go_cron
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from capture_builder import (  # noqa: E402  (tests/data/capture_builder.py)
    BaseScenario,
    Capture,
    CheckFailed,
    Container,
    Job,
    Obj,
    Pod,
    at,
    background_rollout,
    core_event,
    cronjob_job_name,
    emit_pod,
    expect,
    involved,
    job_created,
    job_finished,
    job_pod,
    job_scenario_objects,
    k8s_suffix,
    k8s_time,
    owner_ref,
    pod_ref,
    pod_scheduled,
    pytest_banner,
    pytest_header,
    pytest_line,
    read_written,
    replayed_log_line,
    run_generator,
    tekton_pod,
    uid,
)
from go_cron import GO_TESTS, STORE_PKG, GoCron, GoPlan, GoRun, cron_history  # noqa: E402

NAMESPACE = "ci"
NODE_POOL = [
    ("gke-ci-pool-1-7f3a2c1e-x8kq", "10.128.0.21"),
    ("gke-ci-pool-1-7f3a2c1e-m2vd", "10.128.0.22"),
]
TEST_IMAGE = "ghcr.io/acme/orders-api-tests:1.14.2"
TEST_IMAGE_ID = "ghcr.io/acme/orders-api-tests@sha256:5b1f0c8e9d7a6b4c3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d"
APP_IMAGE = "ghcr.io/acme/orders-api:1.14.2"
APP_IMAGE_ID = "ghcr.io/acme/orders-api@sha256:9a8b7c6d5e4f3a2b1c0d5b1f0c8e9d7a6b4c3e2f1a0b9c8d7e6f5a4b3c2d1e0f"
BAD_TAG_IMAGE = "ghcr.io/acme/orders-api-tests:1.15.0-rc1"
RESOURCES = {"limits": {"memory": "512Mi"}, "requests": {"cpu": "500m", "memory": "256Mi"}}


# --------------------------------------------------------------------------------------------
# the test suite


@dataclass(frozen=True)
class Case:
    nodeid: str
    call_s: float  # typical call duration
    setup_s: float = 0.0  # typical fixture setup


UNIT_PRICING = [
    Case("tests/unit/test_pricing.py::test_subtotal", 0.004),
    Case("tests/unit/test_pricing.py::test_discount_percent", 0.006),
    Case("tests/unit/test_pricing.py::test_discount_cap", 0.005),
    Case("tests/unit/test_pricing.py::test_tax_rounding[DE]", 0.011),
    Case("tests/unit/test_pricing.py::test_tax_rounding[US]", 0.012),
]
UNIT_ORDERS = [
    Case("tests/unit/test_orders.py::test_create_order", 0.031),
    Case("tests/unit/test_orders.py::test_cancel_order", 0.027),
    Case("tests/unit/test_orders.py::test_order_state_machine", 0.118),
    Case("tests/unit/test_orders.py::TestRefunds::test_full_refund", 0.044),
    Case("tests/unit/test_orders.py::TestRefunds::test_partial_refund", 0.052),
]
INTEGRATION = [
    Case("tests/integration/test_checkout.py::test_checkout_end_to_end", 6.0, 0.35),
    Case("tests/integration/test_checkout.py::test_checkout_declined_card", 1.2),
    Case("tests/integration/test_checkout.py::test_inventory_reserved", 0.8),
    Case("tests/integration/test_checkout.py::test_webhook_delivery", 2.1),
    Case("tests/integration/test_checkout.py::test_idempotent_retry", 0.5),
]
SUITE = UNIT_PRICING + UNIT_ORDERS + INTEGRATION  # 15 tests

E2E_SUITE = [
    Case("tests/e2e/test_storefront.py::test_browse_catalog", 2.8),
    Case("tests/e2e/test_storefront.py::test_search_products", 1.8),
    Case("tests/e2e/test_storefront.py::test_add_to_cart", 2.2),
    Case("tests/e2e/test_checkout.py::test_guest_checkout", 6.4),
    Case("tests/e2e/test_checkout.py::test_member_checkout", 7.2),
    Case("tests/e2e/test_checkout.py::test_apply_coupon", 3.4),
    Case("tests/e2e/test_orders.py::test_order_history", 2.6),
    Case("tests/e2e/test_orders.py::test_cancel_order", 3.6),
    Case("tests/e2e/test_orders.py::test_ship_order", 4.8),
    Case("tests/e2e/test_orders.py::test_return_order", 4.0),
]


def noise(*parts: object) -> float:
    """A deterministic value in [-1, 1]."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 0xFFFFFFFF * 2 - 1


@dataclass
class Outcome:
    case: Case
    words: list[str]  # e.g. ["PASSED"] or ["RERUN", "PASSED"]
    call_s: float
    setup_s: float


def outcomes(
    scenario: str,
    run: int,
    cases: list[Case],
    overrides: dict[str, float] | None = None,
    words: dict[str, list[str]] | None = None,
    spread: float = 0.05,
) -> list[Outcome]:
    """Each case's outcome with +-`spread` duration noise (overrides: nodeid -> call duration)."""
    out = []
    for case in cases:
        call = case.call_s * (1 + spread * noise(scenario, run, case.nodeid, "call"))
        setup = case.setup_s * (1 + spread * noise(scenario, run, case.nodeid, "setup"))
        if overrides and case.nodeid in overrides:
            call = overrides[case.nodeid]
        out.append(Outcome(case, (words or {}).get(case.nodeid, ["PASSED"]), call, setup))
    return out


PYTEST_HEADER = pytest_header("3.12.8", "/usr/local/bin/python3.12", "/app")


def duration_line(seconds: float, phase: str, nodeid: str) -> str:
    return f"{seconds:02.2f}s {phase:<8} {nodeid}"  # as pytest's terminal reporter prints it


def pytest_session(
    cap: Capture,
    pod: Pod,
    container: str,
    start: datetime,
    results: list[Outcome],
    cut_after: int | None = None,
    durations: bool = True,
) -> datetime:
    """Log a pytest -v session from `start`; returns when it ends. `cut_after`: the process is
    killed after that many tests (no summary, no durations)."""
    n = len(results)
    moment = cap.lines(
        start, 0.05, pod, container, [*PYTEST_HEADER, f"collecting ... collected {n} items", ""]
    )
    moment = at(moment, 0.6)
    elapsed = 0.0
    reruns = 0
    for index, result in enumerate(results, start=1):
        if cut_after is not None and index > cut_after:
            # killed while running this test
            return at(moment, result.setup_s + result.call_s * 0.6)
        percent = 100 * index // n
        for word in result.words:
            spent = result.setup_s + result.call_s + 0.002
            moment = at(moment, spent)
            elapsed += spent
            reruns += word == "RERUN"
            cap.log(moment, pod, container, pytest_line(result.case.nodeid, word, percent))
    lines = [""]
    hidden = 0
    if durations:
        lines.append(pytest_banner("slowest durations"))
        phases = []
        for result in results:
            for phase, secs in (("call", result.call_s), ("setup", result.setup_s)):
                if secs >= 0.005:
                    phases.append((round(secs, 2), phase, result.case.nodeid))
                else:
                    hidden += 1
            hidden += 1  # teardown
        for secs, phase, nodeid in sorted(phases, key=lambda p: (-p[0], p[2], p[1])):
            lines.append(duration_line(secs, phase, nodeid))
        lines.append("")
        lines.append(f"({hidden} durations < 0.005s hidden.  Use -vv to show these durations.)")
    summary = f"{n} passed" + (f", {reruns} rerun" if reruns else "") + f" in {elapsed + 0.9:.2f}s"
    lines.append(pytest_banner(summary))
    return cap.lines(at(moment, 0.3), 0.01, pod, container, lines)


# --------------------------------------------------------------------------------------------
# Kubernetes objects of a CronJob run


@dataclass
class CronJobRunJob(Job):
    """A Job created by a CronJob: the controller stamps the time it was scheduled for."""

    scheduled_for: datetime | None = None

    def object(self, now: datetime) -> Obj:
        obj = super().object(now)
        if self.scheduled_for is not None:
            # Added last (after ownerReferences), not through Job.annotations: the written
            # captures have it there.
            obj["metadata"].setdefault("annotations", {})[
                "batch.kubernetes.io/cronjob-scheduled-timestamp"
            ] = k8s_time(self.scheduled_for)
        return obj


@dataclass
class PullingContainer(Container):
    """A container whose image cannot be pulled: waiting reasons change over time."""

    waits: list[tuple[datetime, str, str]] = field(default_factory=list)

    def status(self, now: datetime, pod_uid: str, waiting_reason: str) -> Obj:
        reason, message = waiting_reason, None
        for when, why, text in self.waits:
            if when <= now:
                reason, message = why, text
        waiting: Obj = {"reason": reason}
        if message:
            waiting["message"] = message
        return {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"waiting": waiting},
        }


@dataclass
class Pipeline:
    scenario: str
    cron: str
    app_label: str
    with_app: bool = False  # the log scenarios: the service under test in a second container

    @property
    def cron_uid(self) -> str:
        return uid("cronjob", NAMESPACE, self.cron)

    def job_name(self, scheduled: datetime) -> str:
        return cronjob_job_name(self.cron, scheduled)

    def run_id(self, scheduled: datetime) -> str:
        return f"job:{NAMESPACE}/{self.job_name(scheduled)}"


@dataclass
class RunPlan:
    index: int
    scheduled: datetime
    results: list[Outcome]
    fault: str | None = None  # None | "oom" | "image_pull"
    cut_after: int | None = None
    app_lines: list[tuple[float, str]] = field(default_factory=list)  # offset from app start


@dataclass
class Built:
    run_id: str
    status: str
    job: str
    pod: str
    container: str


def build_run(cap: Capture, pipe: Pipeline, plan: RunPlan) -> Built:
    t = at(plan.scheduled, 0.04)  # the CronJob controller creates the Job right on schedule
    job_name = pipe.job_name(plan.scheduled)
    node, host_ip = NODE_POOL[plan.index % 2]
    extra = {"app.kubernetes.io/name": pipe.app_label, "sentinel.io/pipeline": pipe.cron}
    test_container = "pytest"
    image = BAD_TAG_IMAGE if plan.fault == "image_pull" else TEST_IMAGE
    pytest_args = "pytest -v --durations=0 --reruns 2" + (" tests/e2e" if pipe.with_app else "")
    command = [
        "sh",
        "-c",
        f"./scripts/wait-for-it.sh orders-db:5432 -t 60 && alembic upgrade head && {pytest_args}",
    ]
    started = at(t, 4.2 + 0.3 * noise(pipe.scenario, plan.index, "start"))
    containers: list[Container] = []
    app: Container | None = None
    if pipe.with_app:
        app = Container(
            "orders-api",
            APP_IMAGE,
            APP_IMAGE_ID,
            args=["--port=8080", "--log-level=info"],
            resources=RESOURCES,
            started=at(t, 3.6),
            extra={"ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]},
        )
        containers.append(app)
    if plan.fault == "image_pull":
        tests: Container = PullingContainer(
            test_container,
            image,
            "",
            command=command,
            resources=RESOURCES,
            extra={"workingDir": "/app"},
            waits=pull_waits(t),
        )
    else:
        tests = Container(
            test_container,
            image,
            TEST_IMAGE_ID,
            command=command,
            resources=RESOURCES,
            started=started,
            extra={"workingDir": "/app"},
        )
    containers.append(tests)
    pod = job_pod(
        NAMESPACE,
        job_name,
        k8s_suffix(5, pipe.scenario, job_name),
        containers,
        node=node,
        pod_ip=f"10.{52 + plan.index % 2}.{plan.index}.{17 + plan.index}",
        host_ip=host_ip,
        created=at(t, 0.05),
        scheduled=at(t, 0.9),
        extra_labels=extra,
    )
    job = CronJobRunJob.for_pod(
        pod,
        t,
        labels=dict(extra),
        owner=owner_ref("CronJob", "batch/v1", pipe.cron, pipe.cron_uid),
        backoff_limit=0,
        active_deadline_s=600,
        scheduled_for=plan.scheduled,
    )
    cap.k8s(
        at(t, 0.1),
        "ADDED",
        core_event(
            NAMESPACE,
            involved("CronJob", "batch/v1", NAMESPACE, pipe.cron, pipe.cron_uid),
            "SuccessfulCreate",
            f"Created job {job_name}",
            t,
            "cronjob-controller",
        ),
    )

    if plan.fault == "image_pull":
        status = image_pull_objects(cap, job, pod)
        return Built(pipe.run_id(plan.scheduled), status, job_name, pod.name, test_container)

    # logs, then the container timelines they imply
    if app is not None:
        app_start = app.started
        assert app_start is not None
        app_log = [
            (0.0, "INFO:     Started server process [1]"),
            (0.1, "INFO:     Waiting for application startup."),
            (0.4, "INFO:     Application startup complete."),
            (0.4, "INFO:     Uvicorn running on http://0.0.0.0:8080 (Press CTRL+C to quit)"),
            *plan.app_lines,
        ]
        cap.timed(app_start, pod, "orders-api", app_log)
    db_wait = 14 + 0.5 * noise(pipe.scenario, plan.index, "db")
    prelude = [
        (0.1, "wait-for-it.sh: waiting 60 seconds for orders-db:5432"),
        (db_wait, f"wait-for-it.sh: orders-db:5432 is available after {int(db_wait)} seconds"),
        (db_wait + 0.9, "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl."),
        (db_wait + 0.9, "INFO  [alembic.runtime.migration] Will assume transactional DDL."),
        (
            db_wait + 1.0,
            "INFO  [alembic.runtime.migration] Running upgrade  -> 3f9a1c2b7d4e, create orders tables",
        ),
        (
            db_wait + 1.3,
            "INFO  [alembic.runtime.migration] Running upgrade 3f9a1c2b7d4e -> 8c2d4e6f0a1b, add refunds",
        ),
    ]
    cap.timed(started, pod, test_container, prelude)
    session_end = pytest_session(
        cap, pod, test_container, at(started, db_wait + 2.4), plan.results, plan.cut_after
    )
    if plan.fault == "oom":
        tests.finished = session_end
        tests.exit_code, tests.reason = 137, "OOMKilled"
        done = session_end
    else:
        tests.finished = at(session_end, 0.4)
        done = tests.finished
    if app is not None:
        cap.log(at(tests.finished, 0.2), pod, "orders-api", "INFO:     Shutting down")
        cap.log(at(tests.finished, 0.3), pod, "orders-api", "INFO:     Finished server process [1]")
        app.finished = at(tests.finished, 0.5)
        done = app.finished
    job.ready = tests.started
    job.finished = at(done, 1.0)
    job.succeeded = plan.fault is None
    job_scenario_objects(cap, job, pod, pulled=True)
    status = "succeeded" if job.succeeded else "failed"
    return Built(pipe.run_id(plan.scheduled), status, job_name, pod.name, test_container)


def pull_failed_message(image: str) -> str:
    return (
        f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and '
        f'unpack image "{image}": failed to resolve reference "{image}": {image}: not found'
    )


PULL_RETRIES = [3.1, 17.6, 43.2, 84.9, 167.5, 333.0, 498.4]  # kubelet back-off 10s..300s


def pull_waits(t: datetime) -> list[tuple[datetime, str, str]]:
    """The container's waiting reason and the kubelet's message after each failed pull."""
    error = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{BAD_TAG_IMAGE}": '
        f'failed to resolve reference "{BAD_TAG_IMAGE}": {BAD_TAG_IMAGE}: not found'
    )
    waits = []
    for offset in PULL_RETRIES:
        waits.append((at(t, offset), "ErrImagePull", error))
        waits.append(
            (at(t, offset + 1.2), "ImagePullBackOff", f'Back-off pulling image "{BAD_TAG_IMAGE}"')
        )
    return waits


def image_pull_objects(cap: Capture, job: CronJobRunJob, pod: Pod) -> str:
    """The Job's pod never pulls its image; the Job fails at activeDeadlineSeconds (600 s) and
    the Job controller deletes the pod."""
    t = job.created
    deadline = at(t, 600)
    job_created(cap, job, pod)
    pod.deletion_requested = deadline
    pod.grace = 30
    moments = [pod.scheduled, at(pod.scheduled, 2)]
    for offset in PULL_RETRIES:
        moments += [at(t, offset), at(t, offset + 1.2)]
    moments.append(deadline)
    pod.emit(cap, moments)
    pod_scheduled(cap, pod)
    ref = pod_ref(pod)
    path = "spec.containers{pytest}"
    series: dict[str, Obj] = {}

    def kubelet_event(when: datetime, reason: str, message: str, kind: str) -> None:
        key = f"{reason}/{message}"
        obj = series.get(key)
        if obj is None:
            obj = core_event(
                NAMESPACE,
                ref,
                reason,
                message,
                when,
                "kubelet",
                pod.node,
                kind=kind,
                field_path=path,
            )
            series[key] = obj
            cap.k8s(at(when, 0.25), "ADDED", obj)
        else:
            obj["count"] += 1
            obj["lastTimestamp"] = k8s_time(when)
            cap.k8s(at(when, 0.25), "MODIFIED", obj)

    for offset in PULL_RETRIES:
        pulling = at(t, offset - 1.9)
        kubelet_event(pulling, "Pulling", f'Pulling image "{BAD_TAG_IMAGE}"', "Normal")
        kubelet_event(at(t, offset), "Failed", pull_failed_message(BAD_TAG_IMAGE), "Warning")
        kubelet_event(at(t, offset), "Failed", "Error: ErrImagePull", "Warning")
        kubelet_event(
            at(t, offset + 1.2), "BackOff", f'Back-off pulling image "{BAD_TAG_IMAGE}"', "Normal"
        )
        kubelet_event(at(t, offset + 1.2), "Failed", "Error: ImagePullBackOff", "Warning")
    # activeDeadlineSeconds: the controller marks the Job failed and deletes its pod
    job.finished = deadline
    job.succeeded = False
    job.failure_reason, job.failure_message = (
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )
    cap.k8s(
        at(deadline, 0.2),
        "ADDED",
        core_event(
            NAMESPACE,
            job.ref(),
            "SuccessfulDelete",
            f"Deleted pod: {pod.name}",
            deadline,
            "job-controller",
        ),
    )
    job_finished(cap, job)
    kubelet_event(at(deadline, 0.4), "Killing", "Stopping container pytest", "Normal")
    pod.emit_deleted(cap, at(deadline, 1.6))
    return "failed"


# --------------------------------------------------------------------------------------------
# scenarios


@dataclass
class Scenario(BaseScenario):
    runs: list[Built]
    anomalies: list[Obj]

    def expected(self) -> Obj:
        return {
            "runs": [{"run_id": r.run_id, "status": r.status} for r in self.runs],
            "anomalies": sorted(
                self.anomalies, key=lambda a: (a["run_id"], a["type"], a["subject"])
            ),
        }


def base_config() -> Obj:
    return {
        "anomalies": {
            "infra": {
                "enabled": True,
                "pending_limit_s": 300,
                "restart_burst": 3,
                "restart_window_s": 600,
            },
            "tests": {
                "history_runs": 20,
                "min_samples": 5,
                "duration_ratio": 2.0,
                "duration_min_delta_s": 5.0,
                "duration_mads": 5.0,
                "erratic_cv": 0.5,
                "failure_rate_spike": 0.3,
                "missing_after_runs": 3,
            },
            "logs": {
                "window_s": 60,
                "spike_factor": 5.0,
                "spike_min_errors": 10,
                "silence_s": 900,
                "min_samples": 3,
            },
        },
        "structure": {"rules": []},
    }


def finish(cap: Capture, last: datetime) -> None:
    """Unrelated background activity well after the last run: event time passes every run's
    end, quiet period, lateness and settle time."""
    background_rollout(cap, at(last, 900), "gke-ci-pool-1-7f3a2c1e-x8kq", "10.52.9.33")


def history(
    name: str,
    start: datetime,
    n: int,
    cron: str,
    cases: list[Case],
    special: dict[int, dict[str, Any]],
    with_app: bool = False,
    app_lines: Any = None,
) -> tuple[Capture, Pipeline, list[Built], list[RunPlan]]:
    cap = Capture(name)
    pipe = Pipeline(name, cron, "orders-api", with_app=with_app)
    built, plans = [], []
    for index in range(1, n + 1):
        opts = special.get(index, {})
        results = outcomes(
            name, index, opts.get("cases", cases), opts.get("durations"), opts.get("words")
        )
        plan = RunPlan(
            index,
            at(start, 3600 * (index - 1)),
            results,
            fault=opts.get("fault"),
            cut_after=opts.get("cut_after"),
            app_lines=app_lines(index) if app_lines else [],
        )
        plans.append(plan)
        built.append(build_run(cap, pipe, plan))
    finish(cap, at(start, 3600 * (n - 1) + 700))
    return cap, pipe, built, plans


def found(run: Built, type_: str, subject: str) -> Obj:
    """An anomaly the detectors must raise for `run`."""
    return {"run_id": run.run_id, "type": type_, "subject": subject}


CRON = "orders-api-tests"


def orders_tests(
    name: str, start: datetime, n: int, special: dict[int, dict[str, Any]] | None = None
) -> tuple[Capture, list[Built]]:
    """`n` hourly runs of CronJob ci/orders-api-tests (SUITE) from `start`; `special`: what
    differs in a run, by run index (see `history`)."""
    cap, _, runs, _ = history(name, start, n, CRON, SUITE, special or {})
    return cap, runs


def clean_history() -> Scenario:
    cap, runs = orders_tests("clean_history", datetime(2026, 2, 2, 1, 0, tzinfo=UTC), 7)
    return Scenario(
        "clean_history",
        "Seven hourly runs of CronJob ci/orders-api-tests (pytest -v --durations=0, 15 tests, all "
        "passing, durations within +-5%, pods start in ~5 s, no Warning Events). Every run "
        "succeeds; no anomaly of any kind.",
        cap,
        base_config(),
        runs,
        [],
    )


def oom_mid_test() -> Scenario:
    special = {7: {"fault": "oom", "cut_after": 10}}
    cap, runs = orders_tests("oom_mid_test", datetime(2026, 2, 3, 1, 0, tzinfo=UTC), 8, special)
    bad = runs[6]
    anomalies = [
        found(bad, "oom_killed", f"{bad.pod}/{bad.container}"),
        found(bad, "job_backoff_limit", f"job/{bad.run_id}"),
    ]
    return Scenario(
        "oom_mid_test",
        "Eight hourly runs of ci/orders-api-tests (15 pytest tests). Run 7's pytest container is "
        "OOMKilled (exit 137, limit 512Mi) during test 11 of 15 (test_checkout_end_to_end): no "
        "session summary, pod Failed, and since the Job has backoffLimit 0 it fails with "
        "BackoffLimitExceeded. Expected for run 7: oom_killed [pod/pytest] and job_backoff_limit "
        "[job/<run id>] (a real Job with backoffLimit 0 reports both), and NO test anomaly: the "
        "run is infrastructure-caused (OOM), so its missing tests, short duration and failure "
        "are not missing_tests / failure_rate_spike. Run 8 is good again and raises nothing "
        "(the OOM run is not part of any baseline).",
        cap,
        base_config(),
        runs,
        anomalies,
    )


def flaky_test() -> Scenario:
    flaky = "tests/unit/test_orders.py::TestRefunds::test_partial_refund"
    special = {6: {"words": {flaky: ["RERUN", "PASSED"]}}}
    cap, runs = orders_tests("flaky_test", datetime(2026, 2, 4, 1, 0, tzinfo=UTC), 7, special)
    subject = "tests.unit.test_orders.TestRefunds::test_partial_refund"  # as the parser keys it
    anomalies = [found(runs[5], "flaky_test", subject)]
    return Scenario(
        "flaky_test",
        "Seven hourly runs of ci/orders-api-tests (15 pytest tests, --reruns 2). In run 6 "
        "TestRefunds::test_partial_refund fails once (pytest-rerunfailures RERUN line) and passes "
        "on retry; the session ends '15 passed, 1 rerun' and the Job completes. Expected: one "
        "flaky_test (pass_on_retry) for run 6, subject = suite::name as the parser keys it. "
        "No failure_rate_spike (final statuses all passed), nothing else.",
        cap,
        base_config(),
        runs,
        anomalies,
    )


def duration_regression() -> Scenario:
    slow = "tests/integration/test_checkout.py::test_checkout_end_to_end"
    special = {7: {"durations": {slow: 24.0}}}
    start = datetime(2026, 2, 5, 1, 0, tzinfo=UTC)
    cap, runs = orders_tests("duration_regression", start, 7, special)
    subject = "tests.integration.test_checkout::test_checkout_end_to_end"
    anomalies = [found(runs[6], "duration_regression", subject)]
    return Scenario(
        "duration_regression",
        "Seven hourly runs of ci/orders-api-tests. test_checkout_end_to_end takes ~6.35 s "
        "(call 6.0 s + setup 0.35 s, +-5%) in runs 1-6 and 24.35 s in run 7 (~3.8x). With the "
        "default guards (ratio 2x, +5 s, 5 MADs) the threshold is ~12.7 s: duration_regression "
        "for run 7. The run itself gets ~18 s longer (~37 s -> ~55 s), below 2x its median, so "
        "no run_duration_regression; the other tests are below the +5 s absolute guard.",
        cap,
        base_config(),
        runs,
        anomalies,
    )


def image_pull_failure() -> Scenario:
    special = {7: {"fault": "image_pull"}}
    start = datetime(2026, 2, 6, 1, 0, tzinfo=UTC)
    cap, runs = orders_tests("image_pull_failure", start, 8, special)
    bad = runs[6]
    anomalies = [
        found(bad, "image_pull_failure", bad.pod),
        found(bad, "pending_too_long", bad.pod),
    ]
    return Scenario(
        "image_pull_failure",
        f"Eight hourly runs of ci/orders-api-tests. Run 7's pod references {BAD_TAG_IMAGE}, which "
        "does not exist: the container waits in ErrImagePull / ImagePullBackOff, the kubelet "
        "records Failed (Warning: 'Failed to pull image ... not found', 'Error: ErrImagePull', "
        "'Error: ImagePullBackOff') and BackOff (Normal) Events with growing counts, and the pod "
        "stays Pending until the Job's activeDeadlineSeconds (600 s): the Job fails with "
        "DeadlineExceeded and the controller deletes the pod. Expected for run 7: "
        "image_pull_failure [pod] and pending_too_long [pod] (Pending 600 s > pending_limit_s "
        "300 s); no job_backoff_limit (the reason is DeadlineExceeded), and no test anomaly: the "
        "run is infrastructure-caused (image pull), so its 600 s duration is not a "
        "run_duration_regression. Run 8 is good and raises nothing.",
        cap,
        base_config(),
        runs,
        anomalies,
    )


def missing_tests() -> Scenario:
    special = {7: {"cases": UNIT_PRICING + INTEGRATION}}
    cap, runs = orders_tests("missing_tests", datetime(2026, 2, 7, 1, 0, tzinfo=UTC), 7, special)
    anomalies = [found(runs[6], "missing_tests", CRON)]
    return Scenario(
        "missing_tests",
        "Seven hourly runs of ci/orders-api-tests. Runs 1-6 collect 15 tests; in run 7 "
        "tests/unit/test_orders.py is not collected (10 items, all passing, the Job completes). "
        "Expected: one missing_tests for run 7 (subject = the pipeline, the 5 keys in evidence). "
        "The shorter run is not a regression; nothing else.",
        cap,
        base_config(),
        runs,
        anomalies,
    )


# --- log scenarios ----------------------------------------------------------------------------

E2E_CRON = "orders-e2e"


def app_time(base: datetime, offset: float) -> str:
    moment = at(base, offset)
    return moment.strftime("%Y-%m-%d %H:%M:%S,") + f"{moment.microsecond // 1000:03d}"


def gateway_error(attempt: int, order: int) -> str:
    return f"ERROR [orders.payments] payment gateway returned 503 for order {order} (attempt {attempt}/3), retrying in {0.5 * attempt:.1f}s"


def e2e_app_lines(
    scenario: str,
    index: int,
    start: datetime,
    extra: list[tuple[float, str]],
    steps: int = 18,
) -> list[tuple[float, str]]:
    """The service's own log while the e2e tests run: access lines, a cache warning, and now
    and then one payment-gateway 503 that a retry fixes (the pipeline's known error)."""
    app_start = at(start, 3.6)  # as build_run starts the app container
    lines: list[tuple[float, str]] = []
    order = 84000 + 100 * index
    for step in range(steps):
        offset = 20.0 + step * 2.0
        order += 1
        lines.append(
            (offset, f"INFO [orders.api] POST /orders 201 order={order} {12 + (step * 7) % 9}ms")
        )
        if step == 4:
            lines.append(
                (
                    offset + 0.2,
                    f"WARNING [orders.cache] redis latency {205 + index * 3}ms above 200ms budget",
                )
            )
    gateway_errors = 1 if index % 2 else 2
    for k in range(gateway_errors):
        offset = 25.3 + 7.0 * k
        lines.append((offset, gateway_error(1, order - 10 + k)))
        lines.append(
            (
                offset + 0.6,
                f"INFO [orders.payments] payment for order {order - 10 + k} captured after 2 attempts",
            )
        )
    lines += extra
    lines.sort(key=lambda item: item[0])
    return [(offset, f"{app_time(app_start, offset)} {text}") for offset, text in lines]


def e2e_history(
    name: str, start: datetime, extra: Callable[[int], list[tuple[float, str]]]
) -> tuple[Capture, Pipeline, list[Built], list[RunPlan]]:
    """Seven hourly runs of CronJob ci/orders-e2e from `start`: the service logs what
    `e2e_app_lines` gives, plus `extra(index)` in run `index`."""
    return history(
        name,
        start,
        7,
        E2E_CRON,
        E2E_SUITE,
        {},
        with_app=True,
        app_lines=lambda i: e2e_app_lines(name, i, at(start, 3600 * (i - 1) + 0.04), extra(i)),
    )


def new_error_signature() -> Scenario:
    start = datetime(2026, 2, 8, 1, 0, tzinfo=UTC)

    def extra(index: int) -> list[tuple[float, str]]:
        if index < 6:
            return []
        out: list[tuple[float, str]] = []
        for k, order in enumerate((84611, 84617) if index == 6 else (84711,)):
            base = 28.0 + 5.5 * k
            out += [
                (
                    base,
                    f"ERROR [orders.notifications] failed to render email template order_shipped for order {order}",
                ),
                (base + 0.001, "Traceback (most recent call last):"),
                (base + 0.002, '  File "/app/orders/notifications.py", line 88, in send_shipped'),
                (base + 0.003, "    body = template.render(**context)"),
                (
                    base + 0.004,
                    '  File "/usr/local/lib/python3.12/site-packages/jinja2/environment.py", line 1304, in render',
                ),
                (base + 0.005, "    self.environment.handle_exception()"),
                (base + 0.006, "jinja2.exceptions.UndefinedError: 'tracking_url' is undefined"),
            ]
        return out

    name = "new_error_signature"
    cap, pipe, runs, plans = e2e_history(name, start, extra)
    anomalies = [found(runs[5], "new_error_template", new_template_subject(plans, pipe, 6))]
    return Scenario(
        name,
        "Seven hourly runs of CronJob ci/orders-e2e: the pod runs the service (orders-api, "
        "uvicorn + Python logging) beside the pytest e2e container (10 tests, all passing). "
        "Every run logs access lines, a cache WARNING and one or two 'payment gateway returned "
        "503 ... retrying' ERRORs (the pipeline's known error). In run 6 the service also logs "
        "two 'failed to render email template order_shipped' ERRORs with a jinja2 traceback "
        "(folded into one event each): one new_error_template for run 6 (subject = its template "
        "id, as the miner derives it). Run 7 logs it again: no longer new, nothing. Tests all "
        "pass, so nothing else.",
        cap,
        base_config(),
        runs,
        anomalies,
    )


def error_spike() -> Scenario:
    start = datetime(2026, 2, 9, 1, 0, tzinfo=UTC)

    def extra(index: int) -> list[tuple[float, str]]:
        if index != 6:
            return []
        out = []
        for k in range(12):  # the gateway is down for ~25 s: every order needs a second try
            order = 84690 + k
            out.append((30.0 + 2.0 * k, gateway_error(1, order)))
            out.append((30.9 + 2.0 * k, gateway_error(2, order)))
        return out

    name = "error_spike"
    cap, _, runs, _ = e2e_history(name, start, extra)
    anomalies = [found(runs[5], "error_spike", runs[5].pod)]
    return Scenario(
        name,
        "Seven hourly runs of ci/orders-e2e (service + pytest e2e, as new_error_signature). "
        "Runs log one or two 'payment gateway returned 503 ... retrying' ERRORs each. In run 6 "
        "the gateway is down for ~25 s: 24 more of the same ERROR (same template, nothing new) "
        "inside one 60 s window. Expected: one error_spike for run 6 (subject = its pod): 25+ "
        "errors > 5x the baseline mean (~1.5 per pod-window), >= 10 and > the baseline max (2). "
        "Tests all pass; nothing else.",
        cap,
        base_config(),
        runs,
        anomalies,
    )


def new_template_subject(plans: list[RunPlan], pipe: Pipeline, index: int) -> str:
    """The template id the pipeline's miner gives run `index`'s new error (mined as the worker
    mines: every error event of the earlier runs, in order, on one miner)."""
    from processors.anomalies.logs import LogAnalyzer
    from schemas.messages import LogLine

    analyzer = LogAnalyzer()
    miner = analyzer.miner_for(pipe.cron)
    known: set[str] = set()
    for plan in plans[:index]:
        state = analyzer.new_state(pipe.run_id(plan.scheduled), pipe.cron)
        for offset, text in plan.app_lines:
            line = LogLine(
                namespace=NAMESPACE,
                pod="p",
                container="orders-api",
                line=text,
                event_time=at(plan.scheduled, offset),
                received_at=at(plan.scheduled, offset),
            )
            analyzer.feed(state, line, miner)
        if plan.index < index:
            known |= set(state.templates)
        else:
            new = sorted(set(state.templates) - known)
            assert len(new) == 1, new
            return new[0]
    raise AssertionError("run not found")


# --- issue 12: pipelines side by side --------------------------------------------------------

SIDE_CRON = "ledger-nightly"


def new_templates_of(cap: Capture, run: GoRun, earlier: list[GoRun]) -> list[str]:
    """The error template ids `run` logs that none of `earlier` (same namespace) logged, mined
    as the worker mines: warning/error lines of each run in capture order, one miner per
    pipeline and namespace."""
    from processors.anomalies.logs import LogAnalyzer
    from processors.logs.levels import worth_analysing
    from schemas.messages import LogLine

    analyzer = LogAnalyzer()
    miner = analyzer.miner_for(f"{SIDE_CRON}/{run.namespace}")
    wanted = {r.pod: r.run_id for r in [*earlier, run]}
    states = {rid: analyzer.new_state(rid, SIDE_CRON) for rid in wanted.values()}
    for ts, _, record in sorted(cap.records, key=lambda item: (item[0], item[1])):
        if record["type"] != "log" or record["namespace"] != run.namespace:
            continue
        owner = wanted.get(record["pod"])
        if owner is None or not worth_analysing(record["line"]):
            continue
        line = LogLine(
            namespace=record["namespace"],
            pod=record["pod"],
            container=record["container"],
            line=record["line"],
            event_time=ts,
            received_at=ts,
        )
        analyzer.feed(states[owner], line, miner)
    known = {tid for r in earlier for tid in states[r.run_id].templates}
    return sorted(set(states[run.run_id].templates) - known)


DEADLOCK = [
    (2.10, "[{pid}] ERROR:  deadlock detected"),
    (
        2.10,
        "[{pid}] DETAIL:  Process {pid} waits for ShareLock on transaction 1187; blocked by process {other}.",
    ),
    (2.10, "[{pid}] HINT:  See server log for query details."),
    (2.10, '[{pid}] CONTEXT:  while updating tuple (0,7) in relation "accounts"'),
    (2.10, "[{pid}] STATEMENT:  UPDATE accounts SET balance = balance - $1 WHERE id = $2"),
]
NO_RELATION = [
    '[{pid}] ERROR:  relation "accounts" does not exist at character 13',
    "[{pid}] STATEMENT:  INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)",
]
STORE_TESTS = [name for pkg, name, _ in GO_TESTS if pkg == STORE_PKG]


def side_by_side() -> Scenario:
    """Seven teams' CronJob ledger-nightly, each in its own namespace, on the same schedule."""
    first = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    cap = Capture("side_by_side")
    runs: list[GoRun] = []
    anomalies: list[Obj] = []

    def team(name: str, n: int, plans: dict[int, dict[str, Any]], node: str) -> list[GoRun]:
        pipe = GoCron(f"team-{name}", SIDE_CRON, node=node)
        built = cron_history(cap, pipe, first, n, plans=plans)
        runs.extend(built)
        return built

    def job_failed(run: GoRun) -> Obj:
        return found(run, "job_backoff_limit", f"job/{run.run_id}")  # type: ignore[arg-type]

    # a: cold start after runs that failed before their tests (image pull, OOM while building)
    a = team(
        "a",
        6,
        {
            2: {"fault": "image_pull"},
            4: {"fault": "oom_build"},
            6: {"slow": {"TestConcurrentTransfers": 26.4}},
        },
        "gke-ci-pool-2-4b1d9e0a-q7wz",
    )
    anomalies += [
        found(a[1], "image_pull_failure", a[1].pod),  # type: ignore[arg-type]
        found(a[3], "oom_killed", f"{a[3].pod}/go-test"),  # type: ignore[arg-type]
        job_failed(a[3]),
        found(a[5], "duration_regression", f"{STORE_PKG}::TestConcurrentTransfers"),  # type: ignore[arg-type]
    ]
    # b: earlier runs logged only info lines; run 5's database logs a deadlock twice
    pg = [
        (o + 9.0 * k, text.format(pid=81 + k, other=82 + k))
        for k in range(2)
        for o, text in DEADLOCK
    ]
    b = team("b", 5, {5: {"pg_extra": pg}}, "gke-ci-pool-2-4b1d9e0a-r2lm")
    (deadlock,) = new_templates_of(cap, b[4], b[:4])
    anomalies.append(found(b[4], "new_error_template", deadlock))  # type: ignore[arg-type]
    # c: a migration lost the accounts table: 7 of 11 tests fail
    failing = {
        name: [
            f'ledger_test.go:{30 + 7 * k}: setup: ERROR: relation "accounts" does not exist (SQLSTATE 42P01)'
        ]
        for k, name in enumerate([*STORE_TESTS, "TestTransferHandler"])
    }
    pg_c = [(1.2 + 0.05 * k, line.format(pid=90 + k)) for k in range(7) for line in NO_RELATION]
    c = team("c", 6, {6: {"failing": failing, "pg_extra": pg_c}}, "gke-ci-pool-2-4b1d9e0a-r2lm")
    anomalies += [
        found(c[5], "failure_rate_spike", SIDE_CRON),  # type: ignore[arg-type]
        found(c[5], "error_spike", c[5].pod),  # type: ignore[arg-type]
        job_failed(c[5]),
    ]
    anomalies += [found(c[5], "new_error_template", t) for t in new_templates_of(cap, c[5], c[:5])]  # type: ignore[arg-type]
    # d: clean
    team("d", 6, {}, "gke-ci-pool-2-4b1d9e0a-q7wz")
    # e: evicted (node pressure) in run 3; the node goes NotReady during run 5
    e = team(
        "e",
        6,
        {3: {"fault": "evicted"}, 5: {"fault": "node_not_ready"}},
        "gke-ci-pool-2-4b1d9e0a-x5tt",
    )
    anomalies += [
        found(e[2], "evicted", e[2].pod),  # type: ignore[arg-type]
        job_failed(e[2]),
        found(e[4], "node_not_ready", e[4].node),  # type: ignore[arg-type]
        job_failed(e[4]),
    ]
    # f: the test binary panics in TestMain at every start (crash loop) in run 5
    f = team("f", 6, {5: {"fault": "crash_loop"}}, "gke-ci-pool-2-4b1d9e0a-x5tt")
    anomalies += [
        found(f[4], "crash_loop", f"{f[4].pod}/go-test"),  # type: ignore[arg-type]
        found(f[4], "restart_burst", f"{f[4].pod}/go-test"),  # type: ignore[arg-type]
        job_failed(f[4]),
        found(f[4], "run_duration_regression", SIDE_CRON),  # type: ignore[arg-type]
    ]
    anomalies += [found(f[4], "new_error_template", t) for t in new_templates_of(cap, f[4], f[:4])]  # type: ignore[arg-type]
    # g: a test hangs in run 5 until go test's 20-minute timeout
    g = team("g", 5, {5: {"fault": "hang", "cut_after": 10}}, "gke-ci-pool-2-4b1d9e0a-q7wz")
    anomalies += [
        found(g[4], "log_silence", g[4].pod),  # type: ignore[arg-type]
        job_failed(g[4]),
        found(g[4], "run_duration_regression", SIDE_CRON),  # type: ignore[arg-type]
    ]
    anomalies += [found(g[4], "new_error_template", t) for t in new_templates_of(cap, g[4], g[:4])]  # type: ignore[arg-type]
    finish(cap, at(first, 3600 * 5 + 1300))
    built = [Built(r.run_id, r.status, r.job, r.pod, "go-test") for r in runs]
    return Scenario(
        "side_by_side",
        "Seven teams run the same CronJob, ledger-nightly (go test -v on 11 tests against a "
        "postgres container; pods name only their Job), each in its own namespace, on the same "
        "hourly schedule: their lines interleave. Every team's expected anomalies are exactly "
        "what its pipeline gives alone. team-a: runs 2 (image never pulls: image_pull_failure, "
        "pending_too_long) and 4 (OOMKilled while compiling: oom_killed, job_backoff_limit) "
        "fail before their tests (postgres started, so the pod was not Pending too long), so run "
        "6's TestConcurrentTransfers, 11x slower, is judged against 3 samples (cold start: "
        "margins x2) and is a duration_regression. team-b: runs "
        "1-4 log only info lines (they are the log baseline); run 5's database logs a deadlock "
        "twice: new_error_template. team-c: run 6 lost the accounts table: 7 of 11 tests fail "
        "(failure_rate_spike, job_backoff_limit), two error signatures are new (the test "
        "output's and postgres') and their 14 error lines in one minute, against a baseline of "
        "none, are an error_spike. team-d: clean. team-e: run 3 evicted for node pressure "
        "(evicted, job_backoff_limit), run 5's node NotReady while two tests time out "
        "(node_not_ready, job_backoff_limit): both runs are the infrastructure's, so no test "
        "anomaly. team-f: run 5's test binary panics in TestMain at every start (crash_loop, "
        "restart_burst, job_backoff_limit, the panic as a new_error_template, a run 6x longer: "
        "run_duration_regression). team-g: run 5 hangs in a test for 20 minutes: log_silence "
        "while it hangs, then go test's timeout panic (new_error_template), a failed Job and a "
        "run_duration_regression.",
        cap,
        base_config(),
        built,
        anomalies,
    )


# --- issue 12: a Tekton pipeline's history, a stage gone missing -------------------------------

TEKTON_NS = "shop"
TEKTON_PIPELINE = "shop-verify"
GIT_INIT = "gcr.io/tekton-releases/github.com/tektoncd/pipeline/cmd/git-init:v0.40.2"
GIT_INIT_ID = "gcr.io/tekton-releases/github.com/tektoncd/pipeline/cmd/git-init@sha256:28ff94e63e4058afc3f15b4c11c08cf3b54fa91faa5b6f4b7a1e3d0c5a9b8e7f"
PYTHON_IMAGE = "docker.io/library/python:3.12-slim"
PYTHON_IMAGE_ID = "docker.io/library/python@sha256:2b0079146a74e23bb4ae8f6a9f8fd1d03e8f5d6c2f1b0a9e8d7c6b5a4f3e2d1c"


def tekton_run(cap: Capture, index: int, t0: datetime, skip_integration: bool) -> Built:
    """PipelineRun shop-verify-<suffix>: fetch-source, unit-tests (pytest), then
    integration-tests (pytest), each a TaskRun pod; with `skip_integration` the last task's
    when-expression is false and it never runs (Tekton creates no pod)."""
    pr = f"{TEKTON_PIPELINE}-{k8s_suffix(5, TEKTON_PIPELINE, str(index))}"
    node = NODE_POOL[index % 2][0]
    annotations = {"version": "0.9", "tekton.dev/displayName": "git clone"}

    def pod(
        task: str, pipeline_task: str, steps: list[Container], created: datetime, ip: str
    ) -> Pod:
        return tekton_pod(
            pr,
            task,
            pipeline_task,
            steps,
            created,
            node,
            ip,
            dict(annotations),
            namespace=TEKTON_NS,
            pipeline=TEKTON_PIPELINE,
        )

    clone = Container("step-clone", GIT_INIT, GIT_INIT_ID, started=at(t0, 6), finished=at(t0, 11))
    fetch = pod("git-clone", "fetch-source", [clone], at(t0, 1), f"10.54.{index}.11")
    cap.log(
        at(t0, 8),
        fetch,
        "step-clone",
        '{"level":"info","ts":1767000000.1,"caller":"git/git.go:176","msg":"Successfully cloned https://github.com/acme/shop @ 4e1f0c2 (grafted, HEAD) in path /workspace/source"}',
    )
    pods = [fetch]
    built_end = at(t0, 11)
    for pipeline_task, cases, offset in (
        ("unit-tests", UNIT_PRICING + UNIT_ORDERS, 13.0),
        ("integration-tests", INTEGRATION, 0.0),
    ):
        if pipeline_task == "integration-tests":
            if skip_integration:
                break
            offset = (built_end - t0).total_seconds() + 2.0
        step = Container("step-pytest", PYTHON_IMAGE, PYTHON_IMAGE_ID, started=at(t0, offset + 4))
        task_pod = pod(
            "pytest", pipeline_task, [step], at(t0, offset), f"10.54.{index}.{len(pods) + 11}"
        )
        results = outcomes(f"tekton-{pipeline_task}", index, cases)
        end = pytest_session(cap, task_pod, "step-pytest", at(step.started, 1.5), results)  # type: ignore[arg-type]
        step.finished = at(end, 0.3)
        built_end = step.finished
        pods.append(task_pod)
    for task_pod in pods:
        emit_pod(cap, task_pod)
    run_id = f"tekton:{TEKTON_NS}/{pr}"
    return Built(run_id, "succeeded", pr, pods[-1].name, "step-pytest")


def tekton_missing_stage() -> Scenario:
    start = datetime(2026, 2, 10, 1, 0, tzinfo=UTC)
    cap = Capture("tekton_missing_stage")
    runs = [
        tekton_run(cap, i, at(start, 3600 * (i - 1)), skip_integration=i == 6) for i in range(1, 7)
    ]
    finish(cap, at(start, 3600 * 5 + 900))
    config = base_config()
    config["structure"] = {
        "rules": [
            {
                "name": "shop-verify",
                "match": {"pipeline": TEKTON_PIPELINE},
                "severity": "error",
                "required_stages": ["fetch-source", "unit-tests", "integration-tests"],
            }
        ]
    }
    bad = runs[5]
    anomalies = [
        found(bad, "missing_stage", "integration-tests"),
        found(bad, "missing_tests", TEKTON_PIPELINE),
    ]
    return Scenario(
        "tekton_missing_stage",
        "Six hourly PipelineRuns of Tekton pipeline shop-verify in namespace shop: TaskRun pods "
        "fetch-source (git-clone), unit-tests and integration-tests (pytest -v, 10 and 5 "
        "tests), the run ending when its pods have ended. A structure rule requires the three "
        "stages. In run 6 the integration-tests task is skipped (a when-expression turned "
        "false): no pod, no stage. Expected for run 6: missing_stage [integration-tests] and "
        "missing_tests [shop-verify] (its 5 tests ran in every earlier run); the run itself "
        "succeeds and is shorter, which is no regression.",
        cap,
        config,
        runs,
        anomalies,
    )


# --- issue 12: the clean soak -----------------------------------------------------------------


SOAK_REPORT_TESTS = [
    ("github.com/acme/reports/internal/render", "TestRenderMonthlyStatement", 1.8),
    ("github.com/acme/reports/internal/render", "TestRenderEmptyMonth", 0.02),
    ("github.com/acme/reports/internal/render", "TestCurrencyFormatting", 0.004),
    ("github.com/acme/reports/internal/export", "TestExportCSV", 0.6),
    ("github.com/acme/reports/internal/export", "TestExportPDF", 3.9),
]


def soak(runs: int = 50) -> tuple[Capture, Obj]:
    """`runs` clean runs of each of three pipelines with natural jitter, interleaved: CronJob
    ledger-nightly in namespace payments (go test + postgres), CronJob orders-e2e in ci (the
    service and its pytest e2e suite) and CronJob reports-nightly in reports (go test + postgres,
    other tests). Durations +-20 %, log volume varying from run to run, occasional known
    warnings, known errors a retry fixes (the service's 503s, postgres serialization failures),
    present from the first runs as known errors are. Not written to disk: the soak test builds
    it (tests/unit/processors/anomalies/test_soak.py); it must give no anomaly at all."""
    first = datetime(2026, 4, 6, 0, 0, tzinfo=UTC)
    cap = Capture("soak")
    ledger = GoCron("payments", "ledger-nightly", node="gke-ci-pool-3-9c2e1f7a-b4kd")
    reports = GoCron("reports", "reports-nightly", node="gke-ci-pool-3-9c2e1f7a-h7qm")
    reports.tests = SOAK_REPORT_TESTS
    pipe = Pipeline("soak", E2E_CRON, "orders-api", with_app=True)
    for index in range(1, runs + 1):
        hour = at(first, 3600 * (index - 1))
        known = index <= 2 or noise("soak", index, "known") > 0.2
        pg: list[tuple[float, str]] = []
        chatter: list[tuple[float, str]] = []
        if known:
            pg = [
                (3.1, "[88] ERROR:  could not serialize access due to concurrent update"),
                (3.1, "[88] STATEMENT:  UPDATE accounts SET balance = balance + $1 WHERE id = $2"),
            ]
            chatter = [
                (
                    3.2,
                    "    store_test.go:88: serialization failure, retrying transfer (attempt 1/3)",
                )
            ]
        if noise("soak", index, "warn") > 0.5:
            pg.append((1.0, "[71] WARNING:  there is no transaction in progress"))
        ledger.build(cap, GoPlan(hour, index, spread=0.2, pg_extra=pg, test_extra=chatter))
        reports.build(cap, GoPlan(at(hour, 2400), index, spread=0.2))
        scheduled = at(hour, 1200)
        steps = 12 + int(6 * (1 + noise("soak", index, "volume")))
        app = e2e_app_lines("soak", index, at(scheduled, 0.04), [], steps=steps)
        results = outcomes("soak", index, E2E_SUITE, spread=0.2)
        build_run(cap, pipe, RunPlan(index, scheduled, results, app_lines=app))
    finish(cap, at(first, 3600 * (runs - 1) + 3000))
    return cap, base_config()


def replay_capture(cap: Capture, config: Obj) -> Replay:
    """`replay_records` for a capture built in memory (the soak)."""
    from runtime.config import Settings
    from schemas.capture import parse_record

    settings = Settings.model_validate(config)
    records = [parse_record(json.dumps(record)) for record in cap.ordered()]
    return replay_records(cap.name, settings, records, flush=False)


SCENARIOS = [
    clean_history,
    oom_mid_test,
    flaky_test,
    duration_regression,
    image_pull_failure,
    missing_tests,
    new_error_signature,
    error_spike,
    side_by_side,
    tekton_missing_stage,
]


# --------------------------------------------------------------------------------------------
# --check: replay through the pure pipeline code


@dataclass
class Replay:
    states: dict[str, Any]
    anomalies: dict[tuple[str, str, str], Any]  # (run_id, type, subject) -> Anomaly
    blind: list[tuple[str, str, str]]  # test anomalies if attribution were ignored
    log_lines: int


def namespace_of(record: Any) -> str | None:
    """The namespace a capture record belongs to (None: a webhook)."""
    from schemas.capture import K8sRecord, LogRecord

    if isinstance(record, LogRecord):
        return record.namespace
    if isinstance(record, K8sRecord):
        return str(record.object.get("metadata", {}).get("namespace") or "")
    return None


def simulate(name: str, flush: bool, alone: str | None = None) -> Replay:
    """What the worker would find in capture `name` (see the module docstring); with `alone`,
    in that namespace's records only (and those of namespaces that hold no run)."""
    written = read_written(HERE, name)
    settings, records = written.settings, written.records
    if alone is not None:
        records = [r for r in records if namespace_of(r) in (alone, "monitoring")]
    return replay_records(name, settings, records, flush)


def replay_records(name: str, settings: Any, records: list[Any], flush: bool) -> Replay:
    """The worker's findings for capture records (see the module docstring)."""
    from processors.anomalies.history import miner_key
    from processors.anomalies.infra import attribute, detect_infra, infra_affected_tests
    from processors.anomalies.logs import LogAnalyzer
    from processors.anomalies.silence import detect_log_silence
    from processors.anomalies.tests import (
        PipelineHistory,
        detect_tests,
        history_key,
        history_scope,
        record,
        summarise_run,
    )
    from processors.logs.levels import worth_analysing
    from processors.runs.correlation import route
    from processors.runs.k8s_signals import signals_from_k8s
    from processors.runs.log_signals import LogSignals
    from processors.runs.state import Policy, advance, apply_signal, has_test_batch
    from processors.runs.structure import evaluate
    from producers.k8s.objects import K8sNormalizer
    from schemas.capture import K8sRecord, LogRecord
    from schemas.messages import RunSignal

    cfg = settings.anomalies
    stamps = [r.ts for r in records]
    policy = Policy(
        inactivity_timeout_s=settings.tracking.inactivity_timeout_s,
        pod_quiet_period_s=settings.tracking.pod_quiet_period_s,
    )
    lateness = timedelta(seconds=settings.tracking.allowed_lateness_s)
    normalizer = K8sNormalizer(settings.k8s)
    log_signals = LogSignals(settings.tracking)
    analyzer = LogAnalyzer(cfg.logs)
    states: dict[str, Any] = {}
    results: dict[str, list[Any]] = {}
    infra: dict[str, Any] = {}
    log_states: dict[str, Any] = {}
    app: dict[tuple[str, str, str], Any] = {}
    newest: datetime | None = None
    log_lines = 0

    touched: set[str] = set()

    def fold(signal: RunSignal) -> None:
        nonlocal newest
        run_id = signal.run_id
        expect(run_id is not None, f"{name}: signal without run id {signal.correlation_key}")
        assert run_id is not None
        touched.add(run_id)
        newest = max(newest or signal.event_time, signal.event_time)
        before = states.get(run_id)
        new_batch = signal.kind.value == "tests" and not has_test_batch(before, signal.signal_id)
        after = apply_signal(before, signal, policy)
        if after is not None:
            states[run_id] = after
        if signal.kind.value == "activity" and signal.log_pod is not None:
            # The worker's log analysis counts the windows in which pods logged at all.
            log_state = log_states.setdefault(run_id, analyzer.new_state(run_id))
            analyzer.note_activity(log_state, signal.log_pod, signal.event_time)
        if new_batch:
            results.setdefault(run_id, []).extend(
                r.model_copy(update={"run_id": run_id}) for r in signal.test_results
            )

    def settle(mark: datetime | None, final: bool = False, only: set[str] | None = None) -> None:
        for run_id, state in list(states.items()):
            if only is not None and run_id not in only:
                continue
            if mark is not None:
                advanced = advance(state, mark, policy)
                if advanced is not None:
                    states[run_id] = state = advanced
            for anomaly in detect_infra(state, mark, cfg.infra):
                infra.setdefault(anomaly.anomaly_id, anomaly)
            log_state = log_states.get(run_id)
            if log_state is not None and mark is not None and not final:
                for anomaly in analyzer.detect(log_state, None, run_id, mark, cfg.logs):
                    app[(run_id, anomaly.type, anomaly.subject)] = anomaly
            if cfg.logs.silence_s is not None:
                for anomaly in detect_log_silence(
                    state, mark, cfg.logs.silence_s, settings.tracking.activity_bucket_s
                ):
                    app[(run_id, anomaly.type, anomaly.subject)] = anomaly

    previous: datetime | None = None
    quiet = timedelta(seconds=settings.tracking.settle_s)
    for rec in records:
        if previous is not None and rec.ts - previous > quiet:
            # As `sentinel analyze` does: nothing happened until this record, so event time
            # reached just before it (a hung pod's silence is judged while it hangs).
            settle(rec.ts - timedelta(microseconds=1))
        previous = rec.ts
        if isinstance(rec, K8sRecord):
            event = normalizer.normalize(rec.event, rec.object, rec.ts)
            for signal in signals_from_k8s(event):
                fold(signal)
        elif isinstance(rec, LogRecord):
            log_lines += 1
            line = replayed_log_line(rec)
            for signal in log_signals.feed(line):
                fold(signal)
            run_id, _ = route(rec.correlation_key or "")
            if run_id is not None and worth_analysing(line.line):
                known = states.get(run_id)
                pipeline = known.pipeline if known else None
                log_state = log_states.setdefault(run_id, analyzer.new_state(run_id, pipeline))
                log_state.pipeline = log_state.pipeline or pipeline
                analyzer.feed(log_state, line, analyzer.miner_for(miner_key(known)))
        else:
            raise CheckFailed(f"{name}: unexpected record {rec.type}")
        mark = newest - lateness if newest is not None else None
        settle(mark, only=touched)  # the runs this record changed; the rest at quiet gaps
        touched.clear()
    if flush:
        for signal in log_signals.flush():
            fold(signal)
    final_mark = max(stamps[-1], newest - lateness if newest else stamps[-1])
    settle(final_mark, final=True)

    found: dict[tuple[str, str, str], Any] = {}
    for anomaly in infra.values():
        found[(anomaly.run_id, anomaly.type, anomaly.subject)] = anomaly
    found.update(app)
    for state in states.values():  # the end-of-run structure rules, with all input known
        if settings.structure.rules and state.status.terminal:
            for anomaly in evaluate(
                state,
                settings.structure.rules,
                final_mark,
                settle_s=settings.tracking.settle_s,
                final=True,
            ):
                found[(anomaly.run_id, anomaly.type, anomaly.subject)] = anomaly

    # end of each run, in finished order: attribution, test history, log baseline
    ended = sorted(
        (s for s in states.values() if s.status.terminal),
        key=lambda s: (s.finished_at or s.updated_at, s.run_id),
    )
    histories: dict[str, PipelineHistory] = {}
    blind_histories: dict[str, PipelineHistory] = {}
    baselines: dict[str, Any] = {}
    blind: list[tuple[str, str, str]] = []
    for state in ended:
        own = [a for a in infra.values() if a.run_id == state.run_id]
        attribution = attribute(state, own)
        key = history_key(state.pipeline, state.branch, history_scope(state))
        for caused, store, sink in (
            (attribution is not None, histories, None),
            (False, blind_histories, blind),
        ):
            hist = store.get(key) or PipelineHistory(pipeline=state.pipeline, branch=state.branch)
            run_results = results.get(state.run_id, [])
            # The infra-aware path marks tests that failed during a fault (as the worker does);
            # the blind one, what a tool without cluster events would conclude, does not.
            aware = sink is None and attribution is None
            infra_tests = infra_affected_tests(run_results, own) if aware else {}
            current = summarise_run(
                state, run_results, infra_caused=caused, infra_tests=infra_tests
            )
            for anomaly in detect_tests(hist, current, cfg.tests):
                if sink is None:
                    found[(anomaly.run_id, anomaly.type, anomaly.subject)] = anomaly
                else:
                    sink.append((anomaly.run_id, anomaly.type, anomaly.subject))
            store[key] = record(hist, current, cfg.tests)
        log_state = log_states.get(state.run_id)
        if log_state is not None:
            baseline = baselines.get(key)
            for anomaly in analyzer.detect(
                log_state,
                baseline,
                state.run_id,
                final_mark,
                cfg.logs,
                final=True,
            ):
                found[(anomaly.run_id, anomaly.type, anomaly.subject)] = anomaly
            baselines[key] = analyzer.update_baseline(
                baseline, log_state, window_stats=attribution is None
            )
    return Replay(states, found, sorted(blind), log_lines)


def check(scenario: Scenario) -> list[str]:
    name = scenario.name
    notes: list[str] = []
    written = read_written(HERE, name)
    settings, expected = written.settings, written.expected
    rules = settings.structure.rules
    expect(not rules or name == "tekton_missing_stage", f"{name}: structure rules present")
    want_runs = {r["run_id"]: r["status"] for r in expected["runs"]}
    want = sorted((a["run_id"], a["type"], a["subject"]) for a in expected["anomalies"])
    for flush in (False, True):
        replay = simulate(name, flush)
        got_runs = {rid: s.status.value for rid, s in replay.states.items()}
        expect(got_runs == want_runs, f"{name}: runs {got_runs} != {want_runs}")
        got = sorted(replay.anomalies)
        expect(got == want, f"{name} (flush={flush}): anomalies\n  got  {got}\n  want {want}")
        pipelines = {s.pipeline for s in replay.states.values()}
        expect(len(pipelines) == 1 and None not in pipelines, f"{name}: pipelines {pipelines}")
        if not flush:
            tests = {
                rid.rsplit("-", 1)[-1]: (s.tests.total, s.tests.passed, s.tests.failed)
                for rid, s in sorted(replay.states.items())
            }
            caused = {
                rid: list(s.attribution.types) if getattr(s, "attribution", None) else None
                for rid, s in replay.states.items()
            }
            notes.append(f"runs (total, passed, failed) per job suffix: {tests}")
            notes.append(f"log lines {replay.log_lines}; pipeline {pipelines.pop()}")
            extra = sorted(set(replay.blind) - {(r, t, s) for r, t, s in got if t in TEST_TYPES})
            if extra:
                notes.append(f"without infra attribution the test detectors would add: {extra}")
            del caused
    teams = sorted({r["run_id"].split("/")[0].removeprefix("job:") for r in expected["runs"]})
    if len(teams) > 1:
        # Side by side = each alone: every namespace replayed by itself gives exactly its part.
        for team in teams:
            alone = simulate(name, False, alone=team)
            own = sorted(a for a in want if a[0].startswith(f"job:{team}/"))
            got_alone = sorted(alone.anomalies)
            expect(got_alone == own, f"{name}: {team} alone\n  got  {got_alone}\n  want {own}")
        notes.append(f"each of {teams} alone gives exactly its part of the expected anomalies")
    notes.append(f"anomalies {want}")
    for key in want:
        anomaly = replay.anomalies[key]
        notes.append(f"  {key[1]}: {anomaly.summary}")
    return notes


TEST_TYPES = {
    "flaky_test",
    "duration_regression",
    "run_duration_regression",
    "failure_rate_spike",
    "missing_tests",
}


def main(argv: list[str] | None = None) -> int:
    return run_generator(argv, __file__, __doc__, SCENARIOS, check)


if __name__ == "__main__":
    sys.exit(main())
