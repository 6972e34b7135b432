"""A run's log lines: the query, their numbering, levels and templates, filters and density.

A run's lines are those stored with its run id or with one of its correlation keys (the sink
stores lines as they come, before the worker has tied a pod to its run), within the run's time.
They are numbered 1.. by (time, namespace, pod, container, arrival): the numbers behind `#L<n>`
links, the same whatever filter is applied.

Lines the store holds without a level or template (nothing annotates them at ingest yet) get
them here, from the same pure code the worker uses: the level from `detect_level`, and for
warning and error lines a Drain template (`LogTemplateMiner`). Info lines are not mined: what
people look for in a run's log, and what compare reports as new, are error signatures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from processors.logs.levels import detect_level
from processors.logs.templates import LogTemplateMiner
from schemas.messages import RunState
from schemas.utc import as_utc
from sentinel.queries.common import ERROR_LEVELS, TIME_PARAM, aware
from sentinel.queries.models import DensityBucket, LogLineView, TemplateCount

MINED_LEVELS = frozenset({"warning", *ERROR_LEVELS})
LEVEL_FILTERS = {
    "error": frozenset(ERROR_LEVELS),
    "warning": MINED_LEVELS,
}


@dataclass(frozen=True)
class LogFilters:
    level: str | None = None  # "error" (error and worse) or "warning" (warning and worse)
    q: str | None = None  # case-insensitive substring of the line
    template_id: str | None = None
    pod: str | None = None
    container: str | None = None


def run_window(run: RunState) -> tuple[datetime, datetime | None]:
    """[start, end] of a run's data; end None while it is active (lines keep coming)."""
    start = as_utc(run.started_at or run.created_at or run.first_event_at)
    start = min(start, as_utc(run.first_event_at))
    if not run.status.terminal:
        return start, None
    end = as_utc(run.finished_at or run.updated_at)
    candidates = [end, as_utc(run.updated_at)]
    if run.last_activity_at is not None:
        candidates.append(as_utc(run.last_activity_at))
    return start, max(candidates)


def run_lines_sql(database: str, run: RunState, limit: int) -> tuple[str, dict[str, Any]]:
    """Every line of `run` (at most `limit`), numbered, oldest first."""
    start, end = run_window(run)
    params: dict[str, Any] = {
        "run_id": run.run_id,
        "keys": sorted({run.run_id, *run.correlation_keys}),
        "start": start,
        "limit": limit,
    }
    until = ""
    if end is not None:
        until = f" AND event_time <= {{end:{TIME_PARAM}}}"
        params["end"] = end
    sql = (
        "SELECT row_number() OVER (ORDER BY event_time, namespace, pod, container, received_at,"
        " line) AS n, event_time, namespace, pod, container, line, truncated, level,"
        f" template_id, template FROM {database}.log_lines"
        " WHERE (run_id = {run_id:String} OR correlation_key IN {keys:Array(String)})"
        f" AND event_time >= {{start:{TIME_PARAM}}}{until}"
        " ORDER BY n LIMIT {limit:UInt32}"
    )
    return sql, params


def annotate(rows: Sequence[dict[str, Any]]) -> list[LogLineView]:
    """Rows of `run_lines_sql` as lines with a level (and, for warnings and errors, a
    template), computing what the store does not hold."""
    lines: list[LogLineView] = []
    to_mine: list[int] = []
    for row in rows:
        level = str(row.get("level") or "") or (detect_level(str(row["line"])) or "")
        line = LogLineView(
            n=int(row["n"]),
            event_time=aware(row["event_time"]),
            namespace=str(row["namespace"]),
            pod=str(row["pod"]),
            container=str(row["container"]),
            level=level,
            template_id=str(row.get("template_id") or ""),
            template=str(row.get("template") or ""),
            line=str(row["line"]),
            truncated=bool(row.get("truncated")),
        )
        if not line.template_id and level in MINED_LEVELS:
            to_mine.append(len(lines))
        lines.append(line)
    if to_mine:
        mined = LogTemplateMiner().mine(lines[i].line for i in to_mine)
        for index, (template_id, template) in zip(to_mine, mined, strict=True):
            lines[index].template_id, lines[index].template = template_id, template
    return lines


def matches(line: LogLineView, filters: LogFilters) -> bool:
    if filters.level is not None and line.level not in LEVEL_FILTERS[filters.level]:
        return False
    if filters.template_id is not None and line.template_id != filters.template_id:
        return False
    if filters.pod is not None and line.pod != filters.pod:
        return False
    if filters.container is not None and line.container != filters.container:
        return False
    return not (filters.q and filters.q.casefold() not in line.line.casefold())


def page(
    lines: Sequence[LogLineView], filters: LogFilters, after: int, limit: int
) -> tuple[list[LogLineView], int | None]:
    """Matching lines numbered above `after`, at most `limit`; and the `after` of the next
    page (None at the end)."""
    out: list[LogLineView] = []
    for line in lines:
        if line.n <= after or not matches(line, filters):
            continue
        if len(out) == limit:
            return out, out[-1].n
        out.append(line)
    return out, None


def after_for(n: int, before: int) -> int:
    """The `after` of a page that starts `before` lines ahead of line `n` (a #L<n> link)."""
    return max(0, n - before - 1)


def is_error(line: LogLineView) -> bool:
    return line.level in ERROR_LEVELS


def density(
    lines: Iterable[LogLineView], start: datetime, end: datetime, buckets: int
) -> tuple[float, list[DensityBucket]]:
    """Lines and error lines per bucket over [start, end]: (bucket width in s, buckets)."""
    span = max((end - start).total_seconds(), 0.001)
    width = span / buckets
    origin = start.timestamp()
    counts = [0] * buckets
    errors = [0] * buckets
    for line in lines:
        offset = line.event_time.timestamp() - origin  # floats: this runs for every line
        if offset < 0 or offset > span:
            continue
        index = min(buckets - 1, int(offset / width))
        counts[index] += 1
        if line.level in ERROR_LEVELS:
            errors[index] += 1
    return width, [
        DensityBucket(start=start + timedelta(seconds=i * width), lines=counts[i], errors=errors[i])
        for i in range(buckets)
    ]


def template_counts(lines: Iterable[LogLineView]) -> list[TemplateCount]:
    """Templates of the lines, most frequent first."""
    seen: dict[str, TemplateCount] = {}
    for line in lines:
        if not line.template_id:
            continue
        count = seen.get(line.template_id)
        if count is None:
            count = seen[line.template_id] = TemplateCount(
                template_id=line.template_id, template=line.template, lines=0, errors=0
            )
        count.lines += 1
        count.errors += is_error(line)
    return sorted(seen.values(), key=lambda c: (-c.errors, -c.lines, c.template_id))
