"""A CronJob that runs Go tests against a postgres sidecar, as build_anomaly_scenarios uses it.

Not run by itself: `build_anomaly_scenarios.py` imports it (its folder is on ``sys.path``).

Each run is a Job ``<cron>-<scheduled minutes>`` created by CronJob ``<namespace>/<cron>``; its
pod has two containers sharing a process namespace, ``postgres`` (postgres:16, the stock
entrypoint's log) and ``go-test`` (``go test -v ./...`` on two packages, then ``pkill
postgres``). The pod template carries no ``sentinel.io/pipeline`` label: as in most clusters,
the pod names only its Job (owner and ``job-name`` labels) and the Job names the CronJob, so the
run's pipeline must come from the Job (issue 12). Durations jitter by a deterministic amount;
a plan can slow, fail or drop tests, add log lines, or break the run before its tests.
"""

# ruff: noqa: E501  (log literals)
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from capture_builder import (
    Capture,
    Container,
    Job,
    Obj,
    Pod,
    at,
    core_event,
    cronjob_job_name,
    hexid,
    involved,
    job_created,
    job_finished,
    job_pod_labels,
    job_scenario_objects,
    k8s_suffix,
    k8s_time,
    owner_ref,
    pod_events,
    pod_ref,
    pod_scheduled,
    uid,
)

GO_IMAGE = "ghcr.io/acme/ledger-tests:2.3.0"
GO_IMAGE_ID = "ghcr.io/acme/ledger-tests@sha256:3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060f5e"
PG_IMAGE = "postgres:16.4"
PG_IMAGE_ID = "docker.io/library/postgres@sha256:d0f363f8366fbc3f52d172c6e76bc27151c3d643b870e1062b4e8bfe65baf609"
BAD_GO_IMAGE = "ghcr.io/acme/ledger-tests:2.4.0-rc.1"
PULL_RETRIES = [3.1, 17.6, 43.2, 84.9, 167.5, 333.0, 498.4]  # kubelet back-off 10 s .. 300 s
RESOURCES = {"limits": {"memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "512Mi"}}

STORE_PKG = "github.com/acme/ledger/internal/store"
API_PKG = "github.com/acme/ledger/internal/api"

# (package, test, typical seconds)
GO_TESTS: list[tuple[str, str, float]] = [
    (STORE_PKG, "TestMigrationsApply", 0.42),
    (STORE_PKG, "TestCreateAccount", 0.031),
    (STORE_PKG, "TestTransferBetweenAccounts", 0.058),
    (STORE_PKG, "TestTransferInsufficientFunds", 0.027),
    (STORE_PKG, "TestConcurrentTransfers", 2.4),
    (STORE_PKG, "TestLedgerBalanceInvariant", 1.15),
    (API_PKG, "TestHealthz", 0.002),
    (API_PKG, "TestCreateAccountHandler", 0.044),
    (API_PKG, "TestTransferHandler", 0.061),
    (API_PKG, "TestTransferHandlerValidation", 0.004),
    (API_PKG, "TestListTransactionsPagination", 0.37),
]


def _pull_waits(t: datetime) -> list[tuple[datetime, str, str]]:
    error = f'rpc error: code = NotFound desc = failed to pull and unpack image "{BAD_GO_IMAGE}": not found'
    waits = []
    for offset in PULL_RETRIES:
        waits.append((at(t, offset), "ErrImagePull", error))
        waits.append(
            (at(t, offset + 1.2), "ImagePullBackOff", f'Back-off pulling image "{BAD_GO_IMAGE}"')
        )
    return waits


def jitter(*parts: object) -> float:
    """A deterministic value in [-1, 1]."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 0xFFFFFFFF * 2 - 1


@dataclass
class GoPlan:
    """One run: what differs from a clean run."""

    scheduled: datetime
    index: int
    spread: float = 0.05  # +-share of jitter on every duration
    slow: dict[str, float] = field(default_factory=dict)  # test -> seconds
    failing: dict[str, list[str]] = field(default_factory=dict)  # test -> output lines
    dropped: set[str] = field(default_factory=set)  # tests not run (removed from the build)
    pg_extra: list[tuple[float, str]] = field(default_factory=list)  # offset from tests start
    test_extra: list[tuple[float, str]] = field(default_factory=list)
    # None | "image_pull" (test image never pulls, Job deadline) | "oom_build" (OOMKilled while
    # compiling, before any test) | "evicted" (kubelet evicts the pod after `cut_after` tests)
    # | "node_not_ready" (the node is NotReady after `cut_after` tests; two tests time out) |
    # "crash_loop" (the test binary panics in TestMain at every start) | "hang" (a test hangs
    # until go test's -timeout panics)
    fault: str | None = None
    cut_after: int = 5
    hang_s: float = 1200.0


@dataclass
class GoRun:
    run_id: str
    status: str
    job: str
    pod: str
    namespace: str
    node: str


@dataclass
class EvictablePod(Pod):
    """A pod the kubelet evicts at `evicted_at` (node pressure): Failed, reason Evicted."""

    evicted_at: datetime | None = None
    eviction_message: str = ""

    def _status(self, now: datetime) -> Obj:
        status = super()._status(now)
        if self.evicted_at is not None and now >= self.evicted_at:
            status["phase"] = "Failed"
            status["reason"] = "Evicted"
            status["message"] = self.eviction_message
        return status


@dataclass
class PullingContainer(Container):
    """A container whose image never pulls: ErrImagePull / ImagePullBackOff over time."""

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
class LoopingContainer(Container):
    """A container that exits 2 at every start (restartPolicy OnFailure): each (start, end)
    instance, then CrashLoopBackOff until the next."""

    instances: list[tuple[datetime, datetime]] = field(default_factory=list)
    killed_at: datetime | None = None

    def status(self, now: datetime, pod_uid: str, waiting_reason: str) -> Obj:
        base: Obj = {"name": self.name, "image": self.image, "imageID": self.image_id}
        started = [k for k, (a, _) in enumerate(self.instances) if a <= now]
        if not started:
            return {
                **base,
                "imageID": "",
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"waiting": {"reason": waiting_reason}},
            }
        i = started[-1]  # the newest instance; restartCount counts the ones before it
        a, b = self.instances[i]
        last: Obj = {}
        if now < b:
            state: Obj = {"running": {"startedAt": k8s_time(a)}}
            if i > 0:
                last = {"terminated": self._terminated(*self.instances[i - 1], pod_uid, i - 1)}
        elif self.killed_at is not None and now >= self.killed_at:
            state = {"terminated": self._terminated(a, b, pod_uid, i)}
            if i > 0:
                last = {"terminated": self._terminated(*self.instances[i - 1], pod_uid, i - 1)}
        else:
            back_off = 10 * 2**i
            state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {back_off}s restarting failed container={self.name} pod={pod_uid}",
                }
            }
            last = {"terminated": self._terminated(a, b, pod_uid, i)}
        return {
            **base,
            "containerID": f"containerd://{hexid(64, pod_uid, self.name, str(i))}",
            "lastState": last,
            "ready": "running" in state,
            "restartCount": i,
            "started": "running" in state,
            "state": state,
        }

    def _terminated(self, a: datetime, b: datetime, pod_uid: str, n: int) -> Obj:
        return {
            "containerID": f"containerd://{hexid(64, pod_uid, self.name, str(n))}",
            "exitCode": 2,
            "finishedAt": k8s_time(b),
            "reason": "Error",
            "startedAt": k8s_time(a),
        }


@dataclass
class GoCron:
    namespace: str
    cron: str
    node: str = "gke-ci-pool-2-4b1d9e0a-q7wz"
    host_ip: str = "10.128.0.31"
    tests: list[tuple[str, str, float]] = field(default_factory=lambda: list(GO_TESTS))
    clock: str | None = None  # jitter seed (default: namespace); copies that share it run in step

    @property
    def uid(self) -> str:
        return uid("cronjob", self.namespace, self.cron)

    def run_id(self, scheduled: datetime) -> str:
        return f"job:{self.namespace}/{cronjob_job_name(self.cron, scheduled)}"

    def _salt(self, plan: GoPlan) -> tuple[str, str, int]:
        return (self.clock or self.namespace, self.cron, plan.index)

    def build(self, cap: Capture, plan: GoPlan) -> GoRun:
        t = at(plan.scheduled, 0.05)
        job_name = cronjob_job_name(self.cron, plan.scheduled)
        salt = self._salt(plan)
        pg_start = at(t, 3.1 + 0.4 * jitter(*salt, "pg"))
        tests_start = at(pg_start, 0.6)
        postgres = Container(
            "postgres",
            PG_IMAGE,
            PG_IMAGE_ID,
            env=[
                {"name": "POSTGRES_PASSWORD", "value": "ledger"},
                {"name": "POSTGRES_DB", "value": "ledger_test"},
            ],
            resources={"requests": {"cpu": "250m", "memory": "256Mi"}},
            started=pg_start,
            extra={"ports": [{"containerPort": 5432, "name": "postgres", "protocol": "TCP"}]},
        )
        command = [
            "sh",
            "-c",
            "go test -v -count=1 -timeout 20m ./... ; status=$?; pkill -INT postgres; exit $status",
        ]
        env = [
            {
                "name": "DATABASE_URL",
                "value": "postgres://postgres:ledger@localhost:5432/ledger_test?sslmode=disable",
            }
        ]
        tests: Container
        if plan.fault == "image_pull":
            tests = PullingContainer(
                "go-test",
                BAD_GO_IMAGE,
                "",
                command=command,
                env=env,
                resources=RESOURCES,
                extra={"workingDir": "/src"},
                waits=_pull_waits(t),
            )
        elif plan.fault == "crash_loop":
            tests = LoopingContainer(
                "go-test",
                GO_IMAGE,
                GO_IMAGE_ID,
                command=command,
                env=env,
                resources=RESOURCES,
                started=tests_start,
                extra={"workingDir": "/src"},
            )
        else:
            tests = Container(
                "go-test",
                GO_IMAGE,
                GO_IMAGE_ID,
                command=command,
                env=env,
                resources=RESOURCES,
                started=tests_start,
                extra={"workingDir": "/src"},
            )
        pod = EvictablePod(
            namespace=self.namespace,
            name=f"{job_name}-{k8s_suffix(5, self.namespace, job_name)}",
            labels=job_pod_labels(
                uid("job", self.namespace, job_name),
                job_name,
                {"app.kubernetes.io/name": "ledger-tests"},
            ),
            node=self.node,
            pod_ip=f"10.60.{plan.index % 250}.{10 + len(self.namespace)}",
            host_ip=self.host_ip,
            created=at(t, 0.06),
            scheduled=at(t, 0.8),
            containers=[postgres, tests],
            owner=owner_ref("Job", "batch/v1", job_name, uid("job", self.namespace, job_name)),
            restart_policy="OnFailure" if plan.fault == "crash_loop" else "Never",
            spec_extra={"shareProcessNamespace": True},
            expected_key=f"job:{self.namespace}/{job_name}",
        )
        job = Job.for_pod(
            pod,
            t,
            labels={"app.kubernetes.io/name": "ledger-tests"},
            owner=owner_ref("CronJob", "batch/v1", self.cron, self.uid),
            backoff_limit=3 if plan.fault == "crash_loop" else 0,
            active_deadline_s=600 if plan.fault == "image_pull" else 3600,
        )
        job.annotations = {
            "batch.kubernetes.io/cronjob-scheduled-timestamp": k8s_time(plan.scheduled)
        }
        cap.k8s(
            at(t, 0.1),
            "ADDED",
            core_event(
                self.namespace,
                involved("CronJob", "batch/v1", self.namespace, self.cron, self.uid),
                "SuccessfulCreate",
                f"Created job {job_name}",
                t,
                "cronjob-controller",
            ),
        )
        run = GoRun(
            self.run_id(plan.scheduled), "failed", job_name, pod.name, self.namespace, self.node
        )
        ready = self._postgres_up(cap, pod, pg_start)
        if plan.fault == "image_pull":
            self._image_pull(cap, job, pod, postgres)
            return run
        if plan.fault == "crash_loop":
            assert isinstance(tests, LoopingContainer)
            self._crash_loop(cap, job, pod, postgres, tests, at(ready, 0.5))
            return run
        if plan.fault == "oom_build":
            self._oom_build(cap, job, pod, postgres, tests, at(ready, 0.5))
            return run
        end, ok = self._go_test(cap, pod, plan, at(ready, 0.5))
        if plan.fault == "evicted":
            self._evicted(cap, job, pod, postgres, tests, end)
            return run
        if plan.fault == "node_not_ready":
            ok = False
        shutdown = at(end, 0.05)
        self._postgres_down(cap, pod, shutdown)
        tests.finished = at(end, 0.08)
        tests.exit_code = 0 if ok else 1
        postgres.finished = at(shutdown, 0.35)
        job.ready = tests_start
        job.finished = at(postgres.finished, 0.9)
        job.succeeded = ok
        job_scenario_objects(cap, job, pod, pulled=True)
        run.status = "succeeded" if ok else "failed"
        return run

    # -- faults ------------------------------------------------------------------------------------

    def _image_pull(self, cap: Capture, job: Job, pod: Pod, postgres: Container) -> None:
        """The test image does not exist: the pod waits until the Job's deadline (600 s)."""
        t = job.created
        deadline = at(t, 600)
        job_created(cap, job, pod)
        pod.deletion_requested = deadline
        postgres.finished = at(deadline, 0.6)
        postgres.exit_code, postgres.reason = 0, "Completed"
        moments = [pod.scheduled, at(pod.scheduled, 2), postgres.started]
        moments += [at(t, offset) for offset in PULL_RETRIES]
        moments += [at(t, offset + 1.2) for offset in PULL_RETRIES]
        moments.append(deadline)
        pod.emit(cap, sorted(m for m in moments if m is not None))
        pod_scheduled(cap, pod)
        ref = pod_ref(pod)
        path = "spec.containers{go-test}"
        for offset in PULL_RETRIES:
            for when, reason, text, kind in (
                (
                    at(t, offset),
                    "Failed",
                    f'Failed to pull image "{BAD_GO_IMAGE}": rpc error: code = NotFound desc = failed to pull and unpack image "{BAD_GO_IMAGE}": not found',
                    "Warning",
                ),
                (
                    at(t, offset + 1.2),
                    "BackOff",
                    f'Back-off pulling image "{BAD_GO_IMAGE}"',
                    "Normal",
                ),
            ):
                cap.k8s(
                    at(when, 0.25),
                    "ADDED",
                    core_event(
                        self.namespace,
                        ref,
                        reason,
                        text,
                        when,
                        "kubelet",
                        pod.node,
                        kind=kind,
                        field_path=path,
                    ),
                )
        job.finished, job.succeeded = deadline, False
        job.failure_reason, job.failure_message = (
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )
        job_finished(cap, job)
        self._postgres_down(cap, pod, at(deadline, 0.2))
        pod.emit_deleted(cap, at(deadline, 1.6))

    def _oom_build(
        self,
        cap: Capture,
        job: Job,
        pod: Pod,
        postgres: Container,
        tests: Container,
        start: datetime,
    ) -> None:
        """The Go compiler runs out of memory building the test binary: no test ever starts."""
        lines = [
            (0.0, "go: downloading github.com/jackc/pgx/v5 v5.7.1"),
            (0.4, "go: downloading github.com/stretchr/testify v1.9.0"),
            (1.1, "go: downloading golang.org/x/sync v0.8.0"),
        ]
        cap.timed(start, pod, "go-test", lines)
        killed = at(start, 19.7)
        tests.finished, tests.exit_code, tests.reason = killed, 137, "OOMKilled"
        postgres.finished, postgres.exit_code, postgres.reason = at(killed, 0.4), 0, "Completed"
        self._postgres_down(cap, pod, at(killed, 0.05))
        job.ready = tests.started
        job.finished, job.succeeded = at(killed, 1.2), False
        job_scenario_objects(cap, job, pod, pulled=True)

    def _evicted(
        self, cap: Capture, job: Job, pod: Pod, postgres: Container, tests: Container, end: datetime
    ) -> None:
        """The kubelet evicts the pod (node ephemeral storage) right after the last test line."""
        assert isinstance(pod, EvictablePod)
        when = at(end, 0.3)
        pod.evicted_at = when
        pod.eviction_message = (
            "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, "
            "available: 9812Ki. Container go-test was using 14Gi, request is 0, has larger "
            "consumption of ephemeral-storage. "
        )
        for c in (tests, postgres):
            c.finished, c.exit_code, c.reason = at(when, 0.5), 137, "Error"
        job.ready = tests.started
        job.finished, job.succeeded = at(when, 1.5), False
        job_scenario_objects(cap, job, pod, pulled=True)
        ref = pod_ref(pod)
        cap.k8s(
            at(when, 0.2),
            "ADDED",
            core_event(
                self.namespace,
                ref,
                "Evicted",
                pod.eviction_message,
                when,
                "kubelet",
                pod.node,
                kind="Warning",
            ),
        )
        for name in ("postgres", "go-test"):
            cap.k8s(
                at(when, 0.3),
                "ADDED",
                core_event(
                    self.namespace,
                    ref,
                    "Killing",
                    f"Stopping container {name}",
                    when,
                    "kubelet",
                    pod.node,
                    field_path=f"spec.containers{{{name}}}",
                ),
            )

    def _crash_loop(
        self,
        cap: Capture,
        job: Job,
        pod: Pod,
        postgres: Container,
        tests: LoopingContainer,
        start: datetime,
    ) -> None:
        """TestMain panics at every start; the kubelet backs off 10, 20, 40 s; the Job
        controller fails the Job when the restarts exceed its backoffLimit (3)."""
        moment = start
        for attempt in range(4):
            began = moment
            lines = [
                (0.9, "panic: ledger: LEDGER_SIGNING_KEY is not set"),
                (0.9, ""),
                (0.9, "goroutine 1 [running]:"),
                (0.9, "github.com/acme/ledger/internal/store.TestMain(0xc0001b2000)"),
                (0.9, "\t/src/internal/store/main_test.go:21 +0x1d4"),
                (0.9, "main.main()"),
                (0.9, "\t_testmain.go:79 +0x1c6"),
                (0.92, "FAIL\tgithub.com/acme/ledger/internal/store\t0.013s"),
                (0.95, "FAIL"),
            ]
            cap.timed(began, pod, "go-test", lines)
            ended = at(began, 1.0)
            tests.instances.append((began, ended))
            moment = at(ended, 10 * 2**attempt + 0.4)
        last_end = tests.instances[-1][1]
        killed = at(last_end, 0.5)
        tests.killed_at = killed
        tests.finished = last_end
        postgres.finished, postgres.exit_code, postgres.reason = at(killed, 0.4), 0, "Completed"
        self._postgres_down(cap, pod, at(killed, 0.05))
        job.ready = tests.started
        job.finished, job.succeeded = at(killed, 1.0), False
        job_created(cap, job, pod)
        moments = {pod.scheduled, at(pod.scheduled, 2), postgres.started, postgres.finished}
        for a, b in tests.instances:
            moments |= {a, b, at(b, 0.2)}
        pod.emit(cap, sorted(m for m in moments if m is not None))
        pod_events(cap, pod, {c.name: True for c in pod.containers})
        ref = pod_ref(pod)
        for _, b in tests.instances[:-1]:
            cap.k8s(
                at(b, 0.45),
                "ADDED",
                core_event(
                    self.namespace,
                    ref,
                    "BackOff",
                    f"Back-off restarting failed container go-test in pod {pod.name}_{self.namespace}({pod.uid})",
                    at(b, 0.2),
                    "kubelet",
                    pod.node,
                    kind="Warning",
                    field_path="spec.containers{go-test}",
                ),
            )
        job.ready = tests.started
        job_finished(cap, job)

    def _not_ready_events(self, cap: Capture, pod: Pod, when: datetime) -> None:
        cap.k8s(
            at(when, 0.4),
            "ADDED",
            core_event(
                self.namespace,
                pod_ref(pod),
                "NodeNotReady",
                "Node is not ready",
                when,
                "node-controller",
                kind="Warning",
            ),
        )

    # -- logs ------------------------------------------------------------------------------------

    @staticmethod
    def _pg_time(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"

    def _pg_lines(
        self, cap: Capture, pod: Pod, base: datetime, lines: list[tuple[float, str]]
    ) -> None:
        cap.timed(
            base,
            pod,
            "postgres",
            [(o, f"{self._pg_time(at(base, o))} {text}") for o, text in lines],
        )

    def _pid(self, when: datetime) -> int:
        return 60 + int(abs(jitter(self.clock or self.namespace, when.isoformat())) * 30)

    def _postgres_up(self, cap: Capture, pod: Pod, start: datetime) -> datetime:
        """The stock postgres:16 entrypoint: initdb, a temporary server, then the real one."""
        init = [
            (0.00, 'The files belonging to this database system will be owned by user "postgres".'),
            (0.00, "This user must also own the server process."),
            (0.01, ""),
            (0.01, 'The database cluster will be initialized with locale "en_US.utf8".'),
            (0.02, "fixing permissions on existing directory /var/lib/postgresql/data ... ok"),
            (0.30, "creating subdirectories ... ok"),
            (0.95, "performing post-bootstrap initialization ... ok"),
            (1.10, "syncing data to disk ... ok"),
            (1.12, "Success. You can now start the database server using:"),
            (1.60, "server started"),
            (1.70, "CREATE DATABASE"),
            (1.80, "waiting for server to shut down.... done"),
            (1.81, "server stopped"),
            (1.82, "PostgreSQL init process complete; ready for start up."),
        ]
        cap.timed(start, pod, "postgres", init)
        base = at(start, 1.9)
        pid = self._pid(start)
        self._pg_lines(
            cap,
            pod,
            base,
            [
                (
                    0.000,
                    "[1] LOG:  starting PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit",
                ),
                (0.001, '[1] LOG:  listening on IPv4 address "0.0.0.0", port 5432'),
                (0.001, '[1] LOG:  listening on IPv6 address "::", port 5432'),
                (0.004, '[1] LOG:  listening on Unix socket "/var/run/postgresql/.s.PGSQL.5432"'),
                (
                    0.009,
                    f"[{pid}] LOG:  database system was shut down at {start.strftime('%Y-%m-%d %H:%M:%S')} UTC",
                ),
                (0.015, "[1] LOG:  database system is ready to accept connections"),
            ],
        )
        return at(base, 0.015)

    def _postgres_down(self, cap: Capture, pod: Pod, start: datetime) -> None:
        pid = self._pid(start)
        self._pg_lines(
            cap,
            pod,
            start,
            [
                (0.00, "[1] LOG:  received fast shutdown request"),
                (0.00, "[1] LOG:  aborting any active transactions"),
                (
                    0.01,
                    f'[1] LOG:  background worker "logical replication launcher" (PID {pid + 6}) exited with exit code 1',
                ),
                (0.01, f"[{pid}] LOG:  shutting down"),
                (0.02, f"[{pid}] LOG:  checkpoint starting: shutdown immediate"),
                (
                    0.21,
                    f"[{pid}] LOG:  checkpoint complete: wrote 941 buffers (5.7%); 0 WAL file(s) added, 0 removed, 0 recycled; write=0.112 s, sync=0.061 s, total=0.189 s; sync files=305, longest=0.004 s, average=0.001 s; distance=4381 kB, estimate=4381 kB; lsn=0/1A2F3B8, redo lsn=0/1A2F3B8",
                ),
                (0.23, "[1] LOG:  database system is shut down"),
            ],
        )

    def _cases(self, plan: GoPlan) -> dict[str, list[tuple[str, float]]]:
        salt = self._salt(plan)
        by_pkg: dict[str, list[tuple[str, float]]] = {}
        for pkg, name, secs in self.tests:
            if name in plan.dropped:
                continue
            took = plan.slow.get(name, secs * (1 + plan.spread * jitter(*salt, name)))
            by_pkg.setdefault(pkg, []).append((name, took))
        return by_pkg

    def _go_test(
        self, cap: Capture, pod: Pod, plan: GoPlan, start: datetime
    ) -> tuple[datetime, bool]:
        """`go test -v ./...` output from `start`; (end, all passed). Faults that strike mid-run
        (evicted, node_not_ready, hang) act after `plan.cut_after` tests."""
        salt = self._salt(plan)
        moment = start
        out: list[tuple[datetime, str]] = [
            (moment, "?   \tgithub.com/acme/ledger/cmd/ledger\t[no test files]")
        ]
        ok = True
        done = 0
        for pkg, cases in self._cases(plan).items():
            moment = at(moment, 0.9 + 0.1 * jitter(*salt, pkg))  # build and link the test binary
            pkg_start = moment
            pkg_ok = True
            for name, took in cases:
                if plan.fault == "evicted" and done == plan.cut_after:
                    self._emit(cap, pod, plan, start, out)
                    return moment, False
                out.append((moment, f"=== RUN   {name}"))
                if plan.fault == "node_not_ready" and done == plan.cut_after:
                    self._not_ready_events(cap, pod, at(moment, 0.2))
                if plan.fault == "hang" and done == plan.cut_after:
                    return self._hang(cap, pod, plan, start, out, moment, name, pkg, pkg_start)
                moment = at(moment, took)
                failure = plan.failing.get(name)
                if plan.fault == "node_not_ready" and plan.cut_after <= done < plan.cut_after + 2:
                    moment = at(moment, 30.0)  # the dial times out while the node is unreachable
                    failure = [
                        f"{name.removeprefix('Test').lower()}_test.go:41: dial tcp 10.60.0.1:5432: i/o timeout"
                    ]
                if failure is not None:
                    pkg_ok = False
                    for k, text in enumerate(failure):
                        out.append((at(moment, -0.001 * (len(failure) - k)), f"    {text}"))
                    out.append(
                        (
                            moment,
                            f"--- FAIL: {name} ({(moment - out[-len(failure) - 1][0]).total_seconds():.2f}s)",
                        )
                    )
                else:
                    out.append((moment, f"--- PASS: {name} ({took:.2f}s)"))
                done += 1
            spent = (moment - pkg_start).total_seconds() + 0.011
            moment = at(moment, 0.011)
            if pkg_ok:
                out.append((moment, "PASS"))
                out.append((moment, f"ok  \t{pkg}\t{spent:.3f}s"))
            else:
                ok = False
                out.append((moment, "FAIL"))
                out.append((moment, f"FAIL\t{pkg}\t{spent:.3f}s"))
        if not ok:
            out.append((at(moment, 0.002), "FAIL"))
        self._emit(cap, pod, plan, start, out)
        return at(moment, 0.01), ok

    def _hang(
        self,
        cap: Capture,
        pod: Pod,
        plan: GoPlan,
        start: datetime,
        out: list[tuple[datetime, str]],
        moment: datetime,
        name: str,
        pkg: str,
        pkg_start: datetime,
    ) -> tuple[datetime, bool]:
        """`name` never returns (a lock never released): after -timeout the test binary panics
        and prints the goroutines; the package fails; the other package never runs."""
        timeout = at(moment, plan.hang_s)
        minutes = int(plan.hang_s // 60)
        panic = [
            f"panic: test timed out after {minutes}m0s",
            "running tests:",
            f"\t{name} ({minutes}m0s)",
            "",
            "goroutine 58 [running]:",
            "testing.(*M).startAlarm.func1()",
            "\t/usr/local/go/src/testing/testing.go:2373 +0x30c",
            "created by time.goFunc",
            "\t/usr/local/go/src/time/sleep.go:215 +0x2d",
            "",
            "goroutine 1 [chan receive, 20 minutes]:",
            "testing.(*T).Run(0xc000184ea0, {0x9c1a2e?, 0x0?}, 0xa1c4c8)",
            "\t/usr/local/go/src/testing/testing.go:1751 +0x3ab",
        ]
        for k, text in enumerate(panic):
            out.append((at(timeout, 0.001 * k), text))
        end = at(timeout, 0.02)
        spent = (end - pkg_start).total_seconds()
        out.append((end, f"FAIL\t{pkg}\t{spent:.3f}s"))
        out.append((at(end, 0.002), "FAIL"))
        self._emit(cap, pod, plan, start, out)
        return at(end, 0.01), False

    def _emit(
        self, cap: Capture, pod: Pod, plan: GoPlan, start: datetime, out: list[tuple[datetime, str]]
    ) -> None:
        for offset, text in plan.test_extra:
            out.append((at(start, offset), text))
        for when, text in sorted(out, key=lambda item: item[0]):
            cap.log(when, pod, "go-test", text)
        for offset, text in plan.pg_extra:
            when = at(start, offset)
            cap.log(when, pod, "postgres", f"{self._pg_time(when)} {text}")


def cron_history(
    cap: Capture,
    pipe: GoCron,
    first: datetime,
    runs: int,
    every_s: float = 3600.0,
    plans: dict[int, dict[str, object]] | None = None,
) -> list[GoRun]:
    """`runs` runs of `pipe` from `first`, `every_s` apart; `plans`: GoPlan fields by index."""
    built = []
    for index in range(1, runs + 1):
        fields = (plans or {}).get(index, {})
        plan = GoPlan(scheduled=at(first, every_s * (index - 1)), index=index, **fields)  # type: ignore[arg-type]
        built.append(pipe.build(cap, plan))
    return built


__all__ = ["GO_TESTS", "STORE_PKG", "GoCron", "GoPlan", "GoRun", "cron_history", "jitter"]
