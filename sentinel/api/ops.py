"""Operations: /health, /ready, /metrics and /api/stats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import BaseModel

from runtime import metrics as _metrics  # noqa: F401 - registers every collector for /metrics
from sentinel.kafka_offsets import ConsumerLagCollector, OffsetSnapshot, OffsetsProbe
from sentinel.queries.models import Reachability, Stats
from sentinel.queries.stats import (
    counts_by,
    deliveries_by_outcome_sql,
    group_stats,
    runs_by_status_sql,
    topic_stats,
)
from sentinel.views.reader import Reader


def package_version() -> str:
    try:
        return version("automation-run-sentinel")
    except PackageNotFoundError:
        return "0.0.0"


class Status(BaseModel):
    status: str


class NotReady(BaseModel):
    status: str
    failing: list[str]
    problems: dict[str, str] | None = None


def ops_router(
    reader: Reader,
    broker_ready: Callable[[], bool],
    probe: OffsetsProbe | None,
    components: Callable[[], Mapping[str, str]] | None = None,
) -> APIRouter:
    """`components` names what else must run for the service to be ready (the children of
    `sentinel up`) and what is wrong with each that is not."""
    router = APIRouter(tags=["ops"])
    started = datetime.now(UTC)
    started_clock = time.monotonic()
    local = CollectorRegistry(auto_describe=True)
    if probe is not None:
        local.register(ConsumerLagCollector(probe))

    async def reachable() -> tuple[bool, bool]:
        broker, store = await asyncio.gather(
            asyncio.to_thread(_safe, broker_ready), asyncio.to_thread(_safe, reader.store.ping)
        )
        return broker, store

    @router.get("/health", summary="The process is up", response_model=Status)
    async def health() -> Status:
        return Status(status="ok")

    @router.get(
        "/ready",
        summary="Broker and store reachable, every component running (else 503 naming which)",
        response_model=Status,
        responses={
            503: {
                "model": NotReady,
                "description": "broker or store unreachable, or a "
                "component of `sentinel up` down (being restarted)",
            }
        },
    )
    async def ready() -> JSONResponse:
        broker_ok, store_ok = await reachable()
        failing = [name for name, ok in (("broker", broker_ok), ("store", store_ok)) if not ok]
        problems = dict(components()) if components is not None else {}
        failing += [name for name in sorted(problems) if name not in failing]
        if failing:
            body: dict[str, Any] = {"status": "unavailable", "failing": failing}
            if problems:
                body["problems"] = problems
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready"})

    @router.get(
        "/metrics",
        summary="Prometheus metrics of this process, and consumer lag of every group",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "ok"}},
    )
    async def metrics() -> Response:
        own = await asyncio.to_thread(generate_latest, REGISTRY)
        lag = await asyncio.to_thread(generate_latest, local) if probe is not None else b""
        return Response(own + lag, media_type=CONTENT_TYPE_LATEST)

    @router.get("/api/stats", response_model=Stats, summary="Service statistics")
    async def stats() -> Stats:
        now = datetime.now(UTC)
        params = {"hour": now - timedelta(hours=1), "day": now - timedelta(days=1)}
        (broker_ok, store_ok), offsets = await asyncio.gather(
            reachable(),
            asyncio.to_thread(probe.snapshot) if probe else _no_offsets(),
        )
        runs: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        if store_ok:
            runs, deliveries = await asyncio.gather(
                reader.rows(runs_by_status_sql(reader.database), params),
                reader.rows(deliveries_by_outcome_sql(reader.database), {"day": params["day"]}),
            )
        return Stats(
            version=package_version(),
            started_at=started,
            uptime_s=round(time.monotonic() - started_clock, 3),
            broker=Reachability(reachable=broker_ok),
            store=Reachability(reachable=store_ok),
            topics=topic_stats(offsets.ends),
            consumer_groups=group_stats(offsets.groups, offsets.ends),
            dlq_messages=probe.dlq_messages(offsets) if probe else 0,
            runs_last_hour=counts_by(runs, "status", "last_hour"),
            runs_last_day=counts_by(runs, "status", "last_day"),
            alert_deliveries_last_day=counts_by(deliveries, "outcome", "last_day"),
            alert_deliveries_total=counts_by(deliveries, "outcome", "total"),
        )

    return router


async def _no_offsets() -> OffsetSnapshot:
    return OffsetSnapshot(reachable=False)


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False
