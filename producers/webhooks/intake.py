"""Webhook intake: normalise, de-duplicate, then publish or spool one CI event.

`GithubIngest` and `TokenIngest` (Jenkins, generic) are shared by the HTTP routes
(`producers.webhooks.routes`) and capture replay. An event is accepted only once it is safe:
acknowledged by the broker, or durably spooled; the normalisation itself is the pure code in
`producers.webhooks.github`, `.jenkins` and `.generic`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from producers.publisher import KafkaPublisher, PublishError
from producers.webhooks.github import Ping, normalize
from producers.webhooks.ledger import DeliveryLedger
from producers.webhooks.payload import Ignored, PayloadError
from producers.webhooks.spool import Spool
from runtime.metrics import WEBHOOKS
from runtime.troubleshooting import BROKER_UNREACHABLE, see
from schemas.messages import CiEvent, utcnow

log = logging.getLogger("sentinel.webhooks")


class Intake:
    """Makes an event safe: published with the broker's ack, else spooled to disk."""

    def __init__(self, publisher: KafkaPublisher, spool: Spool, topic: str) -> None:
        self.publisher = publisher
        self.spool = spool
        self.topic = topic

    async def accept(self, event: CiEvent) -> str:
        key, value = event.run_id.encode(), event.to_bytes()
        try:
            await self.publisher.publish(self.topic, key, value)
            return "published"
        except PublishError as exc:
            if not exc.retriable:
                raise
            log.warning(
                "broker unavailable (%s); spooling event %s (%s)",
                exc,
                event.event_id,
                see(BROKER_UNREACHABLE),
            )
            await asyncio.to_thread(self.spool.put, self.topic, key, value)
            return "spooled"


class WebhookIngest(Protocol):
    """What the HTTP route hands a verified, parsed webhook to."""

    provider: str

    async def handle(
        self, event_name: str, delivery: str, payload: dict[str, Any]
    ) -> IngestResult: ...


@dataclass(frozen=True)
class IngestResult:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status_code, headers=self.headers)


class GithubIngest:
    """Normalise, de-duplicate and accept one GitHub event; shared by HTTP and capture replay."""

    provider = "github"

    def __init__(self, intake: Intake, ledger: DeliveryLedger) -> None:
        self.intake = intake
        self.ledger = ledger

    async def handle(self, event_name: str, delivery: str, payload: dict[str, Any]) -> IngestResult:
        try:
            result = normalize(event_name, delivery, payload, utcnow())
        except PayloadError as exc:
            WEBHOOKS.labels(self.provider, "invalid").inc()
            raise HTTPException(400, f"invalid {event_name} payload: {exc}") from exc
        if isinstance(result, Ping):
            WEBHOOKS.labels(self.provider, "ping").inc()
            return IngestResult(200, {"status": "pong"})
        if isinstance(result, Ignored):
            WEBHOOKS.labels(self.provider, "ignored").inc()
            return IngestResult(202, {"status": "ignored", "reason": result.reason})
        return await self._accept(result, delivery)

    async def _accept(self, event: CiEvent, delivery: str) -> IngestResult:
        if not self.ledger.claim(self.provider, delivery):
            WEBHOOKS.labels(self.provider, "duplicate").inc()
            return IngestResult(200, {"status": "duplicate", "delivery": delivery})
        try:
            outcome = await self.intake.accept(event)
        except (PublishError, OSError) as exc:
            self.ledger.release(self.provider, delivery)
            WEBHOOKS.labels(self.provider, "unavailable").inc()
            log.error("could not publish or spool delivery %s: %s", delivery, exc)
            return IngestResult(
                503,
                {"detail": f"event could not be stored, retry later: {exc}"},
                {"Retry-After": "30"},
            )
        self.ledger.commit(self.provider, delivery)
        WEBHOOKS.labels(self.provider, outcome).inc()
        log.info(
            "accepted %s %s delivery=%s run=%s via=%s",
            self.provider,
            event.event_type,
            delivery,
            event.run_id,
            outcome,
        )
        body = {"status": "accepted", "delivery": delivery, "run_id": event.run_id, "via": outcome}
        return IngestResult(202, body)


# --- bearer-token providers: Jenkins (Notification plugin) and the generic format ------------

TokenNormalizer = Callable[[dict[str, Any], datetime], Sequence[CiEvent] | CiEvent | Ignored]


class TokenIngest:
    """Normalise, de-duplicate and accept one post of a provider without delivery ids (Jenkins,
    generic): the normaliser derives a deterministic event id, which the ledger de-duplicates
    on. Shared by HTTP and capture replay; `event_name` and `delivery` are not used."""

    def __init__(
        self, provider: str, normalize: TokenNormalizer, intake: Intake, ledger: DeliveryLedger
    ) -> None:
        self.provider = provider
        self.normalize = normalize
        self.intake = intake
        self.ledger = ledger

    async def handle(self, event_name: str, delivery: str, payload: dict[str, Any]) -> IngestResult:
        try:
            result = self.normalize(payload, utcnow())
        except PayloadError as exc:
            WEBHOOKS.labels(self.provider, "invalid").inc()
            raise HTTPException(400, f"invalid {self.provider} payload: {exc}") from exc
        if isinstance(result, Ignored):
            WEBHOOKS.labels(self.provider, "ignored").inc()
            return IngestResult(202, {"status": "ignored", "reason": result.reason})
        events = [result] if isinstance(result, CiEvent) else list(result)
        return await self._accept(events)

    async def _accept(self, events: list[CiEvent]) -> IngestResult:
        delivery = events[0].event_id
        if not self.ledger.claim(self.provider, delivery):
            WEBHOOKS.labels(self.provider, "duplicate").inc()
            return IngestResult(200, {"status": "duplicate", "delivery": delivery})
        try:
            # In order, each safe before the next; a failure leaves the delivery unclaimed,
            # and a retry re-sends all (the run tracker ignores what it already has).
            outcomes = [await self.intake.accept(event) for event in events]
        except (PublishError, OSError) as exc:
            self.ledger.release(self.provider, delivery)
            WEBHOOKS.labels(self.provider, "unavailable").inc()
            log.error("could not publish or spool %s event %s: %s", self.provider, delivery, exc)
            return IngestResult(
                503,
                {"detail": f"event could not be stored, retry later: {exc}"},
                {"Retry-After": "30"},
            )
        self.ledger.commit(self.provider, delivery)
        outcome = "spooled" if "spooled" in outcomes else "published"
        WEBHOOKS.labels(self.provider, outcome).inc()
        log.info(
            "accepted %s %s delivery=%s run=%s via=%s",
            self.provider,
            events[0].action or events[0].status,
            delivery,
            events[0].run_id,
            outcome,
        )
        body = {
            "status": "accepted",
            "delivery": delivery,
            "run_id": events[0].run_id,
            "events": len(events),
            "via": outcome,
        }
        return IngestResult(202, body)
