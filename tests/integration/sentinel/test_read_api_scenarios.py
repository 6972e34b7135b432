"""The read API over runs replayed through the real pipeline (`scenario_api`): one run's tests,
logs, timeline and comparison, anomalies across runs, pipelines, flaky tests, stats, metrics."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.integration.sentinel.conftest import (
    FLAKY_RUN,
    FLAKY_TEST,
    OOM_RUN,
    STAGED_RUN,
    ScenarioApi,
)

pytestmark = pytest.mark.integration
OOM_POD = "orders-api-tests-29501700-qdtmx"


def get(api: ScenarioApi, path: str, expect: int = 200, **params: Any) -> Any:
    response = httpx.get(f"{api.url}{path}", params=params, timeout=30)
    assert response.status_code == expect, response.text
    return response.json()


def run_path(run_id: str, part: str = "") -> str:
    return f"/api/runs/{quote(run_id, safe=':/')}" + (f"/{part}" if part else "")


def test_timeline_of_the_oom_run(scenario_api: ScenarioApi) -> None:
    body = get(scenario_api, run_path(OOM_RUN, "timeline"))
    [pod] = body["pods"]
    assert pod["name"] == OOM_POD and pod["phase"] == "Failed"
    assert [p["phase"] for p in pod["phases"]] == ["scheduled", "running", "terminated"]
    assert [(t["kind"], t["reason"]) for t in pod["ticks"]] == [("oom", "OOMKilled")]
    lanes = sorted((m["type"], m["lane"]) for m in body["anomalies"])
    assert lanes == [("job_backoff_limit", None), ("oom_killed", f"pod:{OOM_POD}")]
    assert sum(b["lines"] for b in body["log_density"]) > 0
    # Zoom: the same data within a window, density buckets over the window only.
    zoomed = get(scenario_api, run_path(OOM_RUN, "timeline"), **{"from": "2026-02-03T07:00:10Z"})
    assert zoomed["window_start"].startswith("2026-02-03T07:00:10")
    get(
        scenario_api,
        run_path(OOM_RUN, "timeline"),
        400,
        **{"from": "2026-02-03T07:00:30Z", "to": "2026-02-03T07:00:20Z"},
    )
    staged = get(scenario_api, run_path(STAGED_RUN, "timeline"))
    assert [s["name"] for s in staged["stages"]] == ["lint", "test"]


def test_tests_of_the_flaky_run(scenario_api: ScenarioApi) -> None:
    page = get(scenario_api, run_path(FLAKY_RUN, "tests"))
    assert page["counts"]["total"] == 15 and page["counts"]["flaky"] == 1
    first = page["items"][0]
    assert first["key"] == FLAKY_TEST and first["flaky"]
    assert [a["status"] for a in first["attempts"]] == ["failed", "passed"]
    flaky = get(scenario_api, run_path(FLAKY_RUN, "tests"), status="flaky")
    assert [c["key"] for c in flaky["items"]] == [FLAKY_TEST]
    one = get(scenario_api, run_path(FLAKY_RUN, "tests"), limit=1)
    two = get(scenario_api, run_path(FLAKY_RUN, "tests"), limit=1, cursor=one["next_cursor"])
    assert one["items"][0]["key"] != two["items"][0]["key"]
    get(scenario_api, run_path("job:ci/nope", "tests"), 404)
    # The run page counts them in the store (no cases built): the same figures.
    page_html = httpx.get(f"{scenario_api.url}/runs/{FLAKY_RUN}", timeout=30).text
    assert "Tests (0 failed of 15)" in page_html


def test_logs_are_numbered_searchable_and_paginated(scenario_api: ScenarioApi) -> None:
    everything = get(scenario_api, run_path(FLAKY_RUN, "logs"), limit=500)
    numbers = [line["n"] for line in everything["items"]]
    assert numbers == list(range(1, everything["total_lines"] + 1)) and len(numbers) > 10
    pytest_lines = [line for line in everything["items"] if "test_partial_refund" in line["line"]]
    found = get(scenario_api, run_path(FLAKY_RUN, "logs"), q="TEST_PARTIAL_REFUND")
    assert [line["n"] for line in found["items"]] == [line["n"] for line in pytest_lines]
    first = get(scenario_api, run_path(FLAKY_RUN, "logs"), limit=5)
    rest = get(scenario_api, run_path(FLAKY_RUN, "logs"), limit=5, cursor=first["next_cursor"])
    assert [line["n"] for line in rest["items"]] == [6, 7, 8, 9, 10]
    get(scenario_api, run_path(FLAKY_RUN, "logs"), 400, cursor="bm90LWEtY3Vyc29y")


def test_compare_defaults_to_the_last_successful_run(scenario_api: ScenarioApi) -> None:
    body = get(scenario_api, run_path(FLAKY_RUN, "compare"))
    assert body["baseline_chosen"] == "last_successful"
    assert body["baseline_run_id"] == "job:ci/orders-api-tests-29503020"
    assert body["tests_changed"] == [
        {"key": FLAKY_TEST, "status": "flaky", "baseline_status": "passed"}
    ]
    oom = get(scenario_api, run_path(OOM_RUN, "compare"))
    assert {c["status"] for c in oom["tests_changed"]} == {"missing"}
    assert len(oom["tests_changed"]) == 15
    assert [(p["name"], p["reason"]) for p in oom["restarted_pods"]] == [(OOM_POD, "OOMKilled")]
    given = get(scenario_api, run_path(FLAKY_RUN, "compare"), **{"with": OOM_RUN})
    assert given["baseline_chosen"] == "given" and given["baseline_run_id"] == OOM_RUN
    get(scenario_api, run_path(FLAKY_RUN, "compare"), 404, **{"with": "job:ci/nope"})
    first = get(scenario_api, run_path("job:ci/orders-api-tests-29501340", "compare"))
    assert first["baseline_run_id"] is None and "no earlier successful run" in first["note"]


def test_anomalies_across_runs_with_filters(scenario_api: ScenarioApi) -> None:
    everything = get(scenario_api, "/api/anomalies")["items"]
    assert sorted(a["type"] for a in everything) == [
        "flaky_test",
        "job_backoff_limit",
        "oom_killed",
    ]
    assert all(a["pipeline"] == "orders-api-tests" for a in everything)
    oom = get(scenario_api, "/api/anomalies", type="oom_killed", pipeline="orders-api-tests")
    assert [a["run_id"] for a in oom["items"]] == [OOM_RUN]
    tests = get(scenario_api, "/api/anomalies", category="test", severity="warning")
    assert {a["type"] for a in tests["items"]} <= {"flaky_test"}
    page = get(scenario_api, "/api/anomalies", limit=2)
    more = get(scenario_api, "/api/anomalies", limit=2, cursor=page["next_cursor"])
    assert len(page["items"]) + len(more["items"]) == 3 and more["next_cursor"] is None
    assert (
        get(scenario_api, "/api/anomalies", since="2026-02-04T00:00:00Z")["items"][0]["type"]
        == "flaky_test"
    )
    get(scenario_api, "/api/anomalies", 400, since="0001-01-01T00:00:00Z")
    get(scenario_api, "/api/anomalies", 400, category="nonsense")


def test_pipelines_trends_and_flaky_tests(scenario_api: ScenarioApi) -> None:
    pipelines = get(scenario_api, "/api/pipelines", days=3650)
    orders = next(p for p in pipelines if p["pipeline"] == "orders-api-tests")
    assert (orders["runs"], orders["failed"]) == (15, 1)
    assert orders["failure_rate"] == round(1 / 15, 4)
    assert get(scenario_api, "/api/pipelines") == []  # nothing in the last 30 days
    trends = get(scenario_api, "/api/pipelines/orders-api-tests/trends", days=3650)
    assert [(d["day"], d["runs"], d["failed"]) for d in trends["daily"]] == [
        ("2026-02-03", 8, 1),
        ("2026-02-04", 7, 0),
    ]
    assert trends["daily"][0]["duration_p95_s"] >= trends["daily"][0]["duration_p50_s"]
    assert (
        trends["slowest"][0]["key"] == "tests.integration.test_checkout::test_checkout_end_to_end"
    )
    assert [t["key"] for t in trends["flakiest"]] == [FLAKY_TEST]
    get(scenario_api, "/api/pipelines/no-such-pipeline/trends", 404)
    [flaky] = get(scenario_api, "/api/tests/flaky", days=3650)
    assert (flaky["key"], flaky["pipelines"]) == (FLAKY_TEST, ["orders-api-tests"])
    assert flaky["sample_run_ids"] == [FLAKY_RUN]


def test_stats_read_the_broker_and_the_store(scenario_api: ScenarioApi) -> None:
    stats = get(scenario_api, "/api/stats")
    assert stats["broker"]["reachable"] and stats["store"]["reachable"]
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", stats["version"]) and stats["uptime_s"] > 0
    prefix = scenario_api.info.get("prefix") or ""
    topics = {t["topic"]: t["messages"] for t in stats["topics"]}
    if prefix:  # a reused server (SENTINEL_TEST_SCENARIO_API) does not say its prefix
        assert topics[f"{prefix}runs"] > 0 and topics[f"{prefix}logs"] > 0
        groups = {g["group"]: g for g in stats["consumer_groups"]}
        assert {f"{prefix}worker", f"{prefix}clickhouse-sink"} <= set(groups)
        assert groups[f"{prefix}clickhouse-sink"]["lag"] == 0  # it consumed everything
    assert stats["dlq_messages"] == 0
    assert stats["runs_last_day"] == {}  # the scenarios ran months ago
    assert stats["alert_deliveries_total"] == {}


def test_metrics_of_the_api_and_of_the_components(scenario_api: ScenarioApi) -> None:
    response = httpx.get(f"{scenario_api.url}/metrics", timeout=30)
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert 'sentinel_consumer_lag{group="' in response.text
    assert "sentinel_topic_messages{" in response.text and "sentinel_broker_up 1.0" in response.text
    if not scenario_api.info:
        return
    worker = scenario_api.info["worker_metrics"]
    prefix = scenario_api.info["prefix"]
    assert scenario_api.info["worker_health"]["status"] == "ok"
    assert f'sentinel_messages_consumed_total{{component="worker",topic="{prefix}k8s"}}' in worker
    assert f'sentinel_messages_published_total{{component="worker",topic="{prefix}runs"}}' in worker
    assert "sentinel_processing_latency_seconds_count{" in worker
    sink = scenario_api.info["sink_metrics"]
    for name in (
        'sentinel_sink_rows_total{table="runs"}',
        "sentinel_sink_batches_total",
        'sentinel_sink_insert_seconds_count{table="log_lines"}',
        f'sentinel_messages_consumed_total{{component="clickhouse-sink",topic="{prefix}runs"}}',
    ):
        assert re.search(re.escape(name) + r" [1-9]", sink), name


def test_client_mistakes_are_400_with_the_reason(scenario_api: ScenarioApi) -> None:
    for params, reason in (
        ({"since": "0001-01-01T00:00:00Z"}, "outside the range the store keeps"),
        ({"until": "0.5"}, "RFC 3339"),
        ({"cursor": "bm9wZQ"}, "cursor"),
        ({"limit": "0"}, "limit"),
    ):
        response = httpx.get(f"{scenario_api.url}/api/runs", params=params, timeout=30)
        assert response.status_code == 400 and reason in response.text, (params, response.text)
    page = httpx.get(f"{scenario_api.url}/runs", params={"tz": "Mars/Olympus"}, timeout=30)
    assert page.status_code == 400 and "Mars/Olympus" in page.text
    assert page.headers["content-type"].startswith("text/html")
    wrong = httpx.delete(f"{scenario_api.url}/api/runs", timeout=30)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
