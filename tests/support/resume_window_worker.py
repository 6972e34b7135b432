"""A Faust worker whose seek to the committed offsets after recovery is slow, for the
resume-window test (tests/integration/processors/worker/test_resume_window.py).

One table and one agent on one input topic, with the production worker's Faust settings and
fixes (`processors.worker.faust_fixes`). The agent appends "partition offset" of every record
it is given to the file named by $SENTINEL_TEST_PROCESSED_FILE and takes a few milliseconds
per record (as the worker's agents do, awaiting their sends), so records wait in its queue.
`Consumer.perform_seek` takes `SEEK_DELAY_S` longer, as when the broker is slow to answer the
committed offsets of other partitions: the window in which Faust as released fetches records
of the input partitions (already seeked) and then throws them away. Longer than the 1 s the
fetcher sleeps while it has no partition to fetch from, so that it does fetch in the window.
With $SENTINEL_TEST_WITHOUT_RESUME_FIX set, the fix (`seek_before_resuming_streams`) is left
out, to see the records lost.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.types import StreamT
from faust.worker import Worker

from processors.worker import faust_fixes
from processors.worker.app import faust_settings
from processors.worker.context import bytes_table
from runtime.config import Settings, load_settings

PROCESSED_FILE = "SENTINEL_TEST_PROCESSED_FILE"
WITHOUT_FIX = "SENTINEL_TEST_WITHOUT_RESUME_FIX"
SEEK_DELAY_S = 2.0
_perform_seek = Consumer.perform_seek


def app_id(settings: Settings) -> str:
    return f"{settings.topics.prefix}resume-window"


def input_topic(settings: Settings) -> str:
    return f"{settings.topics.prefix}resume-window-input"


async def slow_perform_seek(self: Consumer) -> None:
    await _perform_seek(self)
    await asyncio.sleep(SEEK_DELAY_S)


def create_app(settings: Settings, processed: Path) -> faust.App:
    faust_fixes.drain_buffer_before_commit()
    if not os.environ.get(WITHOUT_FIX):
        faust_fixes.seek_before_resuming_streams()
    app = faust.App(app_id(settings), **faust_settings(settings))
    partitions = settings.topics.partitions
    topic = app.topic(
        input_topic(settings), partitions=partitions, key_serializer="raw", value_serializer="raw"
    )
    seen = bytes_table(app, "seen", partitions)

    @app.agent(topic, name="resume-window")
    async def consume(stream: StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            with processed.open("a") as out:
                out.write(f"{message.partition} {message.offset}\n")
            seen[bytes(event.key or b"")] = str(message.offset).encode()
            await asyncio.sleep(0.005)

    return app


if __name__ == "__main__":
    Consumer.perform_seek = slow_perform_seek  # type: ignore[method-assign]
    settings = load_settings()
    app = create_app(settings, Path(os.environ[PROCESSED_FILE]))
    worker = Worker(app, loglevel="info", quiet=True, redirect_stdouts=False)
    sys.exit(worker.execute_from_commandline())
