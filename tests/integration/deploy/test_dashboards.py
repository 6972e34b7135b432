"""Every Grafana dashboard query runs on the real ClickHouse engine and feeds its panel.

The store is the project's own schema (the migrations of schemas/sql) filled by the real
pipeline: scenario captures replayed through an embedded stack (session Kafka broker, Faust
worker, ClickHouse sink), as `sentinel analyze` does; alert deliveries, which the dispatcher
(issue 13) will write, are published to their topic and stored by the same sink. Each panel's
SQL is expanded as the ClickHouse data source plugin expands it (tests/support/grafana_sql.py)
for the data's time range, with All selected and with one pipeline and branch, and must return
the columns the panel reads and, with All, at least one row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from producers.publisher import KafkaPublisher
from runtime.config import load_settings
from runtime.kafka_clients import producer_config
from schemas.capture import read_capture
from schemas.messages import AlertDelivery, DeliveryOutcome
from sentinel.analyze import analysis_settings, end_of_input
from sentinel.stack import EmbeddedStack
from sinks.clickhouse.store import Store
from tests.support.grafana_sql import ALL, expand
from tests.support.history_replay import replay_letting_time_pass
from tests.support.paths import DATA, REPO

pytestmark = pytest.mark.integration

DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
CAPTURES = [
    DATA / "anomaly_scenarios" / "oom_mid_test.jsonl",  # infra anomalies, nodes, test results
    DATA / "anomaly_scenarios" / "flaky_test.jsonl",  # a flaky test
    DATA / "scenarios" / "jenkins_k8s_plugin.jsonl",  # a pipeline whose latest run failed
]
CONFIG = DATA / "anomaly_scenarios" / "oom_mid_test.config.yaml"


def panels() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            if panel["type"] != "text":
                found.append((f"{path.stem}: {panel['title']}", panel))
    return found


PANELS = panels()


class Data:
    def __init__(self, store: Store, start: datetime, end: datetime) -> None:
        self.store, self.start, self.end = store, start, end

    def run(self, sql: str, variables: dict[str, Any]) -> list[dict[str, Any]]:
        return self.store.query_rows(expand(sql, variables, self.start, self.end))


@pytest.fixture(scope="module")
def data(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    base = load_settings(CONFIG)
    settings = analysis_settings(base, tmp_path_factory.mktemp("dashboards"), kafka_bootstrap)
    stack = EmbeddedStack(settings)
    stack.start()
    try:
        last = datetime.min.replace(tzinfo=UTC)
        for capture in CAPTURES:
            records = list(read_capture(capture))
            replay_letting_time_pass(stack, records)
            last = max(last, max(record.ts for record in records))
        stack.wait_consumed(timeout=120)
        end_of_input(stack.settings, last + timedelta(hours=1))
        stack.wait_consumed(timeout=120)
        assert stack.owner is not None and stack.owner.store is not None
        store = stack.owner.store
        publish_deliveries(stack, store)
        first = store.query_rows("SELECT min(first_event_at) AS first FROM runs")[0]["first"]
        # The range a user would pick: the whole history, up to now (ingestion times are now).
        yield Data(store, first - timedelta(days=1), datetime.now(UTC) + timedelta(hours=1))
    finally:
        stack.stop()


def publish_deliveries(stack: EmbeddedStack, store: Store) -> None:
    """What the alert dispatcher writes: for each anomaly, a Slack send and a failed e-mail."""
    anomalies = store.query_rows("SELECT anomaly_id, window_end FROM anomalies FINAL")
    assert anomalies, "the scenarios gave no anomaly"
    publisher = KafkaPublisher(producer_config(stack.settings), component="test-deliveries")
    topic = stack.settings.topic_names.alert_deliveries
    try:
        for n, row in enumerate(anomalies):
            for channel, outcome, code, error in (
                ("slack", DeliveryOutcome.SENT, 200, None),
                ("email", DeliveryOutcome.FAILED, 550, "mailbox unavailable"),
            ):
                delivery = AlertDelivery(
                    delivery_id=f"{channel}-{n}",
                    channel=channel,
                    group_key=row["anomaly_id"],
                    anomaly_ids=[row["anomaly_id"]],
                    outcome=outcome,
                    status_code=code,
                    error=error,
                    attempted_at=row["window_end"],
                )
                publisher.submit(topic, channel.encode(), delivery.to_bytes())
        assert publisher.flush(120) == 0, "alert deliveries not acknowledged by the broker"
    finally:
        publisher.close()
    deadline = time.monotonic() + 60
    wanted = 2 * len(anomalies)
    while store.query_rows("SELECT count() AS n FROM alert_deliveries")[0]["n"] < wanted:
        assert time.monotonic() < deadline, "the sink did not store the deliveries"
        time.sleep(0.2)


ALL_SELECTED = {"pipeline": ALL, "branch": ALL, "sentinel_url": "http://sentinel.example"}


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=[name for name, _ in PANELS])
def test_panel_query_returns_what_the_panel_shows(
    data: Data, name: str, panel: dict[str, Any]
) -> None:
    (target,) = panel["targets"]
    rows = data.run(target["rawSql"], ALL_SELECTED)
    assert rows, f"{name}: no row over the scenario data"
    columns = list(rows[0])
    kind = panel["type"]
    if kind == "timeseries":
        assert columns[0] == "time" and all(isinstance(r["time"], datetime) for r in rows)
        assert any(isinstance(v, int | float) for r in rows for v in list(r.values())[1:])
    elif kind == "stat":
        assert len(columns) == 1 and isinstance(rows[0][columns[0]], int | float)
    elif kind == "barchart":
        assert len(columns) == 2 and isinstance(rows[0][columns[0]], str)
        assert isinstance(rows[0][columns[1]], int | float)
    for override in panel["fieldConfig"]["overrides"]:
        column = override["matcher"]["options"]
        assert column in columns, f"{name}: the link column {column} is not in {columns}"
        assert all(r[column] for r in rows), f"{name}: a row without a run id to link"
        links = override["properties"][0]["value"]
        assert links[0]["url"] == "${sentinel_url}/runs/${__value.raw:percentencode}"


def test_queries_narrow_to_one_pipeline_and_branch(data: Data) -> None:
    failing = data.run(
        dict(PANELS)["run-overview: Failing now"]["targets"][0]["rawSql"], ALL_SELECTED
    )
    chosen = {"pipeline": [failing[0]["pipeline"]], "branch": [failing[0]["branch"]]}
    selection = {**ALL_SELECTED, **chosen}
    for name, panel in PANELS:
        rows = data.run(panel["targets"][0]["rawSql"], selection)  # must run
        if "pipeline" in (rows[0] if rows else {}):
            assert {row["pipeline"] for row in rows} <= set(chosen["pipeline"]), name
    latest = data.run(dict(PANELS)["run-overview: Latest runs"]["targets"][0]["rawSql"], selection)
    everything = data.run(
        dict(PANELS)["run-overview: Latest runs"]["targets"][0]["rawSql"], ALL_SELECTED
    )
    assert 0 < len(latest) < len(everything)


def test_template_variable_queries_list_pipelines_and_branches(data: Data) -> None:
    for path in sorted(DASHBOARDS.glob("*.json")):
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] != "query":
                continue
            rows = data.run(variable["query"], ALL_SELECTED)
            assert rows and list(rows[0]) == [variable["name"]], (path.name, variable["name"])


def test_dashboard_files_match_their_definitions(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "tools/build_dashboards.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
