"""The demo's bundled history: what it holds, moving it in time, and the live runs made from it."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from processors.logs.levels import worth_analysing
from processors.test_results.log_parsers import TestLogParser
from sentinel.demo import history

RAW = history.load_history()
EXPECTED = history.load_expected()
FIRST = min(history.record_time(r) for r in RAW)
LAST = max(history.record_time(r) for r in RAW)
# Timestamps in every format the history prints, within its own days.
STAMPS = [
    re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}"),
    re.compile(r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d{6}"),
    re.compile(r'"ts":(\d{10}(?:\.\d+)?)'),
]


def test_the_expected_anomalies_are_the_faults_the_issue_names_and_nothing_else() -> None:
    types = sorted({a["type"] for a in EXPECTED["anomalies"]})
    assert types == [
        "duration_regression",  # a duration regression
        "flaky_test",  # a flaky test
        "image_pull_failure",  # an image pull failure
        "log_silence",  # a run that hangs (and then times out: its status below)
        "missing_stage",  # a missing stage
        "new_error_template",  # a new error signature
        "oom_killed",  # an OOMKilled pod during a test
    ]
    assert len(EXPECTED["anomalies"]) == len(types)  # one finding each
    statuses = Counter(run["status"] for run in EXPECTED["runs"])
    assert statuses == {"succeeded": 24, "failed": 2, "timed_out": 1}
    hung = next(r for r in EXPECTED["runs"] if r["status"] == "timed_out")
    assert any(a["run_id"] == hung["run_id"] for a in EXPECTED["anomalies"])


def test_the_history_holds_three_ci_systems_and_the_log_formats_the_demo_promises() -> None:
    providers = Counter(r["provider"] for r in RAW if r["type"] == "webhook")
    assert providers.keys() == {"github", "jenkins"}
    pods = {r["object"]["metadata"]["name"]: r["object"] for r in RAW if r["type"] == "k8s"}
    labels = [set(obj["metadata"].get("labels", {})) for obj in pods.values()]
    assert any("actions.github.com/scale-set-name" in keys for keys in labels)  # ARC runners
    assert any("tekton.dev/pipelineRun" in keys for keys in labels)
    assert any("runUrl" in obj["metadata"].get("annotations", {}) for obj in pods.values())
    assert any(obj["kind"] == "Event" for obj in pods.values())
    frameworks: set[str] = set()
    for (ns, pod, container), lines in _streams().items():
        parser = TestLogParser(f"{ns}/{pod}/{container}")
        for line in lines:
            if parser.feed(line) and parser.framework:
                frameworks.add(parser.framework)
    assert {"pytest", "go", "surefire"} <= frameworks
    lines = [r["line"] for r in RAW if r["type"] == "log"]
    assert any(line.startswith("{") and '"level"' in line for line in lines)  # JSON
    assert any(re.match(r"^[IE]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \S+\.go:\d+\]", x) for x in lines)
    assert any(re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z +INFO \d+ --- ", x) for x in lines)  # plain
    assert sum(worth_analysing(line) for line in lines) > 0


def _streams() -> dict[tuple[str, str, str], list[str]]:
    streams: dict[tuple[str, str, str], list[str]] = {}
    for r in RAW:
        if r["type"] == "log":
            streams.setdefault((r["namespace"], r["pod"], r["container"]), []).append(r["line"])
    return streams


def test_shifting_moves_every_timestamp_and_nothing_else() -> None:
    end = datetime(2027, 5, 17, 9, 41, 13, tzinfo=UTC)
    delta = history.delta_to_end_at(RAW, end)
    shifted = history.shift_records(RAW, delta)
    assert max(history.record_time(r) for r in shifted) == LAST + delta
    assert end - timedelta(seconds=1) < LAST + delta <= end
    text = json.dumps(shifted)
    # No timestamp of the original days is left, in any format the history prints.
    days = {(FIRST + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(4)}
    assert not [day for day in days if day in text]
    klog_days = {(FIRST + timedelta(days=d)).strftime("%m%d ") for d in range(4)}
    logs = [r["line"] for r in shifted if r["type"] == "log"]
    assert not [x for x in logs if re.match(r"^[IWEF]\d{4} ", x) and x[1:6] in klog_days]
    epochs = [float(m) for x in logs for m in STAMPS[2].findall(x)]
    assert epochs and all(e > (LAST + timedelta(days=30)).timestamp() for e in epochs)
    jenkins = [r["body"]["build"]["timestamp"] for r in shifted if r.get("provider") == "jenkins"]
    assert all(ms / 1000 > (LAST + timedelta(days=30)).timestamp() for ms in jenkins)
    # Moving back gives the same records: nothing but timestamps changed, every gap kept.
    assert history.shift_records(shifted, -delta) == RAW


def test_only_whole_seconds_are_allowed() -> None:
    with pytest.raises(ValueError, match="whole seconds"):
        history.shift_records(RAW[:1], timedelta(seconds=1.5))


def test_shifted_records_still_parse_as_a_capture_in_time_order() -> None:
    records = history.parse(history.shift_records(RAW, timedelta(days=500, seconds=7)))
    stamps = [r.ts for r in records]
    assert stamps == sorted(stamps) and len(records) == len(RAW)


def test_live_runs_are_new_runs_each_time_starting_now() -> None:
    templates = history.load_live()
    start = datetime(2027, 1, 4, 12, 0, 7, tzinfo=UTC)
    runs = [templates.make(n, start + timedelta(minutes=5 * n)) for n in range(9)]
    assert len({run.run_id for run in runs}) == 9
    assert {run.pipeline for run in runs} == {"ci", "shop-verify", "shop/api/main"}
    history_ids = {r["run_id"] for r in EXPECTED["runs"]}
    assert not history_ids & {run.run_id for run in runs}
    for n, run in enumerate(runs):
        first = min(history.record_time(r) for r in run.records)
        begin = start + timedelta(minutes=5 * n)
        assert begin - timedelta(seconds=1) < first <= begin  # moved by whole seconds
        ident = {"ci": lambda i: i.split(":")[2], "shop/api/main": lambda i: f"main/{i[22:]}/"}
        assert ident.get(run.pipeline, lambda i: i.split("/")[-1])(run.run_id) in json.dumps(
            run.records
        )
    # Nothing that identifies an object or a delivery repeats across runs.
    ids: Counter[str] = Counter()
    for run in runs:
        for r in run.records:
            if r["type"] == "webhook" and r["headers"].get("X-GitHub-Delivery"):
                ids[r["headers"]["X-GitHub-Delivery"]] += 1
            if r["type"] == "k8s":
                meta = r["object"]["metadata"]
                ids[meta["uid"] + meta["resourceVersion"]] += 1
    assert ids and max(ids.values()) == 1
    # Jenkins builds and GitHub run numbers continue from the history.
    jenkins = [run.run_id for run in runs if run.pipeline == "shop/api/main"]
    assert jenkins == ["jenkins:shop/api/main:140", "jenkins:shop/api/main:141"]
