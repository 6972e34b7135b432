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
    at,
    core_event,
    cronjob_job_name,
    involved,
    job_pod,
    job_scenario_objects,
    k8s_suffix,
    k8s_time,
    owner_ref,
    uid,
)

GO_IMAGE = "ghcr.io/acme/ledger-tests:2.3.0"
GO_IMAGE_ID = "ghcr.io/acme/ledger-tests@sha256:3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060f5e"
PG_IMAGE = "postgres:16.4"
PG_IMAGE_ID = "docker.io/library/postgres@sha256:d0f363f8366fbc3f52d172c6e76bc27151c3d643b870e1062b4e8bfe65baf609"
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
    fault: str | None = None  # None | "image_pull_backoff" | "oom_before_tests"


@dataclass
class GoRun:
    run_id: str
    status: str
    job: str
    pod: str
    namespace: str


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

    def build(self, cap: Capture, plan: GoPlan) -> GoRun:
        t = at(plan.scheduled, 0.05)
        job_name = cronjob_job_name(self.cron, plan.scheduled)
        salt = (self.clock or self.namespace, self.cron, plan.index)
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
        tests = Container(
            "go-test",
            GO_IMAGE,
            GO_IMAGE_ID,
            command=[
                "sh",
                "-c",
                "go test -v -count=1 ./... ; status=$?; pkill -INT postgres; exit $status",
            ],
            env=[
                {
                    "name": "DATABASE_URL",
                    "value": "postgres://postgres:ledger@localhost:5432/ledger_test?sslmode=disable",
                }
            ],
            resources=RESOURCES,
            started=tests_start,
            extra={"workingDir": "/src"},
        )
        pod = job_pod(
            self.namespace,
            job_name,
            k8s_suffix(5, self.namespace, job_name),
            [postgres, tests],
            node=self.node,
            pod_ip=f"10.60.{plan.index % 250}.{10 + len(self.namespace)}",
            host_ip=self.host_ip,
            created=at(t, 0.06),
            scheduled=at(t, 0.8),
            extra_labels={"app.kubernetes.io/name": "ledger-tests"},
        )
        pod.spec_extra = {"shareProcessNamespace": True}
        job = Job.for_pod(
            pod,
            t,
            labels={"app.kubernetes.io/name": "ledger-tests"},
            owner=owner_ref("CronJob", "batch/v1", self.cron, self.uid),
            backoff_limit=0,
            active_deadline_s=900,
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
        ready = self._postgres_up(cap, pod, pg_start)
        end, ok = self._go_test(cap, pod, plan, at(ready, 0.5))
        shutdown = at(end, 0.05)
        self._postgres_down(cap, pod, shutdown)
        tests.finished = at(end, 0.08)
        tests.exit_code = 0 if ok else 1
        postgres.finished = at(shutdown, 0.35)
        job.ready = tests_start
        job.finished = at(postgres.finished, 0.9)
        job.succeeded = ok
        job_scenario_objects(cap, job, pod, pulled=True)
        status = "succeeded" if ok else "failed"
        return GoRun(self.run_id(plan.scheduled), status, job_name, pod.name, self.namespace)

    # -- logs ------------------------------------------------------------------------------------

    @staticmethod
    def _pg_time(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"

    def _postgres_up(self, cap: Capture, pod: object, start: datetime) -> datetime:
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
            (1.40, "waiting for server to start....2026 LOG:  starting PostgreSQL 16.4"),
            (1.60, "server started"),
            (1.70, "CREATE DATABASE"),
            (1.80, "waiting for server to shut down.... done"),
            (1.81, "server stopped"),
            (1.82, "PostgreSQL init process complete; ready for start up."),
        ]
        cap.timed(start, pod, "postgres", init)  # type: ignore[arg-type]
        base = at(start, 1.9)
        pid = 60 + int(abs(jitter(self.clock or self.namespace, start.isoformat())) * 30)
        lines = [
            (
                0.000,
                "[1] LOG:  starting PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit",
            ),
            (0.001, '[1] LOG:  listening on IPv4 address "0.0.0.0", port 5432'),
            (0.001, '[1] LOG:  listening on IPv6 address "::", port 5432'),
            (0.004, '[1] LOG:  listening on Unix socket "/var/run/postgresql/.s.PGSQL.5432"'),
            (
                0.009,
                f"[{pid}] LOG:  database system was shut down at {self._pg_time(at(start, 1.8))[:-8]} UTC",
            ),
            (0.015, "[1] LOG:  database system is ready to accept connections"),
        ]
        cap.timed(
            base,
            pod,
            "postgres",
            [(o, f"{self._pg_time(at(base, o))} {text}") for o, text in lines],
        )  # type: ignore[arg-type]
        return at(base, 0.015)

    def _postgres_down(self, cap: Capture, pod: object, start: datetime) -> None:
        pid = 60 + int(abs(jitter(self.clock or self.namespace, start.isoformat())) * 30)
        lines = [
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
        ]
        cap.timed(
            start,
            pod,
            "postgres",
            [(o, f"{self._pg_time(at(start, o))} {text}") for o, text in lines],
        )  # type: ignore[arg-type]

    def _go_test(
        self, cap: Capture, pod: object, plan: GoPlan, start: datetime
    ) -> tuple[datetime, bool]:
        """`go test -v ./...` output from `start`; (end, all passed)."""
        salt = (self.clock or self.namespace, self.cron, plan.index)
        moment = start
        out: list[tuple[datetime, str]] = [
            (moment, "?   \tgithub.com/acme/ledger/cmd/ledger\t[no test files]")
        ]
        ok = True
        by_pkg: dict[str, list[tuple[str, float]]] = {}
        for pkg, name, secs in self.tests:
            if name in plan.dropped:
                continue
            took = plan.slow.get(name, secs * (1 + plan.spread * jitter(*salt, name)))
            by_pkg.setdefault(pkg, []).append((name, took))
        pg_moments: list[tuple[datetime, str]] = []
        for pkg, cases in by_pkg.items():
            moment = at(moment, 0.9 + 0.1 * jitter(*salt, pkg))  # build and link the test binary
            pkg_start = moment
            pkg_ok = True
            for name, took in cases:
                out.append((moment, f"=== RUN   {name}"))
                moment = at(moment, took)
                if name in plan.failing:
                    pkg_ok = False
                    for k, text in enumerate(plan.failing[name]):
                        out.append(
                            (at(moment, -0.001 * (len(plan.failing[name]) - k)), f"    {text}")
                        )
                    out.append((moment, f"--- FAIL: {name} ({took:.2f}s)"))
                else:
                    out.append((moment, f"--- PASS: {name} ({took:.2f}s)"))
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
        for offset, text in plan.test_extra:
            out.append((at(start, offset), text))
        for offset, text in plan.pg_extra:
            when = at(start, offset)
            pg_moments.append((when, f"{self._pg_time(when)} {text}"))
        for when, text in sorted(out, key=lambda item: item[0]):
            cap.log(when, pod, "go-test", text)  # type: ignore[arg-type]
        for when, text in pg_moments:
            cap.log(when, pod, "postgres", text)  # type: ignore[arg-type]
        return at(moment, 0.01), ok


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


__all__ = ["GO_TESTS", "GoCron", "GoPlan", "GoRun", "Obj", "cron_history", "jitter"]
