"""HTTP routes of the webhook receiver: read the body, verify, parse, hand to the intake.

Every client mistake gets a 4xx with the reason (400 malformed, 401 bad signature or token,
413 too large); the handler answers 2xx only once the intake says the event is safe.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from producers.webhooks.github import verify_signature
from producers.webhooks.intake import WebhookIngest
from runtime.metrics import WEBHOOKS
from runtime.troubleshooting import BAD_WEBHOOK_SIGNATURE, WEBHOOK_SECRETS, see

log = logging.getLogger("sentinel.webhooks")


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


def github_router(
    ingest: WebhookIngest, secret: SecretStr | None, max_body_bytes: int
) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    if secret is None:
        log.warning(
            "no GitHub webhook secret configured: signatures are NOT verified "
            f"(set SENTINEL_GITHUB_WEBHOOK_SECRET; {see(WEBHOOK_SECRETS)})"
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
            raise HTTPException(
                401,
                "missing or wrong X-Hub-Signature-256 for this body "
                f"({see(BAD_WEBHOOK_SIGNATURE)})",
            )
        if not x_github_event:
            raise HTTPException(400, "missing X-GitHub-Event header")
        if not x_github_delivery:
            raise HTTPException(400, "missing X-GitHub-Delivery header")
        payload = parse_json_object(body, request.headers.get("content-type"))
        result = await ingest.handle(x_github_event, x_github_delivery, payload)
        return result.response()

    return router


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
