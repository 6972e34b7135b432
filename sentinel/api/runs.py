"""`/api/runs` and one run's parts: anomalies, tests, logs, timeline, compare."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.convertors import Convertor, register_url_convertor

from schemas.messages import Anomaly, RunState, RunStatus
from sentinel.api.errors import BAD_REQUEST, NOT_FOUND, Rfc3339
from sentinel.queries.common import in_store_range
from sentinel.queries.logs import LogFilters
from sentinel.queries.models import Comparison, LogPage, RunPage, TestPage, Timeline
from sentinel.run_queries import RunFilters
from sentinel.views.service import ReadService

# Run-tracker bookkeeping: part of the topic message, not of what users see.
HIDDEN_RUN_FIELDS = frozenset({"merge_keys", "watermark"})


class RunIdConvertor(Convertor[str]):
    """A run id (it may hold "/" and ":"), but not one ending in /junit: that path is the JUnit
    upload's (POST), and a GET there must not be taken for a run called "<id>/junit"."""

    regex = r".+(?<!/junit)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("run_id", RunIdConvertor())
RUN_PATH = "/api/runs/{run_id:run_id}"
CURSOR = r"^[A-Za-z0-9_-]{1,4000}$"  # base64url, as the API makes them
Cursor = Annotated[
    str | None, Query(description="next_cursor of the previous page", pattern=CURSOR)
]
BOTH = {**BAD_REQUEST, **NOT_FOUND}


def run_view(run: RunState) -> dict[str, Any]:
    """A run as the API (and `sentinel analyze --json`) shows it."""
    return run.model_dump(mode="json", exclude=set(HIDDEN_RUN_FIELDS))


def runs_router(service: ReadService, page_size_max: int) -> APIRouter:
    router = APIRouter(tags=["runs"])
    _add_run_list(router, service, page_size_max)
    _add_run_parts(router, service, page_size_max)
    _add_run_views(router, service)
    _add_run_detail(router, service)  # last: its {run_id:path} would swallow the suffixes
    return router


def _add_run_list(router: APIRouter, service: ReadService, page_size_max: int) -> None:
    @router.get(
        "/api/runs",
        response_model=RunPage,
        response_model_exclude={"items": {"__all__": set(HIDDEN_RUN_FIELDS)}},
        summary="List runs, newest first, with their anomaly counts",
        responses=BAD_REQUEST,
    )
    async def list_runs(
        status: RunStatus | None = None,
        provider: str | None = None,
        repository: str | None = None,
        pipeline: str | None = None,
        branch: str | None = None,
        since: Annotated[Rfc3339 | None, Query(description="created at or after")] = None,
        until: Annotated[Rfc3339 | None, Query(description="created before (RFC 3339)")] = None,
        # A default-value Query, not Annotated: the bound is a closure variable, which a
        # postponed (string) annotation could not resolve.
        limit: int = Query(50, ge=1, le=page_size_max),
        cursor: Cursor = None,
    ) -> RunPage:
        filters = RunFilters(
            status=status.value if status else None,
            provider=provider,
            repository=repository,
            pipeline=pipeline,
            branch=branch,
            since=in_store_range(since, "since") if since else None,
            until=in_store_range(until, "until") if until else None,
        )
        return await service.runs(filters, limit, cursor)


def _add_run_parts(router: APIRouter, service: ReadService, page_size_max: int) -> None:
    @router.get(
        f"{RUN_PATH}/anomalies",
        response_model=list[Anomaly],
        summary="The anomalies found for one run (structure, infra, test, app)",
        responses=BOTH,
    )
    async def run_anomalies(run_id: str) -> list[Anomaly]:
        run = await service.run(run_id)
        return await service.run_anomalies(run.run_id)

    @router.get(
        f"{RUN_PATH}/tests",
        response_model=TestPage,
        summary="One run's tests: failed first, flaky and infrastructure-caused marked",
        responses=BOTH,
    )
    async def run_tests(
        run_id: str,
        status: Literal["failed", "passed", "skipped", "error", "flaky", "infra"] | None = None,
        q: Annotated[str | None, Query(max_length=500, description="in suite::name")] = None,
        limit: int = Query(100, ge=1, le=page_size_max),
        cursor: Cursor = None,
    ) -> TestPage:
        return await service.tests_page(run_id, status, q, limit, cursor)

    @router.get(
        f"{RUN_PATH}/logs",
        response_model=LogPage,
        summary="One run's log lines, numbered (#L<n>), with level and template",
        responses=BOTH,
    )
    async def run_logs(
        run_id: str,
        level: Annotated[
            Literal["error", "warning"] | None,
            Query(description="error: error and worse; warning: warning and worse"),
        ] = None,
        q: Annotated[str | None, Query(max_length=500, description="text in the line")] = None,
        template: Annotated[str | None, Query(max_length=200, description="template id")] = None,
        pod: Annotated[str | None, Query(max_length=253)] = None,
        container: Annotated[str | None, Query(max_length=253)] = None,
        limit: int = Query(500, ge=1, le=max(page_size_max, 500)),
        cursor: Cursor = None,
    ) -> LogPage:
        filters = LogFilters(level, q, template, pod, container)
        return await service.logs_page(run_id, filters, limit, cursor)


def _add_run_views(router: APIRouter, service: ReadService) -> None:
    @router.get(
        f"{RUN_PATH}/timeline",
        response_model=Timeline,
        summary="What the run page's timeline draws: stages, pods, ticks, markers, log density",
        responses=BOTH,
    )
    async def run_timeline(
        run_id: str,
        start: Annotated[Rfc3339 | None, Query(alias="from", description="zoom: from")] = None,
        end: Annotated[Rfc3339 | None, Query(alias="to", description="zoom: to")] = None,
    ) -> Timeline:
        start = in_store_range(start, "from") if start else None
        end = in_store_range(end, "to") if end else None
        data = await service.run_data(run_id, counts=False)
        return await service.timeline(data, start, end)

    @router.get(
        f"{RUN_PATH}/compare",
        response_model=Comparison,
        summary="Compare with another run (default: the pipeline's last successful run on the"
        " same branch)",
        responses=BOTH,
    )
    async def run_compare(
        run_id: str,
        with_run: Annotated[
            str | None, Query(alias="with", max_length=1000, description="run id to compare with")
        ] = None,
    ) -> Comparison:
        data = await service.run_data(run_id, tests=True)
        return await service.compare(data, with_run)


def _add_run_detail(router: APIRouter, service: ReadService) -> None:
    @router.get(
        RUN_PATH,
        response_model=RunState,
        response_model_exclude=set(HIDDEN_RUN_FIELDS),
        summary="One run by id",
        responses=BOTH,
    )
    async def get_run(run_id: str) -> RunState:
        return await service.run(run_id)
