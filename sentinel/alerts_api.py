"""HTTP API of alerting: `GET /api/alerts` (delivery attempts) and `/api/silences`.

Included into the app by `sentinel.stack.StoreOwner.api` with one router. Deliveries are read
from ClickHouse (`alert_deliveries`, written by the sink from `sentinel.alert-deliveries`),
newest first, keyset-paginated on (attempted_at, channel, delivery_id, attempt). Silences are
read from and written to their compacted topic (`sinks.alerts.silence_store`), so they need the
broker, not the store; a client's mistake is a 400 with the reason, an unknown id a 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from confluent_kafka import KafkaException
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from schemas.messages import AlertDelivery, DeliveryOutcome, LabelMatcher, Silence
from sentinel.api import RunStore
from sentinel.api.errors import Rfc3339
from sentinel.queries.alerts import deliveries_cursor, deliveries_sql
from sinks.alerts.silence_rules import SilenceError, new_silence, parse_duration, parse_matchers
from sinks.alerts.silence_store import SilenceStore

SilenceState = Literal["active", "pending", "expired"]


class DeliveryPage(BaseModel):
    items: list[AlertDelivery]
    next_cursor: str | None = None


class SilenceView(Silence):
    state: SilenceState


class SilenceRequest(BaseModel):
    """A new silence. `matchers` as strings (``team="web"``) or Alertmanager-style objects."""

    matchers: list[str | LabelMatcher] = Field(min_length=1)
    created_by: str = Field(min_length=1)
    comment: str = Field(min_length=1)
    starts_at: Rfc3339 | None = Field(default=None, description="RFC 3339; default now.")
    ends_at: Rfc3339 | None = Field(default=None, description="RFC 3339; or a duration.")
    duration: str | None = Field(default=None, description="e.g. 2h, 30m, 1d, 1h30m")


def alerts_router(
    store: RunStore,
    silences: SilenceStore,
    page_size_max: int = 500,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> APIRouter:
    router = APIRouter(tags=["alerts"])
    _add_deliveries(router, store, page_size_max)
    _add_silences(router, silences, clock)
    return router


def _add_deliveries(router: APIRouter, store: RunStore, page_size_max: int) -> None:
    @router.get(
        "/api/alerts",
        response_model=DeliveryPage,
        summary="Alert delivery attempts (sent, failed, retrying, suppressed), newest first",
    )
    async def list_alerts(
        channel: Annotated[str | None, Query(description="receiver name")] = None,
        channel_type: Annotated[str | None, Query(description="slack, email, webhook...")] = None,
        outcome: DeliveryOutcome | None = None,
        status: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
        group_key: str | None = None,
        run_id: Annotated[str | None, Query(description="messages about this run")] = None,
        anomaly_id: Annotated[str | None, Query(description="messages carrying it")] = None,
        since: Annotated[Rfc3339 | None, Query(description="attempted at or after")] = None,
        until: Annotated[Rfc3339 | None, Query(description="attempted before")] = None,
        limit: int = Query(50, ge=1, le=page_size_max),
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> DeliveryPage:
        filters = {
            "channel": channel,
            "channel_type": channel_type,
            "outcome": outcome.value if outcome else None,
            "status": status,
            "group_key": group_key,
            "run_id": run_id,
            "anomaly_id": anomaly_id,
            "since": _utc(since),
            "until": _utc(until),
        }
        sql, params = deliveries_sql(store.database, filters, limit, cursor)  # BadRequest: 400
        rows = await asyncio.to_thread(store.query_rows, sql, params)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = dict(rows[-1], attempted_at=_utc(rows[-1]["attempted_at"]))
            next_cursor = deliveries_cursor(last)
        return DeliveryPage(items=[_delivery(row) for row in rows], next_cursor=next_cursor)


def _add_silences(router: APIRouter, silences: SilenceStore, clock: Callable[[], datetime]) -> None:
    unavailable: dict[int | str, dict[str, Any]] = {
        503: {"description": "the broker holding the silences is unreachable"}
    }

    @router.post(
        "/api/silences",
        status_code=201,
        response_model=SilenceView,
        summary="Create a silence: alerts matching every matcher are suppressed (and recorded)",
        responses={400: {"description": "an invalid silence, with the reason"}, **unavailable},
    )
    async def create_silence(request: SilenceRequest) -> SilenceView:
        now = clock()
        try:
            texts = [m for m in request.matchers if isinstance(m, str)]
            given = [m for m in request.matchers if isinstance(m, LabelMatcher)]
            silence = new_silence(
                [*parse_matchers(texts), *_checked(given)],
                created_by=request.created_by,
                comment=request.comment,
                now=now,
                starts_at=request.starts_at,
                ends_at=request.ends_at,
                duration=parse_duration(request.duration) if request.duration else None,
            )
        except SilenceError as exc:
            raise HTTPException(400, str(exc)) from exc
        await _call(silences.put, silence)
        return _view(silence, now)

    @router.get(
        "/api/silences",
        response_model=list[SilenceView],
        summary="Silences, newest start first",
        responses=unavailable,
    )
    async def list_silences(state: SilenceState | None = None) -> list[SilenceView]:
        now = clock()
        found = await _call(silences.all)
        views = [_view(silence, now) for silence in found.values()]
        views = [view for view in views if state is None or view.state == state]
        return sorted(views, key=lambda view: view.starts_at, reverse=True)

    @router.get(
        "/api/silences/{silence_id}",
        response_model=SilenceView,
        summary="One silence",
        responses={404: {"description": "no silence with this id"}, **unavailable},
    )
    async def get_silence(silence_id: str) -> SilenceView:
        found = await _call(silences.get, silence_id)
        if found is None:
            raise HTTPException(404, f"no silence with id {silence_id!r}")
        return _view(found, clock())

    @router.delete(
        "/api/silences/{silence_id}",
        response_model=SilenceView,
        summary="Expire a silence now (it stays listed as expired)",
        responses={404: {"description": "no silence with this id"}, **unavailable},
    )
    async def expire_silence(silence_id: str) -> SilenceView:
        now = clock()
        ended = await _call(silences.expire, silence_id, now)
        if ended is None:
            raise HTTPException(404, f"no silence with id {silence_id!r}")
        return _view(ended, now)


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return await asyncio.to_thread(function, *args)
    except (KafkaException, TimeoutError) as exc:
        raise HTTPException(503, f"silences unavailable: {exc}") from exc


def _checked(matchers: list[LabelMatcher]) -> list[LabelMatcher]:
    """Matcher objects held to the rules of matcher strings (a label name, text, a valid regex)."""
    # Their strings go through the same parser as the strings a user types.
    return parse_matchers([str(matcher) for matcher in matchers])


def _view(silence: Silence, now: datetime) -> SilenceView:
    return SilenceView(**silence.model_dump(), state=silence.state_at(now))


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


def _delivery(row: dict[str, Any]) -> AlertDelivery:
    data = dict(row)
    data["attempted_at"] = _utc(data["attempted_at"])
    for name in ("channel_type", "status", "title"):
        data[name] = data.get(name) or None
    return AlertDelivery.model_validate(data)
