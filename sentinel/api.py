"""The HTTP API: health, readiness, metrics, the read API over runs, and the webhook routes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from runtime import metrics as _metrics  # noqa: F401 - registers every collector for /metrics
from schemas.messages import Anomaly, RunState, RunStatus
from sentinel.run_queries import BadCursor, RunFilters, encode_cursor, get_run_sql, list_runs_sql
from sinks.clickhouse.rows import row_to_run_state


class RunStore(Protocol):
    @property
    def database(self) -> str: ...

    def query_rows(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...

    def ping(self) -> bool: ...


class RunPage(BaseModel):
    items: list[RunState]
    next_cursor: str | None = None


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# Run-tracker bookkeeping: part of the topic message, not of what users see.
HIDDEN_RUN_FIELDS = frozenset({"merge_keys", "watermark"})


def run_view(run: RunState) -> dict[str, Any]:
    """A run as the API (and `sentinel analyze --json`) shows it."""
    return run.model_dump(mode="json", exclude=set(HIDDEN_RUN_FIELDS))


def runs_router(store: RunStore, page_size_max: int) -> APIRouter:
    router = APIRouter(tags=["runs"])
    _add_run_list(router, store, page_size_max)
    _add_run_detail(router, store)
    return router


def _add_run_list(router: APIRouter, store: RunStore, page_size_max: int) -> None:
    @router.get(
        "/api/runs",
        response_model=RunPage,
        response_model_exclude={"items": {"__all__": set(HIDDEN_RUN_FIELDS)}},
        summary="List runs, newest first",
    )
    async def list_runs(
        status: RunStatus | None = None,
        provider: str | None = None,
        repository: str | None = None,
        pipeline: str | None = None,
        branch: str | None = None,
        since: Annotated[
            datetime | None, Query(description="created at or after (RFC 3339)")
        ] = None,
        until: Annotated[datetime | None, Query(description="created before (RFC 3339)")] = None,
        # A default-value Query, not Annotated: the bound is a closure variable, which a
        # postponed (string) annotation could not resolve.
        limit: int = Query(50, ge=1, le=page_size_max),
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> RunPage:
        filters = RunFilters(
            status=status.value if status else None,
            provider=provider,
            repository=repository,
            pipeline=pipeline,
            branch=branch,
            since=_aware(since),
            until=_aware(until),
        )
        try:
            sql, params = list_runs_sql(store.database, filters, limit, cursor)
        except BadCursor as exc:
            raise HTTPException(400, str(exc)) from exc
        rows = await asyncio.to_thread(store.query_rows, sql, params)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(_aware(last["sort_at"]), last["run_id"])
        return RunPage(items=[row_to_run_state(row) for row in rows], next_cursor=next_cursor)


def _add_run_detail(router: APIRouter, store: RunStore) -> None:
    # Before the run route: its {run_id:path} would swallow the "/anomalies" suffix.
    @router.get(
        "/api/runs/{run_id:path}/anomalies",
        response_model=list[Anomaly],
        summary="The anomalies found for one run (structure, infra, test, app)",
        responses={404: {"description": "no run with this id"}},
    )
    async def run_anomalies(run_id: str) -> list[Anomaly]:
        params = {"run_id": run_id}
        runs = await asyncio.to_thread(store.query_rows, get_run_sql(store.database), params)
        if not runs:
            raise HTTPException(404, f"no run with id {run_id!r}")
        rows = await asyncio.to_thread(store.query_rows, run_anomalies_sql(store.database), params)
        return [row_to_anomaly(row) for row in rows]

    @router.get(
        "/api/runs/{run_id:path}",
        response_model=RunState,
        response_model_exclude=set(HIDDEN_RUN_FIELDS),
        summary="One run by id",
        responses={404: {"description": "no run with this id"}},
    )
    async def get_run(run_id: str) -> RunState:
        rows = await asyncio.to_thread(
            store.query_rows, get_run_sql(store.database), {"run_id": run_id}
        )
        if not rows:
            raise HTTPException(404, f"no run with id {run_id!r}")
        return row_to_run_state(rows[0])


def create_api(
    store: RunStore,
    broker_ready: Callable[[], bool],
    page_size_max: int = 500,
    extra_routers: list[APIRouter] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Automation Run Sentinel",
        version="0.1.0",
        description="Runs of CI and test automation, their stages and status.",
    )

    @app.get("/health", tags=["ops"], summary="The process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], summary="Broker and store reachable (else 503 naming which)")
    async def ready() -> JSONResponse:
        broker_ok, store_ok = await asyncio.gather(
            asyncio.to_thread(_safe, broker_ready), asyncio.to_thread(_safe, store.ping)
        )
        failing = [name for name, ok in (("broker", broker_ok), ("store", store_ok)) if not ok]
        if failing:
            return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(runs_router(store, page_size_max))
    for router in extra_routers or []:
        app.include_router(router)
    return app


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def run_anomalies_sql(database: str) -> str:
    return (
        "SELECT anomaly_id, run_id, category, type, severity, subject, summary, evidence,"
        " window_start, window_end, detected_at"
        f" FROM {database}.anomalies FINAL WHERE run_id = {{run_id:String}}"
        " ORDER BY window_start, type, subject"
    )


def row_to_anomaly(row: dict[str, Any]) -> Anomaly:
    data = dict(row)
    data["evidence"] = json.loads(data.get("evidence") or "{}")
    for name in ("window_start", "window_end", "detected_at"):
        data[name] = _aware(data[name])
    return Anomaly.model_validate(data)
