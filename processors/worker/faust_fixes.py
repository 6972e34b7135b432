"""Workarounds for two faust-streaming bugs that lost input across a restart (issue 17).

1. A commit ran ahead of the table changes it covered (`drain_buffer_before_commit`).
2. Records fetched while the streams were being resumed were thrown away and their offsets
   committed anyway (`seek_before_resuming_streams`).

Commits ahead of table changes
Faust writes a table change to its changelog topic through the producer's buffer
(`Topic.send_soon` → `ProducerBuffer`, drained by a background task). Before committing the
input offsets it calls `producer.flush()`, which first flushes that buffer — but since
faust-streaming #270 (0.8.4, 2022) `ProducerBuffer.flush_atmost` returns as soon as no message
was sent for 0.1 s, with messages still queued, and it never waits for the message being sent
at that moment (already taken off the queue; a first send to a partition waits for metadata).
The commit then goes ahead while a table change is still only in memory. A worker stopped
(SIGTERM: its own final flush has the same 0.1 s give-up) or killed before that message leaves
loses the change for good: the restarted worker recovers its table from the changelog without
it and does not re-read the input, whose offset was committed. A restarted worker once lost the
effect of one CI event (issue 17: its run's `first_event_at` came from the next event, one
second late): this bug can do that, and so can the next one (the event would have been the
first record of its partition after the restart). Still so upstream at the time of writing
(faust/transport/producer.py).

`drain_buffer_before_commit` makes `ProducerBuffer.flush` wait until the buffer is empty *and*
no send is in flight (re-checking every second, never giving up): a commit then waits for the
table changes of everything it commits. If the buffer can never drain (its task died), commits
stop — the partition watchdog then fails /health and the worker is restarted, which loses
nothing. Applied once per process, when the worker's app is built.

Records thrown away while the streams resume
When a worker has recovered its tables, `Recovery.on_recovery_completed` (and
`_resume_streams`, its twin for apps without tables) resumes the input partitions, then seeks
them to the committed offsets (`Consumer.perform_seek`, a broker round trip per partition),
then calls `flow_control.resume()` — which empties every agent's input queue (the queues are
made with `clear_on_resume=True`). The fetcher is running during the seek, so records of the
resumed partitions reach the agents' queues and are then emptied out of them unprocessed. They
are never seen again: those fetched after the seek are not fetched again, and those fetched
before it come again but are dropped as already read (`Consumer._read_offset`, "DROPPED
MESSAGE ROFF"). A single unprocessed record at the committed offset does not stop the commit
(`_new_offset` lets a head gap of one through), so the next commit goes past it; two or more
stop that partition's commits for good. A restarted worker lost the
first line of a log stream so (issue 17: its stage marker, hence the run's stage start and a
stage_too_long), and a worker log traced with every fetch, agent event and commit showed
another line lost the same way (fetched at the committed offset right after the seek, never
given to the agent, fetched again and dropped, committed past).

`seek_before_resuming_streams` keeps the input partitions paused through that seek and
resumes them right after `flow_control.resume()` has emptied the queues, with no await in
between: nothing is fetched for them before they are at their committed offsets, so nothing
of theirs is in a queue to be emptied. That alone exposes a second fault, so it also makes
the fetcher ask aiokafka for the records of the partitions active *when it asks*: Faust hands
aiokafka its live set of active partitions, and `Fetcher.fetched_records(partitions)` takes
an empty set for "every partition". Emptied while a fetch waits (the changelogs paused at the
end of their recovery, the inputs not resumed yet), the fetch drains the inputs' records,
which Faust then drops as not active, past the seek: nothing of the inputs came again (a
restarted worker that never fetched again; seen with the first half of this fix alone). Both
still so upstream at the time of writing (faust/tables/recovery.py,
faust/transport/drivers/aiokafka.py; faust-streaming 0.15.3, aiokafka 0.14.0).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer

_APPLIED = "_sentinel_drains_before_commit"
_SEEKS_FIRST = "_sentinel_seeks_before_resuming_streams"


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


def seek_before_resuming_streams() -> None:
    if getattr(Recovery, _SEEKS_FIRST, False):
        return
    for name in ("on_recovery_completed", "_resume_streams"):
        setattr(Recovery, name, _holding_streams(getattr(Recovery, name)))
    getmany = AIOKafkaConsumerThread.getmany

    async def getmany_of_active_now(
        self: Any, active_partitions: set[Any] | None, timeout: float
    ) -> Any:
        if active_partitions is None:  # a client-only app: every partition, as Faust means
            return await getmany(self, active_partitions, timeout)
        asked = set(active_partitions)  # a copy: never "every partition" when emptied meanwhile
        return await getmany(self, asked, timeout) if asked else {}

    AIOKafkaConsumerThread.getmany = getmany_of_active_now  # type: ignore[method-assign]
    setattr(Recovery, _SEEKS_FIRST, True)


def _holding_streams(
    resume_streams: Callable[..., Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    """`resume_streams` with its `consumer.resume_partitions` held back until its
    `flow_control.resume()` has emptied the queues (or until it returns, if it never gets
    there: then as it would have been without the fix)."""

    async def holding(self: Any, generation_id: int = 0) -> None:
        consumer, flow = self.app.consumer, self.app.flow_control
        held: list[Any] = []

        def release() -> None:
            while held:
                type(consumer).resume_partitions(consumer, held.pop(0))

        def resume_flow_then_streams() -> None:
            type(flow).resume(flow)  # empties the agents' queues
            release()

        # Instance attributes, for this call only: they shadow the class's methods.
        consumer.resume_partitions = held.append
        flow.resume = resume_flow_then_streams
        try:
            await resume_streams(self, generation_id)
        finally:
            del consumer.resume_partitions
            del flow.resume
            release()

    return holding
