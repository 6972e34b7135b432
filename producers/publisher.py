"""Publishing to Kafka with confluent-kafka: idempotent, ``acks=all``, delivery confirmed.

`KafkaPublisher.publish` returns only once the broker acknowledged the message, or raises
`PublishError` when it could not (broker down past ``kafka.delivery_timeout_s``). A background
thread serves delivery callbacks, so callers on an event loop never block it. `send` is the
high-volume form (the log streamer's): no future per message, only failures are reported.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_INVALID, KafkaError, Message, Producer

from runtime.metrics import PUBLISH_FAILURES, PUBLISHED

log = logging.getLogger("sentinel.publisher")


class PublishError(RuntimeError):
    """The broker did not acknowledge a message; `retriable` says whether trying later may work."""

    def __init__(self, message: str, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


def delivery_error(topic: str, error: KafkaError) -> PublishError:
    # Timeouts and broker outages are worth retrying later; a message the broker refuses for
    # its size or a fatal producer state is not.
    permanent = error.fatal() or error.code() == KafkaError.MSG_SIZE_TOO_LARGE
    return PublishError(f"{topic}: {error.str()}", not permanent)


class KafkaPublisher:
    def __init__(self, config: dict[str, Any], component: str = "producer") -> None:
        self._producer = Producer(config)
        self._component = component
        # One delivery callback per (topic, failure handler) for `send`, made once.
        self._callbacks: dict[tuple[str, Callable[[PublishError], None]], Any] = {}
        self._stop = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_loop, name=f"{component}-delivery", daemon=True
        )
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def submit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: dict[str, bytes] | None = None,
        partition: int | None = None,
    ) -> concurrent.futures.Future[tuple[int, int]]:
        """Queue a message.

        The future resolves to (partition, offset) or fails with PublishError.
        """
        future: concurrent.futures.Future[tuple[int, int]] = concurrent.futures.Future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                PUBLISHED.labels(self._component, topic).inc()
                partition, offset = message.partition(), message.offset()
                # The binding reports librdkafka's "unknown" values (unassigned partition,
                # invalid offset) as None; keep them as librdkafka's numbers.
                future.set_result(
                    (
                        partition if partition is not None else -1,
                        offset if offset is not None else OFFSET_INVALID,
                    )
                )
            else:
                PUBLISH_FAILURES.labels(self._component, topic).inc()
                future.set_exception(delivery_error(topic, error))

        # A copy typed as the client expects (its header values may also be str or None).
        kafka_headers: dict[str, str | bytes | None] | None = (
            dict(headers) if headers is not None else None
        )
        # librdkafka's "unassigned" (-1) lets the partitioner choose.
        target = -1 if partition is None else partition
        try:
            self._producer.produce(
                topic,
                key=key,
                value=value,
                headers=kafka_headers,
                partition=target,
                on_delivery=on_delivery,
            )
        except BufferError as exc:  # local queue full: the broker is far behind or gone
            PUBLISH_FAILURES.labels(self._component, topic).inc()
            future.set_exception(PublishError(f"{topic}: local queue full ({exc})"))
        except Exception as exc:
            PUBLISH_FAILURES.labels(self._component, topic).inc()
            future.set_exception(PublishError(f"{topic}: {exc}", retriable=False))
        return future

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        on_failure: Callable[[PublishError], None],
    ) -> None:
        """Queue a message; `on_failure` is called (on the delivery thread) if it is not
        delivered. Raises PublishError when the local queue is full or the message invalid.

        The same guarantees as `submit` without a future and a closure per message, which were
        a fifth of the log streamer's time (bench/producer_throughput.py).
        """
        callback = self._callbacks.get((topic, on_failure))
        if callback is None:
            callback = self._callbacks[(topic, on_failure)] = self._delivery(topic, on_failure)
        try:
            self._producer.produce(topic, key=key, value=value, on_delivery=callback)
        except BufferError as exc:
            PUBLISH_FAILURES.labels(self._component, topic).inc()
            raise PublishError(f"{topic}: local queue full ({exc})") from exc
        except Exception as exc:
            PUBLISH_FAILURES.labels(self._component, topic).inc()
            raise PublishError(f"{topic}: {exc}", retriable=False) from exc

    def _delivery(
        self, topic: str, on_failure: Callable[[PublishError], None]
    ) -> Callable[[KafkaError | None, Message], None]:
        published = PUBLISHED.labels(self._component, topic)
        failures = PUBLISH_FAILURES.labels(self._component, topic)

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                published.inc()
            else:
                failures.inc()
                on_failure(delivery_error(topic, error))

        return on_delivery

    async def publish(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, bytes] | None = None
    ) -> tuple[int, int]:
        return await asyncio.wrap_future(self.submit(topic, key, value, headers))

    def publish_sync(
        self, topic: str, key: bytes | None, value: bytes, timeout: float | None = None
    ) -> tuple[int, int]:
        return self.submit(topic, key, value).result(timeout)

    def flush(self, timeout: float = 10.0) -> int:
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> None:
        remaining = self.flush(timeout)
        if remaining:
            log.warning("%d messages not delivered at shutdown", remaining)
        self._stop.set()
        self._poller.join(2)
        # Release librdkafka's threads and sockets now, not when the object is collected.
        self._producer.close()
