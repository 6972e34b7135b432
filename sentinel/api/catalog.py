"""Across runs: `/api/anomalies`, `/api/tests/flaky`, `/api/pipelines[/{name}/trends]`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from schemas.messages import AnomalyCategory, Severity
from sentinel.api.errors import BAD_REQUEST, NOT_FOUND, Rfc3339
from sentinel.api.runs import Cursor
from sentinel.queries.anomalies import AnomalyFilters
from sentinel.queries.common import in_store_range
from sentinel.queries.models import AnomalyPage, FlakyTest, PipelineSummary, PipelineTrends
from sentinel.views.service import ReadService

Days = Annotated[int, Query(ge=1, le=3650, description="look back this many days")]
Name = Annotated[str | None, Query(max_length=500)]


def catalog_router(service: ReadService, page_size_max: int) -> APIRouter:
    router = APIRouter()
    _add_anomalies(router, service, page_size_max)
    _add_pipelines(router, service, page_size_max)
    return router


def _add_anomalies(router: APIRouter, service: ReadService, page_size_max: int) -> None:
    @router.get(
        "/api/anomalies",
        response_model=AnomalyPage,
        tags=["anomalies"],
        summary="Anomalies across runs, newest first",
        responses=BAD_REQUEST,
    )
    async def list_anomalies(
        type: Annotated[str | None, Query(max_length=200, description="e.g. oom_killed")] = None,
        category: AnomalyCategory | None = None,
        severity: Severity | None = None,
        pipeline: Name = None,
        run_id: Name = None,
        since: Annotated[Rfc3339 | None, Query(description="window start at or after")] = None,
        until: Annotated[Rfc3339 | None, Query(description="window start before")] = None,
        limit: int = Query(50, ge=1, le=page_size_max),
        cursor: Cursor = None,
    ) -> AnomalyPage:
        filters = AnomalyFilters(
            type=type,
            category=category.value if category else None,
            severity=severity.value if severity else None,
            pipeline=pipeline,
            run_id=run_id,
            since=in_store_range(since, "since") if since else None,
            until=in_store_range(until, "until") if until else None,
        )
        return await service.anomalies(filters, limit, cursor)

    @router.get(
        "/api/tests/flaky",
        response_model=list[FlakyTest],
        tags=["tests"],
        summary="Tests that passed and failed on one commit (or pass on retry), most first",
        responses=BAD_REQUEST,
    )
    async def flaky_tests(
        days: Days = 30, pipeline: Name = None, limit: int = Query(100, ge=1, le=page_size_max)
    ) -> list[FlakyTest]:
        return await service.flaky(days, pipeline, limit)


def _add_pipelines(router: APIRouter, service: ReadService, page_size_max: int) -> None:
    @router.get(
        "/api/pipelines",
        response_model=list[PipelineSummary],
        tags=["pipelines"],
        summary="Pipelines with runs in the window, worst failure rate first",
        responses=BAD_REQUEST,
    )
    async def list_pipelines(
        days: Days = 30, limit: int = Query(100, ge=1, le=page_size_max)
    ) -> list[PipelineSummary]:
        return await service.pipelines(days, limit)

    @router.get(
        "/api/pipelines/{name:path}/trends",
        response_model=PipelineTrends,
        tags=["pipelines"],
        summary="Failure rate and duration p50/p95 per day, slowest and flakiest tests",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def pipeline_trends(
        name: str,
        repository: Name = None,
        days: Days = 30,
        limit: int = Query(10, ge=1, le=100, description="tests per list"),
    ) -> PipelineTrends:
        return await service.trends(name, repository, days, limit)
