"""`sentinel sink`, except that the process SIGKILLs itself right after its Nth insert.

    python -m tests.support.sink_crash_harness <N>

Configured like `sentinel sink` (SENTINEL_* environment, $SENTINEL_CONFIG). The kill happens
inside the clickhouse-connect client's insert, after the rows landed and before the sink commits
the offsets of their batch: the worst moment for exactly-once.
"""

from __future__ import annotations

import logging
import sys
import threading

from runtime.config import load_settings
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.store import open_store
from tests.support.faults import FaultyClient


def main(kill_after_inserts: int) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = load_settings()
    store = open_store(settings)
    migrate(store)
    store._client = FaultyClient(store.client, kill_after_inserts=kill_after_inserts)
    ClickHouseSink(settings, store).run_forever(threading.Event())


if __name__ == "__main__":
    main(int(sys.argv[1]))
