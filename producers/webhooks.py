"""HTTP webhook receiver: verify, parse, normalise, de-duplicate, then publish or spool.

The handler answers 2xx only once the event is safe (broker acknowledged it, or it is durably
spooled); every client mistake gets a 4xx with the reason; the normalisation itself is the pure
code in `producers.github`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from producers.github import Ignored, PayloadError, Ping, normalize, verify_signature
from producers.ledger import DeliveryLedger
from producers.publisher import KafkaPublisher, PublishError
from producers.spool import Spool
from schemas.messages import CiEvent, utcnow
from sentinel.metrics import WEBHOOKS

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
            log.warning("broker unavailable (%s); spooling event %s", exc, event.event_id)
            await asyncio.to_thread(self.spool.put, self.topic, key, value)
            return "spooled"


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading it all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def parse_json_object(body: bytes, content_type: str | None = None) -> dict[str, Any]:
    """The JSON object of a webhook body, sent as JSON or (GitHub's other content type) as a
    form whose `payload` field holds the JSON."""
    if content_type and content_type.split(";")[0].strip().lower() == FORM_CONTENT_TYPE:
        # Percent-encoded UTF-8; undecodable bytes become U+FFFD and then fail JSON parsing.
        fields = parse_qs(body.decode("latin-1"), keep_blank_values=True, errors="replace")
        if "payload" not in fields:
            raise HTTPException(400, "form-encoded body has no 'payload' field")
        body = fields["payload"][0].encode("utf-8")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise HTTPException(400, "body must be a JSON object")
    return payload


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


def github_router(
    ingest: WebhookIngest, secret: SecretStr | None, max_body_bytes: int
) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    if secret is None:
        log.warning(
            "no GitHub webhook secret configured: signatures are NOT verified "
            "(set SENTINEL_GITHUB_WEBHOOK_SECRET)"
        )
    key = secret.get_secret_value().encode() if secret is not None else None

    @router.post(
        "/api/webhooks/github",
        status_code=202,
        summary="Receive a GitHub webhook (workflow_run, workflow_job, check_suite, check_run)",
        responses={
            200: {"description": "ping answered, or a delivery already accepted"},
            202: {"description": "accepted (published or spooled), or an event type ignored"},
            400: {"description": "missing headers, malformed JSON or payload"},
            401: {"description": "missing or wrong X-Hub-Signature-256"},
            413: {"description": "body over webhooks.max_body_bytes"},
            503: {"description": "neither the broker nor the spool could take the event"},
        },
    )
    async def github_webhook(
        request: Request,
        x_github_event: str | None = Header(default=None),
        x_github_delivery: str | None = Header(default=None),
        x_hub_signature_256: str | None = Header(default=None),
    ) -> JSONResponse:
        body = await read_body(request, max_body_bytes)
        if key is not None and not verify_signature(key, body, x_hub_signature_256):
            WEBHOOKS.labels("github", "bad_signature").inc()
            raise HTTPException(401, "missing or wrong X-Hub-Signature-256 for this body")
        if not x_github_event:
            raise HTTPException(400, "missing X-GitHub-Event header")
        if not x_github_delivery:
            raise HTTPException(400, "missing X-GitHub-Delivery header")
        payload = parse_json_object(body, request.headers.get("content-type"))
        result = await ingest.handle(x_github_event, x_github_delivery, payload)
        return result.response()

    return router
