"""What the demo prints once the history is analysed (pure: report in, summary out).

Runs by status, anomalies by type with one line of evidence each (the first finding's summary
and its run), the alerts the console receiver was sent, and where to look next.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class Links:
    base: str  # http://127.0.0.1:8080
    featured_run: str
    query: str  # the example `sentinel query` command line
    doctor: str  # the `sentinel doctor` command line

    def view(self) -> dict[str, str]:
        return {
            "runs_page": f"{self.base}/runs",
            "run_page": f"{self.base}/runs/{quote(self.featured_run, safe='')}",
            "api_docs": f"{self.base}/docs",
            "query": self.query,
            "doctor": self.doctor,
        }


@dataclass
class Summary:
    runs_by_status: dict[str, int]
    anomalies_by_type: dict[str, dict[str, Any]]  # type -> {count, evidence, run_id}
    alerts: list[dict[str, Any]]
    expected_types: list[str]
    links: dict[str, str] = field(default_factory=dict)
    query_result: str | None = None

    @property
    def matches_expected(self) -> bool:
        return sorted(self.anomalies_by_type) == self.expected_types

    def view(self) -> dict[str, Any]:
        return {
            "runs_by_status": self.runs_by_status,
            "anomalies_by_type": self.anomalies_by_type,
            "alerts": self.alerts,
            "expected_anomaly_types": self.expected_types,
            "matches_expected": self.matches_expected,
            "links": self.links,
        }


def summarise(
    report: dict[str, Any], expected: dict[str, Any], links: Links | None = None
) -> Summary:
    """`report` as `sentinel analyze` builds it (runs, anomalies, alerts)."""
    statuses = Counter(str(run["status"]) for run in report["runs"])
    by_type: dict[str, dict[str, Any]] = {}
    for anomaly in sorted(report["anomalies"], key=lambda a: (a["type"], a["run_id"])):
        entry = by_type.setdefault(
            anomaly["type"],
            {"count": 0, "evidence": anomaly["summary"], "run_id": anomaly["run_id"]},
        )
        entry["count"] += 1
    alerts = [
        {
            "at": alert["at"],
            "receiver": alert["receiver"],
            "status": alert["status"],
            "title": alert["title"],
        }
        for alert in report["alerts"]
        if alert.get("channel") == "console"
    ]
    return Summary(
        runs_by_status=dict(sorted(statuses.items())),
        anomalies_by_type=by_type,
        alerts=alerts,
        expected_types=sorted({a["type"] for a in expected["anomalies"]}),
        links=links.view() if links else {},
    )


def render_text(summary: Summary, width: int = 100) -> str:
    runs = sum(summary.runs_by_status.values())
    lines = [f"Runs ({runs}): " + ", ".join(f"{n} {s}" for s, n in summary.runs_by_status.items())]
    lines.append("")
    total = sum(entry["count"] for entry in summary.anomalies_by_type.values())
    lines.append(f"Anomalies ({total}, {len(summary.anomalies_by_type)} types):")
    for kind, entry in sorted(summary.anomalies_by_type.items()):
        lines.append(f"  {kind} x{entry['count']}  run {entry['run_id']}")
        lines.append(f"      {_cut(entry['evidence'], width - 6)}")
    if not summary.matches_expected:
        missing = sorted(set(summary.expected_types) - set(summary.anomalies_by_type))
        extra = sorted(set(summary.anomalies_by_type) - set(summary.expected_types))
        lines.append(f"  NOT what the history holds: missing {missing}, unexpected {extra}")
    lines.append("")
    lines.append(f"Alerts the console receiver got ({len(summary.alerts)}):")
    for alert in summary.alerts:
        lines.append(f"  {alert['at'][:19]}  {_cut(alert['title'], width - 24)}")
    if summary.query_result:
        lines.append("")
        lines.append(f"Example query ({summary.links.get('query', '')}):")
        lines.extend("  " + row for row in summary.query_result.splitlines())
    return "\n".join(lines)


def render_links(links: dict[str, str]) -> str:
    return "\n".join(
        [
            f"  Runs:             {links['runs_page']}",
            f"  A run to look at: {links['run_page']}",
            f"  API docs:         {links['api_docs']}",
            f"  Query the store:  {links['query']}  (after Ctrl-C: the store is in use)",
            f"  Check the setup:  {links['doctor']}",
        ]
    )


def render_json(summary: Summary) -> str:
    return json.dumps(summary.view(), indent=2, sort_keys=True)


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
