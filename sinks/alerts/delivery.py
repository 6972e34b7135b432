"""Delivery: one queue per receiver, its rate limit, retries, and a record of every attempt.

Messages of one receiver leave in the order they were decided: one worker per receiver takes
them from its queue one at a time, so a channel that is down holds its later messages back and
delivers them, in order, once it answers again. An attempt that fails with a temporary error
(`DeliveryError.temporary`: timeout, connection refused, 5xx, 429) is retried with jittered
exponential backoff (tenacity's `wait_random_exponential`, from `initial_backoff_s` up to
`max_backoff_s`), or after the server's Retry-After when it gives one, until `give_up_after_s`
has passed since the first attempt; a permanent error is not retried. Each attempt becomes an
`AlertDelivery`: ``retrying`` (with the wait), then ``sent`` or ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from runtime.alerting_config import DeliveryConfig, ReceiverConfig
from runtime.troubleshooting import ALERTS_NOT_SENDING, see
from schemas.messages import AlertDelivery, DeliveryOutcome
from sinks.alerts.channels.base import Channel, DeliveryError, SendResult
from sinks.alerts.notification import Notification
from sinks.alerts.templates import Rendered, Renderer

log = logging.getLogger("sentinel.alerts.delivery")


@dataclass(frozen=True)
class Outcome:
    notification: Notification
    sent: bool
    at: datetime
    result: SendResult | None = None


class RateLimiter:
    """At most `rate` starts per second (an even spacing, no bursts)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        delay = self.next_at - now
        self.next_at = max(now, self.next_at) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class _WaitRetryAfter:
    """Wait what the server asked for (Retry-After) when it did, else jittered backoff."""

    def __init__(self, config: DeliveryConfig) -> None:
        self.backoff = wait_random_exponential(
            multiplier=config.initial_backoff_s, max=config.max_backoff_s
        )

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, DeliveryError) and error.retry_after is not None:
            return error.retry_after
        return float(self.backoff(state))


def _temporary(error: BaseException) -> bool:
    return isinstance(error, DeliveryError) and error.temporary


class DeliveryQueue:
    """The queue and worker of one receiver."""

    def __init__(
        self,
        receiver: ReceiverConfig,
        channel: Channel,
        renderer: Renderer,
        config: DeliveryConfig,
        record: Callable[[AlertDelivery], None],
        done: Callable[[Outcome], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.receiver = receiver
        self.channel = channel
        self.renderer = renderer
        self.config = config
        self.record = record
        self.done = done
        self.clock = clock
        self.limiter = RateLimiter(receiver.rate)
        self.queue: asyncio.Queue[Notification] = asyncio.Queue()

    def put(self, notification: Notification) -> None:
        self.queue.put_nowait(notification)

    async def run(self) -> None:
        while True:
            notification = await self.queue.get()
            try:
                await self.deliver(notification)
            finally:
                self.queue.task_done()

    async def deliver(self, notification: Notification) -> None:
        try:
            rendered = self.renderer.render(notification)
        except Exception as exc:  # a template that fails on this message: record, move on
            log.exception("rendering failed for %s", self.receiver.name)
            self._record(notification, None, DeliveryOutcome.FAILED, 1, error=f"template: {exc}")
            self.done(Outcome(notification, False, self.clock()))
            return
        attempts = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception(_temporary),
            wait=_WaitRetryAfter(self.config),
            stop=stop_after_delay(self.config.give_up_after_s),
            before_sleep=lambda state: self._retrying(notification, rendered, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    await self.limiter.wait()
                    result = await self._attempt(notification, rendered)
        except DeliveryError as exc:
            self._record(
                notification, rendered, DeliveryOutcome.FAILED, attempts or 1,
                status_code=exc.status_code, error=str(exc),
            )  # fmt: skip
            log.warning(
                "delivery to %s failed for good after %d attempt(s): %s (%s)",
                self.receiver.name,
                attempts or 1,
                exc,
                see(ALERTS_NOT_SENDING),
                extra={"receiver": self.receiver.name, "group_key": notification.group_key},
            )
            self.done(Outcome(notification, False, self.clock()))
            return
        except Exception as exc:  # a channel bug: recorded as failed, never a silent drop
            log.exception("delivery to %s raised", self.receiver.name)
            self._record(
                notification, rendered, DeliveryOutcome.FAILED, attempts or 1, error=repr(exc)
            )
            self.done(Outcome(notification, False, self.clock()))
            return
        self._record(
            notification, rendered, DeliveryOutcome.SENT, attempts, status_code=result.status_code
        )
        self.done(Outcome(notification, True, self.clock(), result))

    async def _attempt(self, notification: Notification, rendered: Rendered) -> SendResult:
        try:
            return await asyncio.wait_for(
                self.channel.send(notification, rendered), self.receiver.timeout_s
            )
        except TimeoutError as exc:
            raise DeliveryError(
                f"no answer within {self.receiver.timeout_s:g}s", temporary=True
            ) from exc

    def _retrying(
        self, notification: Notification, rendered: Rendered, state: RetryCallState
    ) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.upcoming_sleep
        self._record(
            notification,
            rendered,
            DeliveryOutcome.RETRYING,
            state.attempt_number,
            status_code=error.status_code if isinstance(error, DeliveryError) else None,
            error=str(error),
            retry_in_s=wait,
        )
        log.info(
            "delivery to %s: attempt %d failed (%s), retrying in %.1fs",
            self.receiver.name,
            state.attempt_number,
            error,
            wait,
        )

    def _record(
        self,
        notification: Notification,
        rendered: Rendered | None,
        outcome: DeliveryOutcome,
        attempt: int,
        status_code: int | None = None,
        error: str | None = None,
        retry_in_s: float | None = None,
    ) -> None:
        self.record(
            AlertDelivery(
                delivery_id=notification.delivery_id,
                channel=notification.receiver,
                channel_type=self.receiver.kind,
                group_key=notification.group_key,
                anomaly_ids=notification.anomaly_ids,
                attempt=attempt,
                outcome=outcome,
                status_code=status_code,
                error=error,
                attempted_at=self.clock(),
                run_ids=notification.run_ids,
                status=notification.status,
                title=rendered.title if rendered else None,
                retry_in_s=retry_in_s,
            )
        )
