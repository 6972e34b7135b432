"""The run page of a large run: server time beside the time of the store queries it makes.

    .venv/bin/python bench/run_page.py [--lines 2000] [--tests 500] [--pods 50] [--rounds 15]

Builds, in a temporary embedded ClickHouse store, one finished run with `--pods` pods (each with
its Pod objects and core Events in k8s_events, one of them OOMKilled and restarted), `--lines`
log lines (one in ten an error, from a handful of templates), `--tests` test results (a few
failed, one flaky) and a dozen anomalies. Then requests pages through the real app in-process
(httpx's ASGI transport: routing, the queries, the pure assembly, template rendering), and for
each request sums the time the store spent on the queries it made: the store is wrapped so that
each query is timed while it has the store to itself (the embedded engine runs one query at a
time, so waiting behind another query of the same request is not counted twice). Same process,
same data: server / queries is the figure to compare; the goal is at most 1.5 (rendering adds
at most 50 % on top of the queries).

The first request of each page is shown apart ("cold": templates compiled, the run's log
lines given their levels and templates, which is then kept for an ended run); the medians are
of the requests after it.
Prints Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runtime.config import load_settings  # noqa: E402
from schemas.messages import (  # noqa: E402
    Anomaly,
    AnomalyCategory,
    ContainerState,
    PodState,
    RunState,
    RunStatus,
    Severity,
    StageState,
    TestResult,
    TestStatus,
)
from sentinel.api import create_api  # noqa: E402
from sinks.clickhouse.migrations import migrate  # noqa: E402
from sinks.clickhouse.rows import RUN_COLUMNS, run_state_to_row  # noqa: E402
from sinks.clickhouse.store import Store, open_store  # noqa: E402
from sinks.clickhouse.topic_rows import (  # noqa: E402
    ANOMALY_COLUMNS,
    K8S_COLUMNS,
    LOG_COLUMNS,
    TEST_COLUMNS,
    anomaly_row,
    result_row,
)

# Yesterday: within the log TTL (the default 14 days), as a run people look at would be.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
RUN_ID = "github:acme/shop:900001:1"
ERRORS = [
    "ERROR payment {n} failed: upstream timeout after {s}s",
    "ERROR order {n} rejected: inventory service returned 503",
    "ERROR connection to db-{n}:5432 refused",
]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pods(count: int) -> list[PodState]:
    out = []
    for i in range(count):
        oom = i == 7
        out.append(
            PodState(
                uid=f"uid-{i}",
                namespace="ci",
                name=f"e2e-shard-{i:02d}-x{i:03d}",
                phase="Succeeded",
                node=f"node-{i % 5}",
                stage_id=f"stage-{i % 5}",
                created_at=at(i * 10),
                started_at=at(i * 10 + 8),
                finished_at=at(i * 10 + 400),
                containers=[
                    ContainerState(
                        name="tests",
                        state="terminated",
                        restarts=1 if oom else 0,
                        last_reason="OOMKilled" if oom else None,
                        last_finished_at=at(i * 10 + 200) if oom else None,
                    )
                ],
                updated_at=at(i * 10 + 400),
            )
        )
    return out


def run(pod_count: int) -> RunState:
    stages = [
        StageState(
            stage_id=f"stage-{i}",
            name=f"shard {i}",
            status=RunStatus.SUCCEEDED,
            started_at=at(i * 100),
            finished_at=at(i * 100 + 450),
            duration_s=450,
            updated_at=at(i * 100 + 450),
        )
        for i in range(5)
    ]
    return RunState(
        run_id=RUN_ID,
        provider="github",
        provider_run_id="900001",
        repository="acme/shop",
        pipeline="e2e",
        branch="main",
        commit_sha="f" * 40,
        status=RunStatus.FAILED,
        created_at=T0,
        started_at=T0,
        finished_at=at(1000),
        duration_s=1000,
        stages=stages,
        pods=pods(pod_count),
        correlation_keys=["github-runner:acme/shop:900001"],
        first_event_at=T0,
        updated_at=at(1000),
    )


def k8s_rows(state: RunState) -> list[dict[str, Any]]:
    rows = []
    for pod in state.pods:
        assert pod.created_at is not None and pod.started_at is not None
        for when, status in (
            (pod.created_at, {"phase": "Pending"}),
            (
                pod.created_at + timedelta(seconds=1),
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "True",
                            "lastTransitionTime": _k8s(pod.created_at + timedelta(seconds=1)),
                        }
                    ],
                },
            ),
            (
                pod.started_at,
                {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "tests",
                            "restartCount": 0,
                            "state": {"running": {"startedAt": _k8s(pod.started_at)}},
                        }
                    ],
                },
            ),
        ):
            obj = {
                "kind": "Pod",
                "metadata": {
                    "name": pod.name,
                    "uid": pod.uid,
                    "creationTimestamp": _k8s(pod.created_at),
                },
                "status": status,
            }
            rows.append(_k8s_row(when, "Pod", pod.name, pod.uid, obj))
        for reason, offset in (("Scheduled", 1), ("Pulling", 2), ("Pulled", 6), ("Started", 8)):
            event = {
                "kind": "Event",
                "reason": reason,
                "type": "Normal",
                "metadata": {"name": f"{pod.name}.{reason}", "uid": f"{pod.uid}-{reason}"},
                "involvedObject": {
                    "kind": "Pod",
                    "name": pod.name,
                    "uid": pod.uid,
                    "namespace": "ci",
                },
                "firstTimestamp": _k8s(pod.created_at + timedelta(seconds=offset)),
            }
            rows.append(
                _k8s_row(
                    pod.created_at + timedelta(seconds=offset),
                    "Event",
                    event["metadata"]["name"],
                    event["metadata"]["uid"],
                    event,
                )
            )
    return rows


def _k8s(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _k8s_row(when: datetime, kind: str, name: str, uid: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_time": when,
        "event_type": "MODIFIED",
        "kind": kind,
        "api_version": "v1",
        "namespace": "ci",
        "name": name,
        "uid": uid,
        "resource_version": "1",
        "correlation_key": "github-runner:acme/shop:900001",
        "cluster": "",
        "node": "",
        "phase": "",
        "reason": obj.get("reason", ""),
        "message": "",
        "labels": {},
        "annotations": {},
        "owner_refs": "[]",
        "object": json.dumps(obj),
        "received_at": when,
        "schema_version": 1,
        "extra": "{}",
    }


def log_rows(count: int, state: RunState) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        pod = state.pods[i % len(state.pods)]
        if i % 10 == 3:
            line = ERRORS[i % len(ERRORS)].format(n=1000 + i, s=30 + i % 7)
        else:
            line = f"INFO step {i % 40} of suite shard-{i % 5}: {i} checks passed in {i % 90} ms"
        when = at(10 + i * 990 / count)
        rows.append(
            {
                "event_time": when,
                "run_id": "",
                "namespace": "ci",
                "pod": pod.name,
                "container": "tests",
                "line": line,
                "truncated": False,
                "level": "",
                "template_id": "",
                "template": "",
                "correlation_key": "github-runner:acme/shop:900001",
                "received_at": when,
                "schema_version": 1,
                "extra": "{}",
            }
        )
    return rows


def test_rows(count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        status = TestStatus.FAILED if i % 97 == 5 else TestStatus.PASSED
        out.append(
            result_row(
                TestResult(
                    run_id=RUN_ID,
                    suite=f"tests.e2e.test_area_{i % 20}",
                    name=f"test_case_{i}",
                    status=status,
                    duration_s=0.1 + (i % 13),
                    source="junit-xml",
                    event_time=at(20 + i),
                    message="AssertionError: expected 200" if status == "failed" else None,
                )
            )
        )
    out.append(
        result_row(
            TestResult(
                run_id=RUN_ID,
                suite="tests.e2e.test_area_0",
                name="test_case_0",
                attempt=2,
                status=TestStatus.PASSED,
                duration_s=0.2,
                source="junit-xml",
                event_time=at(600),
            )
        )
    )
    return out


def anomaly_rows(state: RunState) -> list[dict[str, Any]]:
    return [
        anomaly_row(
            Anomaly(
                anomaly_id=f"a{i:031d}",
                run_id=RUN_ID,
                category=AnomalyCategory.INFRA if i % 2 else AnomalyCategory.TEST,
                type="oom_killed" if i % 2 else "duration_regression",
                severity=Severity.ERROR if i % 2 else Severity.WARNING,
                subject=f"{state.pods[i].name}/tests" if i % 2 else f"tests.e2e::test_case_{i}",
                summary=f"finding {i}",
                evidence={"observed": i, "threshold": 1},
                window_start=at(i * 60),
                window_end=at(i * 60 + 30),
            )
        )
        for i in range(12)
    ]


def fill(store: Store, lines: int, tests: int, pod_count: int) -> None:
    state = run(pod_count)
    store.insert("runs", [run_state_to_row(state)], RUN_COLUMNS)
    store.insert("k8s_events", k8s_rows(state), K8S_COLUMNS)
    store.insert("log_lines", log_rows(lines, state), LOG_COLUMNS)
    store.insert("test_results", test_rows(tests), TEST_COLUMNS)
    store.insert("anomalies", anomaly_rows(state), ANOMALY_COLUMNS)


class TimedStore:
    """The store, with the time of each query measured while it has the store to itself."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.database = store.database
        self.lock = threading.Lock()
        self.seconds = 0.0
        self.queries = 0

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[Any]:
        with self.lock:
            started = time.perf_counter()
            try:
                return self.store.query_rows(sql, parameters)
            finally:
                self.seconds += time.perf_counter() - started
                self.queries += 1

    def ping(self) -> bool:
        return self.store.ping()

    def reset(self) -> None:
        self.seconds, self.queries = 0.0, 0


async def measure(
    app: Any, timed: TimedStore, path: str, rounds: int
) -> tuple[float, float, float, float, int, int]:
    """Cold server and query seconds (the first request), then the medians of the rest,
    queries per request and response bytes."""
    server, queries, count, size = [], [], 0, 0
    cold = (0.0, 0.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for index in range(rounds + 1):
            timed.reset()
            started = time.perf_counter()
            response = await client.get(path)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text[:500]
            if index == 0:
                cold = (elapsed, timed.seconds)
                continue
            server.append(elapsed)
            queries.append(timed.seconds)
            count, size = timed.queries, len(response.content)
    return (*cold, statistics.median(server), statistics.median(queries), count, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--tests", type=int, default=500)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-run-page-") as tmp:
        settings = load_settings(None, embedded={"data_dir": tmp})
        store = open_store(settings)
        migrate(store)
        fill(store, args.lines, args.tests, args.pods)
        timed = TimedStore(store)
        app = create_api(timed, broker_ready=lambda: True)
        run_path = f"/runs/{quote(RUN_ID, safe=':/')}"
        pages = [
            ("run page (timeline + anomalies tab)", run_path),
            ("run page, tests tab", f"{run_path}?tab=tests"),
            ("run page, logs tab (all lines)", f"{run_path}?tab=logs&level=all"),
            ("API timeline JSON", f"/api/runs/{quote(RUN_ID, safe=':/')}/timeline"),
            ("runs list", "/runs"),
        ]
        print(
            f"{args.lines} log lines, {args.tests} tests, {args.pods} pods; "
            f"median of {args.rounds} requests after a cold one"
        )
        print(
            "| page | cold: server / queries (ms) | cold ratio | server (ms) | store queries (ms)"
            " | server / queries | queries | bytes |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name, path in pages:
            measured = asyncio.run(measure(app, timed, path, args.rounds))
            cold_s, cold_q, server, queries, count, size = measured
            print(
                f"| {name} | {cold_s * 1000:.1f} / {cold_q * 1000:.1f} | {cold_s / cold_q:.2f} "
                f"| {server * 1000:.1f} | {queries * 1000:.1f} | {server / queries:.2f} "
                f"| {count} | {size} |"
            )
        store.close()


if __name__ == "__main__":
    main()
