"""`POST /api/runs/{run_id}/junit`: JUnit XML uploaded by a CI job, published as `TestResult`s.

The XML is parsed by the pure `processors.test_results.parse_junit_xml` (DOCTYPE refused, size
capped); a malformed file gets 400 with the parser's reason (line and column). An upload is
answered 202 only once every result (and the counts for the run tracker, on the worker's
run-signals topic) is acknowledged by the broker, and the same file posted
twice for a run is accepted once (the delivery ledger keys it by run id and content hash), so a
CI step may retry safely. Authentication: the generic webhook's bearer token.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from producers.publisher import KafkaPublisher, PublishError
from producers.webhooks.junit_xml import JUnitXmlError, parse_junit_xml
from producers.webhooks.ledger import DeliveryLedger
from producers.webhooks.routes import bearer_matches, read_body
from schemas.messages import RunSignal, SignalKind, TestCounts, TestResult, utcnow

log = logging.getLogger("sentinel.junit")

PROVIDER = "junit"


def counts_signal(run_id: str, upload_id: str, results: list[TestResult]) -> RunSignal:
    """One upload for the run tracker: counted on the run once per file, and kept with the run
    for its pipeline's history (without failure messages: the results topic has them)."""
    return RunSignal(
        signal_id=f"junit:{upload_id}",
        kind=SignalKind.TESTS,
        run_id=run_id,
        source="junit",
        event_time=utcnow(),
        tests=TestCounts.of(results),
        test_results=[result.model_copy(update={"message": None}) for result in results],
    )


async def _publish(
    publisher: KafkaPublisher,
    topics: tuple[str, str],
    run_id: str,
    upload_id: str,
    results: list[TestResult],
) -> None:
    """Every result to the tests topic and the counts to the tracker, all acknowledged."""
    tests_topic, signals_topic = topics
    key = run_id.encode()
    futures = [publisher.submit(tests_topic, key, result.to_bytes()) for result in results]
    signal = counts_signal(run_id, upload_id, results)
    futures.append(publisher.submit(signals_topic, key, signal.to_bytes()))
    await asyncio.gather(*(asyncio.wrap_future(future) for future in futures))


def junit_router(
    publisher: KafkaPublisher,
    ledger: DeliveryLedger,
    topic: str,
    signals_topic: str,
    token: SecretStr | None,
    max_body_bytes: int,
    allow_unauthenticated: bool = False,
) -> APIRouter:
    router = APIRouter(tags=["tests"])
    key = token.get_secret_value().encode() if token is not None else None

    @router.post(
        "/api/runs/{run_id:path}/junit",
        status_code=202,
        summary="Upload a JUnit XML report for a run; its test cases become test results",
        responses={
            200: {"description": "this file was already accepted for this run"},
            202: {"description": "published: counts by status in the body"},
            400: {"description": "not JUnit XML: the parser's reason, with line and column"},
            401: {"description": "missing or wrong bearer token (the generic webhook token)"},
            413: {"description": "body over webhooks.max_body_bytes"},
            503: {"description": "the broker did not take the results; retry later"},
        },
    )
    async def upload_junit(
        run_id: str, request: Request, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        authorized = allow_unauthenticated if key is None else bearer_matches(key, authorization)
        if not authorized:
            raise HTTPException(
                401,
                "missing or wrong bearer token (set SENTINEL_GENERIC_WEBHOOK_TOKEN)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        body = await read_body(request, max_body_bytes)
        try:
            results = parse_junit_xml(body, run_id, utcnow(), max_bytes=max_body_bytes)
        except JUnitXmlError as exc:
            raise HTTPException(400, f"not a valid JUnit XML report: {exc}") from exc
        upload_id = f"{run_id}:{hashlib.sha256(body).hexdigest()}"
        if not ledger.claim(PROVIDER, upload_id):
            return JSONResponse({"status": "duplicate", "run_id": run_id}, status_code=200)
        try:
            await _publish(publisher, (topic, signals_topic), run_id, upload_id, results)
        except PublishError as exc:
            ledger.release(PROVIDER, upload_id)
            log.error("JUnit upload for %s not published: %s", run_id, exc)
            return JSONResponse(
                {"detail": f"test results could not be stored, retry later: {exc}"},
                status_code=503,
                headers={"Retry-After": "30"},
            )
        ledger.commit(PROVIDER, upload_id)
        counts = TestCounts.of(results).model_dump(exclude={"total"})
        log.info("JUnit upload for %s: %d test results %s", run_id, len(results), counts)
        return JSONResponse(
            {"status": "accepted", "run_id": run_id, "tests": len(results), "by_status": counts},
            status_code=202,
        )

    return router
