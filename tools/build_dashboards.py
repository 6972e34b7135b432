"""The Grafana dashboards in deploy/grafana/dashboards/, written from the definitions below.

    .venv/bin/python tools/build_dashboards.py          # write them
    .venv/bin/python tools/build_dashboards.py --check  # exit 1 if the JSON files differ

Every panel queries the ClickHouse tables and views of schemas/sql through the ClickHouse data
source plugin (grafana-clickhouse-datasource, raw SQL) with its macros: ``$__timeFilter(col)``,
``$__timeInterval(col)``, ``$__conditionalAll(condition, $var)``. Dashboards share the template
variables ``pipeline`` and ``branch`` (multi-value, with All) and ``sentinel_url``, the public
address of Sentinel's web UI: a run id in a table links to ``<sentinel_url>/runs/<run id>``.
tests/integration/deploy/test_dashboards.py runs every query, expanded as the plugin expands
it, on the real ClickHouse engine against the schema filled with scenario data.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "deploy" / "grafana" / "dashboards"
DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"}
TERMINAL = "('succeeded', 'failed', 'cancelled', 'timed_out')"
RUN_FILTER = (
    "$__conditionalAll(ifNull(pipeline, '') IN (${pipeline:singlequote}), $pipeline)\n"
    "  AND $__conditionalAll(ifNull(branch, '') IN (${branch:singlequote}), $branch)"
)
# Rows of other tables whose run matches the pipeline/branch selection.
RUNS_OF_SELECTION = f"SELECT run_id FROM runs FINAL WHERE {RUN_FILTER}"
RUN_LINK = "${sentinel_url}/runs/${__value.raw:percentencode}"


@dataclass
class Panel:
    title: str
    kind: str  # timeseries | table | stat | barchart | text
    sql: str = ""
    description: str = ""
    links: list[str] = field(default_factory=list)  # columns holding a run id
    unit: str | None = None
    width: int = 12
    height: int = 8
    text: str = ""

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        panel: dict[str, Any] = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
        }
        if self.kind == "text":
            panel["options"] = {"mode": "markdown", "content": self.text}
            return panel
        panel["datasource"] = DATASOURCE
        panel["targets"] = [
            {
                "datasource": DATASOURCE,
                "editorType": "sql",
                # The plugin's Format: 0 time series (long frames made wide), 1 table.
                "format": 0 if self.kind == "timeseries" else 1,
                "rawSql": self.sql.strip(),
                "refId": "A",
            }
        ]
        defaults: dict[str, Any] = {}
        if self.unit:
            defaults["unit"] = self.unit
        panel["fieldConfig"] = {"defaults": defaults, "overrides": [_link(c) for c in self.links]}
        if self.kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "values": False}}
        if self.kind == "barchart":
            panel["options"] = {"orientation": "horizontal", "showValue": "auto"}
        return panel


def _link(column: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [
            {
                "id": "links",
                "value": [{"title": "Open the run in Sentinel", "url": RUN_LINK}],
            }
        ],
    }


def variables() -> list[dict[str, Any]]:
    pipeline_sql = (
        "SELECT DISTINCT ifNull(pipeline, '') AS pipeline FROM runs FINAL "
        "WHERE pipeline IS NOT NULL ORDER BY pipeline"
    )
    branch_sql = (
        "SELECT DISTINCT ifNull(branch, '') AS branch FROM runs FINAL WHERE branch IS NOT NULL "
        "AND $__conditionalAll(ifNull(pipeline, '') IN (${pipeline:singlequote}), $pipeline) "
        "ORDER BY branch"
    )
    return [
        {
            "name": "datasource",
            "label": "ClickHouse",
            "type": "datasource",
            "query": "grafana-clickhouse-datasource",
            "current": {},
            "hide": 0,
        },
        _query_variable("pipeline", "Pipeline", pipeline_sql),
        _query_variable("branch", "Branch", branch_sql),
        {
            "name": "sentinel_url",
            "label": "Sentinel URL",
            "type": "textbox",
            "query": "http://localhost:8080",
            "current": {"text": "http://localhost:8080", "value": "http://localhost:8080"},
            "description": "Public address of Sentinel's web UI; run ids link to <url>/runs/<id>.",
            "hide": 0,
        },
    ]


def _query_variable(name: str, label: str, sql: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": sql,
        "query": sql,
        "multi": True,
        "includeAll": True,
        "current": {"text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    laid_out, x, y, row_height = [], 0, 0, 0
    for number, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(panel.to_json(number, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["automation-run-sentinel"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "templating": {"list": variables()},
        "links": [
            {
                "title": "Sentinel dashboards",
                "type": "dashboards",
                "tags": ["automation-run-sentinel"],
                "asDropdown": True,
            }
        ],
        "panels": laid_out,
    }


def run_overview() -> dict[str, Any]:
    panels = [
        Panel(
            "Runs",
            "stat",
            f"SELECT count() AS runs FROM runs FINAL\n"
            f"WHERE $__timeFilter(first_event_at)\n  AND {RUN_FILTER}",
            "Runs that started in the time range.",
            width=6,
            height=4,
        ),
        Panel(
            "Failure rate",
            "stat",
            f"SELECT countIf(status IN ('failed', 'timed_out')) / greatest(count(),"
            f" 1) AS failure_rate\n"
            f"FROM runs FINAL\nWHERE $__timeFilter(first_event_at) AND status IN {TERMINAL}\n"
            f"  AND {RUN_FILTER}",
            "Failed or timed-out share of the finished runs.",
            unit="percentunit",
            width=6,
            height=4,
        ),
        Panel(
            "Median run duration",
            "stat",
            f"SELECT quantile(0.5)(duration_s) AS p50_s FROM runs FINAL\n"
            f"WHERE $__timeFilter(first_event_at) AND duration_s IS NOT NULL\n  AND {RUN_FILTER}",
            width=6,
            height=4,
            unit="s",
        ),
        Panel(
            "Anomalies",
            "stat",
            f"SELECT count() AS anomalies FROM anomalies FINAL\n"
            f"WHERE $__timeFilter(window_start)\n  AND run_id IN ({RUNS_OF_SELECTION})",
            "Findings (infra, app, test, structure) in the time range.",
            width=6,
            height=4,
        ),
        Panel(
            "Runs by status",
            "timeseries",
            f"SELECT $__timeInterval(first_event_at) AS time, status, count() AS runs\n"
            f"FROM runs FINAL\nWHERE $__timeFilter(first_event_at)\n  AND {RUN_FILTER}\n"
            f"GROUP BY time, status\nORDER BY time",
            "Runs per interval by their current status.",
            width=24,
        ),
        Panel(
            "Failing now",
            "table",
            f"SELECT pipeline, branch, latest_run AS run_id, latest_status AS status,"
            f" last_started,\n"
            f"  if(streak < 0, finished, streak) AS failed_in_a_row\nFROM (\n"
            f"  SELECT ifNull(pipeline, '') AS pipeline, ifNull(branch, '') AS branch,\n"
            f"    argMax(run_id, first_event_at) AS latest_run,\n"
            f"    argMax(status, first_event_at) AS latest_status,\n"
            f"    max(first_event_at) AS last_started, count() AS finished,\n"
            f"    arrayFirstIndex(s -> s NOT IN ('failed', 'timed_out'),\n"
            f"      arrayReverse(arrayMap(t -> t.2, arraySort(groupArray((first_event_at,"
            f" status)))))\n"
            f"    ) - 1 AS streak\n"
            f"  FROM runs FINAL\n  WHERE $__timeFilter(first_event_at) AND status IN {TERMINAL}\n"
            f"    AND {RUN_FILTER}\n  GROUP BY pipeline, branch\n)\n"
            f"WHERE latest_status IN ('failed', 'timed_out')\nORDER BY last_started DESC",
            "Pipelines and branches whose latest finished run failed or timed out, with how "
            "many runs in a row did.",
            links=["run_id"],
            width=24,
        ),
        Panel(
            "Latest runs",
            "table",
            f"SELECT run_id, ifNull(pipeline, '') AS pipeline, ifNull(branch, '') AS branch,"
            f" status,\n"
            f"  first_event_at AS started, round(duration_s, 1) AS duration_s,\n"
            f"  tests_failed, closed_by\nFROM runs FINAL\n"
            f"WHERE $__timeFilter(first_event_at)\n  AND {RUN_FILTER}\n"
            f"ORDER BY first_event_at DESC\nLIMIT 100",
            links=["run_id"],
            width=24,
        ),
    ]
    return dashboard(
        "sentinel-run-overview",
        "Sentinel / Run overview",
        "Runs by status over time, what is failing now, the latest runs.",
        panels,
    )


def pipeline_trends() -> dict[str, Any]:
    panels = [
        Panel(
            "Failure rate",
            "timeseries",
            f"SELECT $__timeInterval(first_event_at) AS time, ifNull(pipeline, '') AS pipeline,\n"
            f"  countIf(status IN ('failed', 'timed_out')) / count() AS failure_rate\n"
            f"FROM runs FINAL\nWHERE $__timeFilter(first_event_at) AND status IN {TERMINAL}\n"
            f"  AND {RUN_FILTER}\nGROUP BY time, pipeline\nORDER BY time",
            "Failed or timed-out share of the finished runs, per pipeline.",
            unit="percentunit",
        ),
        Panel(
            "Run duration quantiles",
            "timeseries",
            f"SELECT $__timeInterval(first_event_at) AS time,\n"
            f"  quantile(0.5)(duration_s) AS p50, quantile(0.9)(duration_s) AS p90,\n"
            f"  quantile(0.99)(duration_s) AS p99\nFROM runs FINAL\n"
            f"WHERE $__timeFilter(first_event_at) AND duration_s IS NOT NULL\n"
            f"  AND {RUN_FILTER}\nGROUP BY time\nORDER BY time",
            unit="s",
        ),
        Panel(
            "Daily failure rate, all branches (pipeline_daily)",
            "timeseries",
            "SELECT toDateTime(day) AS time, pipeline, failure_rate\n"
            "FROM pipeline_daily_trends\n"
            "WHERE $__dateFilter(day)\n"
            "  AND $__conditionalAll(pipeline IN (${pipeline:singlequote}), $pipeline)\n"
            "ORDER BY time",
            "From the daily materialized view: cheap over long ranges; has no branch.",
            unit="percentunit",
        ),
        Panel(
            "Daily p90 duration, all branches (pipeline_daily)",
            "timeseries",
            "SELECT toDateTime(day) AS time, pipeline, duration_p90_s AS p90\n"
            "FROM pipeline_daily_trends\n"
            "WHERE $__dateFilter(day)\n"
            "  AND $__conditionalAll(pipeline IN (${pipeline:singlequote}), $pipeline)\n"
            "ORDER BY time",
            unit="s",
        ),
        Panel(
            "Pipelines",
            "table",
            f"SELECT ifNull(pipeline, '') AS pipeline, ifNull(branch, '') AS branch,"
            f" count() AS runs,\n"
            f"  countIf(status IN ('failed', 'timed_out')) AS failed,\n"
            f"  round(failed / runs, 3) AS failure_rate,\n"
            f"  round(quantile(0.5)(duration_s), 1) AS p50_s, round(quantile(0.9)(duration_s),"
            f" 1) AS p90_s,\n"
            f"  argMax(run_id, first_event_at) AS latest_run\n"
            f"FROM runs FINAL\nWHERE $__timeFilter(first_event_at) AND status IN {TERMINAL}\n"
            f"  AND {RUN_FILTER}\nGROUP BY pipeline, branch\nORDER BY failure_rate DESC, runs DESC",
            links=["latest_run"],
            width=24,
        ),
        Panel(
            "Slowest stages (p90)",
            "barchart",
            f"SELECT name AS stage, round(quantile(0.9)(duration_s), 1) AS p90_s\n"
            f"FROM stages FINAL\nWHERE $__timeFilter(updated_at) AND duration_s IS NOT NULL\n"
            f"  AND {RUN_FILTER}\nGROUP BY stage\nORDER BY p90_s DESC\nLIMIT 15",
            unit="s",
            width=24,
        ),
    ]
    return dashboard(
        "sentinel-pipeline-trends",
        "Sentinel / Pipeline trends",
        "Failure rate and duration quantiles per pipeline and branch.",
        panels,
    )


def tests_dashboard() -> dict[str, Any]:
    selection = f"t.run_id IN ({RUNS_OF_SELECTION})"
    panels = [
        Panel(
            "Flakiest tests",
            "table",
            f"SELECT suite, name, count() AS flaky_commits, sum(fails) AS failures,\n"
            f"  sum(passes) AS passes, any(failed_run) AS a_failed_run\nFROM (\n"
            f"  SELECT t.suite AS suite, t.name AS name,\n"
            f"    if(ifNull(r.commit_sha, '') = '', t.run_id, r.commit_sha) AS commit,\n"
            f"    countIf(t.status = 'passed') AS passes,\n"
            f"    countIf(t.status IN ('failed', 'error')) AS fails,\n"
            f"    anyIf(t.run_id, t.status IN ('failed', 'error')) AS failed_run\n"
            f"  FROM test_results AS t\n"
            f"  LEFT JOIN (SELECT run_id, commit_sha FROM runs FINAL) AS r ON t.run_id = r.run_id\n"
            f"  WHERE $__timeFilter(t.event_time) AND {selection}\n"
            f"  GROUP BY suite, name, commit\n  HAVING passes > 0 AND fails > 0\n)\n"
            f"GROUP BY suite, name\nORDER BY flaky_commits DESC, failures DESC\nLIMIT 50",
            "Tests that passed and failed on the same commit (across runs, or a pass on "
            "retry); a run without a known commit counts as its own commit.",
            links=["a_failed_run"],
            width=24,
        ),
        Panel(
            "Slowest tests",
            "table",
            f"SELECT suite, name, count() AS results,\n"
            f"  round(quantileExact(0.5)(duration_s), 3) AS p50_s,\n"
            f"  round(quantileExact(0.9)(duration_s), 3) AS p90_s,\n"
            f"  round(max(duration_s), 3) AS max_s, argMax(run_id, duration_s) AS slowest_run\n"
            f"FROM test_results AS t\n"
            f"WHERE $__timeFilter(t.event_time) AND duration_s IS NOT NULL AND {selection}\n"
            f"GROUP BY suite, name\nORDER BY p50_s DESC, max_s DESC\nLIMIT 50",
            links=["slowest_run"],
            width=24,
        ),
        Panel(
            "Test failure rate",
            "timeseries",
            f"SELECT $__timeInterval(t.event_time) AS time,\n"
            f"  countIf(status IN ('failed', 'error')) / count() AS failure_rate\n"
            f"FROM test_results AS t\nWHERE $__timeFilter(t.event_time) AND {selection}\n"
            f"GROUP BY time\nORDER BY time",
            unit="percentunit",
        ),
        Panel(
            "Runs with a flaky test per day (test_daily)",
            "timeseries",
            "SELECT toDateTime(day) AS time, sum(flaky_runs) AS flaky_runs\n"
            "FROM test_daily_trends\nWHERE $__dateFilter(day)\nGROUP BY time\nORDER BY time",
            "From the daily materialized view, all pipelines.",
        ),
    ]
    return dashboard(
        "sentinel-tests",
        "Sentinel / Flaky and slow tests",
        "Flaky tests (pass and fail on one commit), slowest tests, test failure rate.",
        panels,
    )


def infrastructure() -> dict[str, Any]:
    node = "if(a.node != '', a.node, ifNull(p.pod_node, ''))"  # the pod's node from k8s_events
    pod_nodes = (
        "LEFT JOIN (\n"
        "  SELECT concat(namespace, '/', name) AS subject, argMax(node, event_time) AS pod_node\n"
        "  FROM k8s_events WHERE kind = 'Pod' AND node != '' GROUP BY subject\n"
        ") AS p ON a.subject = p.subject\n"
        "LEFT JOIN (SELECT run_id, namespace FROM runs FINAL) AS r ON a.run_id = r.run_id\n"
    )
    where = (
        f"WHERE a.category = 'infra' AND $__timeFilter(a.window_start)\n"
        f"  AND a.run_id IN ({RUNS_OF_SELECTION})\n"
    )
    panels = [
        Panel(
            "Infrastructure anomalies by node",
            "barchart",
            f"SELECT {node} AS node, count() AS anomalies\nFROM anomalies AS a FINAL\n{pod_nodes}"
            f"{where}GROUP BY node\nORDER BY anomalies DESC\nLIMIT 20",
            "OOMKilled, evictions, image pulls, scheduling, crash loops, node NotReady... by the "
            "node in the evidence, else the node the pod ran on ('' when unknown).",
        ),
        Panel(
            "Infrastructure anomalies by namespace",
            "barchart",
            f"SELECT ifNull(r.namespace, '') AS namespace, count() AS anomalies\n"
            f"FROM anomalies AS a FINAL\n{pod_nodes}{where}"
            f"GROUP BY namespace\nORDER BY anomalies DESC\nLIMIT 20",
        ),
        Panel(
            "Infrastructure anomalies by type",
            "timeseries",
            f"SELECT $__timeInterval(a.window_start) AS time, a.type AS type,"
            f" count() AS anomalies\n"
            f"FROM anomalies AS a FINAL\n{pod_nodes}{where}GROUP BY time, type\nORDER BY time",
            width=24,
        ),
        Panel(
            "Recent infrastructure anomalies",
            "table",
            f"SELECT a.window_start AS at, a.run_id AS run_id, a.type AS type,"
            f" a.severity AS severity,\n"
            f"  {node} AS node, ifNull(r.namespace, '') AS namespace, a.subject AS subject,\n"
            f"  a.summary AS summary\nFROM anomalies AS a FINAL\n{pod_nodes}{where}"
            f"ORDER BY at DESC\nLIMIT 100",
            links=["run_id"],
            width=24,
        ),
        Panel(
            "Warning events by reason",
            "timeseries",
            "SELECT $__timeInterval(event_time) AS time, reason, count() AS events\n"
            "FROM k8s_events\nWHERE $__timeFilter(event_time) AND kind = 'Event' AND reason != ''\n"
            "GROUP BY time, reason\nORDER BY time",
            "Kubernetes Events about the watched objects (FailedScheduling, BackOff, Evicted...).",
            width=24,
        ),
    ]
    return dashboard(
        "sentinel-infrastructure",
        "Sentinel / Infrastructure anomalies",
        "Infrastructure-caused problems of runs by node and namespace.",
        panels,
    )


def alert_deliveries() -> dict[str, Any]:
    run_of = (
        "LEFT JOIN (SELECT anomaly_id, run_id FROM anomalies FINAL) AS an\n"
        "  ON an.anomaly_id = d.anomaly_ids[1]\n"
    )
    panels = [
        Panel(
            "Deliveries by outcome",
            "timeseries",
            "SELECT $__timeInterval(attempted_at) AS time, outcome, count() AS attempts\n"
            "FROM alert_deliveries FINAL\nWHERE $__timeFilter(attempted_at)\n"
            "GROUP BY time, outcome\nORDER BY time",
            "Every send attempt: sent, failed, retrying, suppressed (silenced), superseded "
            "(decided again after a restart).",
            width=24,
        ),
        Panel(
            "By channel",
            "table",
            "SELECT channel, count() AS attempts, countIf(outcome = 'sent') AS sent,\n"
            "  countIf(outcome = 'failed') AS failed, countIf(outcome = 'retrying') AS retried,\n"
            "  countIf(outcome = 'suppressed') AS suppressed, max(attempted_at) AS last_attempt\n"
            "FROM alert_deliveries FINAL\nWHERE $__timeFilter(attempted_at)\n"
            "GROUP BY channel\nORDER BY attempts DESC",
        ),
        Panel(
            "Failed and retried deliveries",
            "table",
            f"SELECT d.attempted_at AS at, d.channel AS channel, d.attempt AS attempt,\n"
            f"  d.outcome AS outcome, d.status_code AS status_code, d.error AS error,\n"
            f"  ifNull(an.run_id, '') AS run_id\nFROM alert_deliveries AS d FINAL\n{run_of}"
            f"WHERE $__timeFilter(d.attempted_at)\n"
            f"  AND d.outcome IN ('failed', 'retrying', 'superseded')\n"
            f"ORDER BY at DESC\nLIMIT 100",
            links=["run_id"],
        ),
    ]
    return dashboard(
        "sentinel-alert-deliveries",
        "Sentinel / Alert deliveries",
        "What the alert dispatcher sent, to which channel, and what failed.",
        panels,
    )


PROMETHEUS_NOTE = """\
**Not in ClickHouse — scrape `/metrics` (port `ops`, every component) with Prometheus for:**

- **Consumer-group lag** of the worker, sink and alert dispatcher (a Kafka exporter, or the
  broker's own metrics): ClickHouse only sees what was already written.
- **Dead letters**: `sentinel_dead_letters_total{component}` — the `sentinel.dlq` topic is not
  stored in ClickHouse.
- Publish failures (`sentinel_publish_failures_total`), webhooks by outcome
  (`sentinel_webhooks_total`), the webhook spool (`sentinel_webhook_spool_pending`), watch
  restarts and log streams (`sentinel_k8s_*`, `sentinel_log_*`).

The panels here read what the tables themselves show: rows written per interval, how long a
message took from the producer to the table, how fresh each table is, and its size.
"""


def pipeline_health() -> dict[str, Any]:
    tables = ["runs", "stages", "k8s_events", "log_lines", "test_results", "anomalies"]
    tables.append("alert_deliveries")
    insert_rate = "\nUNION ALL\n".join(
        f"SELECT $__timeInterval(ingested_at) AS time, '{t}' AS table, count() AS rows\n"
        f"FROM {t} WHERE $__timeFilter(ingested_at) GROUP BY time"
        for t in tables
    )
    delays = "\nUNION ALL\n".join(
        f"SELECT '{t}' AS table, dateDiff('millisecond', received_at, ingested_at) / 1000 AS d\n"
        f"FROM {t} WHERE $__timeFilter(ingested_at)"
        for t in ("k8s_events", "log_lines", "test_results")
    )
    freshness = "\nUNION ALL\n".join(
        f"SELECT '{t}' AS table, max(ingested_at) AS last_write, count() AS rows FROM {t}"
        for t in tables
    )
    panels = [
        Panel(
            "Insert rate (rows written per interval)",
            "timeseries",
            f"SELECT time, table, rows FROM (\n{insert_rate}\n)\nORDER BY time",
            "Rows the sink wrote, by table (ingested_at).",
            width=24,
        ),
        Panel(
            "Delay from producer to table",
            "table",
            f"SELECT table, count() AS rows, round(quantile(0.5)(d), 3) AS p50_s,\n"
            f"  round(quantile(0.99)(d), 3) AS p99_s, round(max(d), 3) AS max_s\nFROM (\n"
            f"{delays}\n)\nGROUP BY table\nORDER BY table",
            "received_at (the producer read it) to ingested_at (the sink wrote it): Kafka, the "
            "worker where it applies, and the sink's batch window.",
        ),
        Panel(
            "Freshness",
            "table",
            f"SELECT table, last_write, dateDiff('second', last_write, now64(3)) AS seconds_ago,\n"
            f"  rows\nFROM (\n{freshness}\n)\nORDER BY table",
            "The newest row of each table; a table that stops growing while input flows means "
            "a stuck sink (or consumer) — check its lag in Prometheus.",
        ),
        Panel(
            "Storage",
            "table",
            "SELECT table, sum(rows) AS rows, sum(data_compressed_bytes) AS compressed_bytes,\n"
            "  sum(data_uncompressed_bytes) AS uncompressed_bytes,\n"
            "  round(uncompressed_bytes / greatest(compressed_bytes, 1), 1) AS ratio\n"
            "FROM system.parts\nWHERE active AND database = currentDatabase()\n"
            "GROUP BY table\nORDER BY compressed_bytes DESC",
            "Active parts of each table (ClickHouse system.parts).",
            unit=None,
        ),
        Panel("Lag and dead letters: Prometheus", "text", text=PROMETHEUS_NOTE),
    ]
    return dashboard(
        "sentinel-pipeline-health",
        "Sentinel / Pipeline health",
        "Insert rate, delay and freshness of the tables; what needs Prometheus instead.",
        panels,
    )


DASHBOARDS = {
    "run-overview.json": run_overview,
    "pipeline-trends.json": pipeline_trends,
    "tests.json": tests_dashboard,
    "infrastructure.json": infrastructure,
    "alert-deliveries.json": alert_deliveries,
    "pipeline-health.json": pipeline_health,
}


def rendered() -> dict[str, str]:
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, text in rendered().items():
        path = OUT / name
        if path.is_file() and path.read_text() == text:
            continue
        if "--check" in argv:
            stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print(f"deploy/grafana/dashboards differ: {stale}; run tools/build_dashboards.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
