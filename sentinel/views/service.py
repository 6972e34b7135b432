"""`ReadService`: every read the API and the pages make, one method each."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.messages import Anomaly, RunState
from schemas.utc import as_utc
from sentinel.queries import anomalies as aq
from sentinel.queries import compare as cq
from sentinel.queries import logs as lq
from sentinel.queries import pipelines as pq
from sentinel.queries import tests as tq
from sentinel.queries import timeline as tl
from sentinel.queries.common import BadRequest, decode_cursor, encode_cursor, in_store_range
from sentinel.queries.models import (
    AnomalyPage,
    Comparison,
    FlakyTest,
    LogLineView,
    LogPage,
    PipelineSummary,
    PipelineTrends,
    RunPage,
    RunSummary,
    TestCase,
    TestCounts,
    TestPage,
    Timeline,
)
from sentinel.run_queries import BadCursor, RunFilters, get_run_sql, list_runs_sql
from sentinel.run_queries import encode_cursor as run_cursor
from sentinel.views.reader import Reader
from sinks.clickhouse.rows import row_to_run_state

DENSITY_BUCKETS = 120
MAX_LOG_LINES = 200_000  # lines of one run read for its log tab, density and compare


ANNOTATED_LINES_KEPT = 400_000  # log lines of ended runs whose levels and templates are kept


class LineCache:
    """Annotated log lines of ended runs, most recently used first, up to `capacity` lines in
    all: a finished run's lines do not change, so its levels and templates are computed once."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[object, ...], list[LogLineView]] = OrderedDict()
        self._lines = 0

    def get(self, key: tuple[object, ...]) -> list[LogLineView] | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: tuple[object, ...], lines: list[LogLineView]) -> None:
        if len(lines) > self.capacity or key in self._entries:
            return
        self._entries[key] = lines
        self._lines += len(lines)
        while self._lines > self.capacity:
            _old, dropped = self._entries.popitem(last=False)
            self._lines -= len(dropped)


def _lines_key(run: RunState, rows: list[dict[str, object]]) -> tuple[object, ...] | None:
    """What identifies a run's stored lines: only for an ended run (no more lines come), and
    with the count and the last line, so lines stored late make a new entry."""
    if not run.status.terminal or not rows:
        return None
    last = rows[-1]
    return (run.run_id, run.version, len(rows), last["n"], last["event_time"], last["line"])


class NotFound(LookupError):
    """What was asked for does not exist; the text says what."""


@dataclass(frozen=True)
class RunData:
    """What the run page shows at once: the run, its anomalies, tests and log lines."""

    run: RunState
    anomalies: list[Anomaly]
    tests: list[TestCase]  # empty unless asked for (`run_data(tests=True)`)
    lines: list[LogLineView]
    test_counts: TestCounts


class ReadService:
    def __init__(self, reader: Reader, max_log_lines: int = MAX_LOG_LINES) -> None:
        self.reader = reader
        self.db = reader.database
        self.max_log_lines = max_log_lines
        self._annotated = LineCache(ANNOTATED_LINES_KEPT)

    # -- runs ---------------------------------------------------------------------------------

    async def find_run(self, run_id: str) -> RunState | None:
        rows = await self.reader.rows(get_run_sql(self.db), {"run_id": run_id})
        return row_to_run_state(rows[0]) if rows else None

    async def run(self, run_id: str) -> RunState:
        found = await self.find_run(run_id)
        if found is None:
            raise NotFound(f"no run with id {run_id!r}")
        return found

    async def runs(self, filters: RunFilters, limit: int, cursor: str | None) -> RunPage:
        for name in ("since", "until"):
            value = getattr(filters, name)
            if value is not None:
                in_store_range(value, name)
        try:
            sql, params = list_runs_sql(self.db, filters, limit, cursor)
        except BadCursor as exc:
            raise BadRequest(f"cursor: {exc}") from exc
        rows = await self.reader.rows(sql, params)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = run_cursor(as_utc(rows[-1]["sort_at"]), rows[-1]["run_id"])
        states = [row_to_run_state(row) for row in rows]
        counts: dict[str, int] = {}
        if states:
            found = await self.reader.rows(
                aq.anomaly_counts_sql(self.db), {"ids": [s.run_id for s in states]}
            )
            counts = {row["run_id"]: int(row["anomalies"]) for row in found}
        items = [
            RunSummary(**s.model_dump(), anomaly_count=counts.get(s.run_id, 0)) for s in states
        ]
        return RunPage(items=items, next_cursor=next_cursor)

    async def run_anomalies(self, run_id: str) -> list[Anomaly]:
        rows = await self.reader.rows(aq.run_anomalies_sql(self.db), {"run_id": run_id})
        return [aq.row_to_anomaly(row) for row in rows]

    async def test_cases(self, run_id: str, anomalies: list[Anomaly]) -> list[TestCase]:
        rows = await self.reader.rows(tq.run_tests_sql(self.db), {"run_id": run_id})
        return tq.test_cases([tq.row_to_result(row) for row in rows], anomalies)

    async def log_lines(self, run: RunState) -> list[LogLineView]:
        sql, params = lq.run_lines_sql(self.db, run, self.max_log_lines)
        rows = await self.reader.rows(sql, params)
        key = _lines_key(run, rows)
        cached = self._annotated.get(key) if key is not None else None
        if cached is not None:
            return cached
        # Level detection and template mining are CPU work: off the event loop, like queries.
        lines = await asyncio.to_thread(lq.annotate, rows)
        if key is not None:
            self._annotated.put(key, lines)
        return lines

    async def run_data(self, run_id: str, tests: bool = False, counts: bool = True) -> RunData:
        """The run with its anomalies and log lines; with `tests` its test cases, with `counts`
        (cheaper: no cases built) only how many tests per status."""
        run = await self.run(run_id)
        params = {"run_id": run_id}
        if tests:
            tests_query = self.reader.rows(tq.run_tests_sql(self.db), params)
        elif counts:  # counted by the store: no need to fetch every result
            tests_query = self.reader.rows(tq.run_test_counts_sql(self.db), params)
        else:
            tests_query = _none()
        anomalies, rows, lines = await asyncio.gather(
            self.run_anomalies(run_id), tests_query, self.log_lines(run)
        )
        cases: list[TestCase] = []
        if tests:
            cases = tq.test_cases([tq.row_to_result(row) for row in rows], anomalies)
        summary = tq.counts(cases) if tests else tq.row_to_counts(rows)
        return RunData(run, anomalies, cases, lines, summary)

    # -- one run's parts ----------------------------------------------------------------------

    async def tests_page(
        self, run_id: str, status: str | None, q: str | None, limit: int, cursor: str | None
    ) -> TestPage:
        run = await self.run(run_id)
        cases = await self.test_cases(run.run_id, await self.run_anomalies(run.run_id))
        after = decode_cursor(cursor, (int, str)) if cursor else None
        chosen = [case for case in cases if tq.matches(case, status, q)]
        items, last = tq.page(chosen, after, limit)
        return TestPage(
            run_id=run.run_id,
            counts=tq.counts(cases),
            items=items,
            next_cursor=encode_cursor(*last) if last else None,
        )

    async def logs_page(
        self, run_id: str, filters: lq.LogFilters, limit: int, cursor: str | None
    ) -> LogPage:
        run = await self.run(run_id)
        lines = await self.log_lines(run)
        after = decode_cursor(cursor, (int,))[0] if cursor else 0
        items, last = lq.page(lines, filters, after, limit)
        return LogPage(
            run_id=run.run_id,
            items=items,
            next_cursor=encode_cursor(last) if last is not None else None,
            total_lines=len(lines),
        )

    async def timeline(
        self, data: RunData, start: datetime | None = None, end: datetime | None = None
    ) -> Timeline:
        run = data.run
        rows = await self.reader.rows(
            tl.k8s_rows_sql(self.db), {"keys": sorted({run.run_id, *run.correlation_keys})}
        )
        return build_timeline(data, rows, start, end)

    async def compare(self, data: RunData, with_id: str | None) -> Comparison:
        run = data.run
        chosen = "given"
        if with_id is not None:
            base = await self.find_run(with_id)
            if base is None:
                raise NotFound(f"no run with id {with_id!r} to compare with")
        else:
            chosen = "last_successful"
            sql, params = cq.baseline_sql(self.db, run)
            rows = await self.reader.rows(sql, params)
            if not rows:
                what = f"pipeline {run.pipeline!r} on branch {run.branch!r}"
                return cq.no_baseline(run, f"no earlier successful run of {what}")
            base = row_to_run_state(rows[0])
        base_anomalies = await self.run_anomalies(base.run_id)
        base_tests, base_lines = await asyncio.gather(
            self.test_cases(base.run_id, base_anomalies), self.log_lines(base)
        )
        return await asyncio.to_thread(
            cq.compare, run, base, chosen, (data.tests, base_tests), (data.lines, base_lines)
        )

    # -- across runs --------------------------------------------------------------------------

    async def anomalies(
        self, filters: aq.AnomalyFilters, limit: int, cursor: str | None
    ) -> AnomalyPage:
        for name in ("since", "until"):
            value = getattr(filters, name)
            if value is not None:
                in_store_range(value, name)
        sql, params = aq.list_anomalies_sql(self.db, filters, limit, cursor)
        rows = await self.reader.rows(sql, params)
        items = [aq.row_to_item(row) for row in rows[:limit]]
        return AnomalyPage(
            items=items, next_cursor=aq.next_cursor(items) if len(rows) > limit else None
        )

    async def pipelines(self, days: int, limit: int) -> list[PipelineSummary]:
        rows = await self.reader.rows(
            pq.pipelines_sql(self.db), {"since": since_days(days), "limit": limit}
        )
        return [pq.row_to_pipeline(row) for row in rows]

    async def trends(
        self, pipeline: str, repository: str | None, days: int, limit: int
    ) -> PipelineTrends:
        params = pq.pipeline_params(pipeline, repository, since_days(days))
        found = await self.reader.rows(pq.pipeline_exists_sql(self.db), params)
        if not found or not int(found[0]["runs"]):
            raise NotFound(f"no runs of pipeline {pipeline!r}")
        daily, slowest, flaky = await asyncio.gather(
            self.reader.rows(pq.daily_sql(self.db), params),
            self.reader.rows(pq.slowest_tests_sql(self.db), {**params, "limit": limit}),
            self.reader.rows(pq.flaky_tests_sql(self.db, True), {**params, "limit": limit}),
        )
        return PipelineTrends(
            pipeline=pipeline,
            days=days,
            daily=[pq.row_to_day(row) for row in daily],
            slowest=[pq.row_to_stat(row) for row in slowest],
            flakiest=[pq.row_to_flaky(row) for row in flaky],
        )

    async def flaky(self, days: int, pipeline: str | None, limit: int) -> list[FlakyTest]:
        params = pq.pipeline_params(pipeline or "", None, since_days(days))
        sql = pq.flaky_tests_sql(self.db, pipeline is not None)
        rows = await self.reader.rows(sql, {**params, "limit": limit})
        return [pq.row_to_flaky(row) for row in rows]


async def _none() -> list[dict[str, object]]:
    return []


def since_days(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def build_timeline(
    data: RunData, k8s_rows: list[dict[str, object]], start: datetime | None, end: datetime | None
) -> Timeline:
    """The timeline of `data` within [start, end] (default: the whole run)."""
    run = data.run
    span_start, span_end = tl.run_span(run, run.pods)
    window_start = as_utc(start) if start is not None else span_start
    window_end = as_utc(end) if end is not None else span_end
    if window_end <= window_start:
        raise BadRequest("to: must be later than from")
    bucket_s, buckets = lq.density(data.lines, window_start, window_end, DENSITY_BUCKETS)
    return Timeline(
        run_id=run.run_id,
        status=run.status.value,
        start=span_start,
        end=span_end,
        window_start=window_start,
        window_end=window_end,
        bucket_s=bucket_s,
        stages=tl.stage_bars(run),
        pods=tl.pod_lanes(run, k8s_rows),
        anomalies=tl.markers(data.anomalies, run),
        log_density=buckets,
    )
