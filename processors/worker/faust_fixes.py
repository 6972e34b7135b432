"""A workaround for a faust-streaming bug that committed offsets before table changes were safe.

Faust writes a table change to its changelog topic through the producer's buffer
(`Topic.send_soon` → `ProducerBuffer`, drained by a background task). Before committing the
input offsets it calls `producer.flush()`, which first flushes that buffer — but since
faust-streaming #270 (0.8.4, 2022) `ProducerBuffer.flush_atmost` returns as soon as no message
was sent for 0.1 s, with messages still queued, and it never waits for the message being sent
at that moment (already taken off the queue; a first send to a partition waits for metadata).
The commit then goes ahead while a table change is still only in memory. A worker stopped
(SIGTERM: its own final flush has the same 0.1 s give-up) or killed before that message leaves
loses the change for good: the restarted worker recovers its table from the changelog without
it and does not re-read the input, whose offset was committed. That is how a restarted worker
once lost the effect of one CI event (issue 17: its run's `first_event_at` came from the next
event, one second late). Still so upstream at the time of writing (faust/transport/producer.py).

`drain_buffer_before_commit` makes `ProducerBuffer.flush` wait until the buffer is empty *and*
no send is in flight (re-checking every second, never giving up): a commit then waits for the
table changes of everything it commits. If the buffer can never drain (its task died), commits
stop — the partition watchdog then fails /health and the worker is restarted, which loses
nothing. Applied once per process, when the worker's app is built.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from faust.transport.producer import ProducerBuffer

_APPLIED = "_sentinel_drains_before_commit"


def drain_buffer_before_commit() -> None:
    if getattr(ProducerBuffer, _APPLIED, False):
        return
    send_pending = ProducerBuffer._send_pending

    async def counted_send_pending(self: Any, fut: Any) -> None:
        self._sentinel_in_flight = getattr(self, "_sentinel_in_flight", 0) + 1
        try:
            await send_pending(self, fut)
        finally:
            self._sentinel_in_flight -= 1

    async def flush(self: Any) -> None:
        """Wait until every buffered message has been handed to the Kafka client (whose own
        flush, called next by `Producer.flush`, waits for the broker's acknowledgement)."""
        while self.size or getattr(self, "_sentinel_in_flight", 0):
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")  # as Faust says
            self.message_sent.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)

    ProducerBuffer._send_pending = counted_send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = flush  # type: ignore[method-assign]
    setattr(ProducerBuffer, _APPLIED, True)
