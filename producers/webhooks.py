"""HTTP webhook receiver: verify, parse, normalise, de-duplicate, then publish or spool.

The handler answers 2xx only once the event is safe (broker acknowledged it, or it is durably
spooled); every client mistake gets a 4xx with the reason; the normalisation itself is the pure
code in `producers.github`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, HTTPException, Query, Request
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


def bearer_matches(expected: bytes, authorization: str | None) -> bool:
    """True if `authorization` is ``Bearer <expected>`` (compared in constant time)."""
    if not authorization:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(expected, given.strip().encode("utf-8", "replace"))


_TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "an event already accepted (same deterministic event id)"},
    202: {"description": "accepted (published or spooled), or ignored (untracked phase)"},
    400: {"description": "malformed JSON or payload; the detail names the field"},
    401: {"description": "missing or wrong bearer token (or none configured)"},
    413: {"description": "body over webhooks.max_body_bytes"},
    503: {"description": "neither the broker nor the spool could take the event"},
}


def token_router(
    provider: str,
    ingest: WebhookIngest,
    token: SecretStr | None,
    max_body_bytes: int,
    *,
    allow_unauthenticated: bool = False,
    query_token: bool = False,
    summary: str = "",
) -> APIRouter:
    """``POST /api/webhooks/<provider>`` authenticated by ``Authorization: Bearer <token>``
    (and, with `query_token`, by ``?token=`` for senders that cannot set headers).

    With no token configured every request is refused with 401, unless `allow_unauthenticated`
    says the endpoint is open on purpose."""
    router = APIRouter(tags=["webhooks"])
    key = token.get_secret_value().encode() if token is not None else None
    env = f"SENTINEL_{provider.upper()}_WEBHOOK_TOKEN"
    if key is None and allow_unauthenticated:
        log.warning("%s webhooks accepted WITHOUT authentication (allow_unauthenticated)", provider)
    elif key is None:
        log.warning("no %s webhook token configured (%s): the endpoint refuses all", provider, env)

    def authorized(authorization: str | None, query: str | None) -> bool:
        if key is None:
            return allow_unauthenticated
        if bearer_matches(key, authorization):
            return True
        return query is not None and hmac.compare_digest(key, query.encode("utf-8", "replace"))

    @router.post(
        f"/api/webhooks/{provider}",
        status_code=202,
        summary=summary or f"Receive a {provider} CI event",
        responses=_TOKEN_RESPONSES,
    )
    async def token_webhook(
        request: Request,
        authorization: str | None = Header(default=None),
        token_param: str | None = Query(
            default=None,
            alias="token",
            include_in_schema=query_token,
            description="The token, for senders that cannot set an Authorization header.",
        ),
    ) -> JSONResponse:
        if not authorized(authorization, token_param if query_token else None):
            WEBHOOKS.labels(provider, "unauthorized").inc()
            raise HTTPException(
                401,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": 'Bearer realm="sentinel"'},
            )
        body = await read_body(request, max_body_bytes)
        payload = parse_json_object(body)
        result = await ingest.handle(provider, "", payload)
        return result.response()

    return router


def jenkins_router(
    ingest: WebhookIngest,
    token: SecretStr | None,
    max_body_bytes: int,
    allow_unauthenticated: bool = False,
) -> APIRouter:
    return token_router(
        "jenkins",
        ingest,
        token,
        max_body_bytes,
        allow_unauthenticated=allow_unauthenticated,
        query_token=True,  # the Notification plugin cannot set headers; its URL can be secret
        summary="Receive a Jenkins Notification plugin event (QUEUED/STARTED/COMPLETED/FINALIZED)",
    )


def generic_router(
    ingest: WebhookIngest,
    token: SecretStr | None,
    max_body_bytes: int,
    allow_unauthenticated: bool = False,
) -> APIRouter:
    return token_router(
        "generic",
        ingest,
        token,
        max_body_bytes,
        allow_unauthenticated=allow_unauthenticated,
        summary="Receive a run or stage event in the generic format (docs/webhooks.md)",
    )
