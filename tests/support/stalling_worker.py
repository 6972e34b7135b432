"""`sentinel worker` with one fault in it, for the partition watchdog's test.

Once the file named by $SENTINEL_TEST_STALL_FILE exists, the worker's consumer pauses every
partition it owns (Faust's own pause, the one a rebalance and table recovery use): its event
loop, heartbeat and ops endpoint keep turning, it only never fetches again — the silent stall
reported in faust-streaming/faust #175, #523 and #532, provoked on purpose. Everything else is
the production worker (`python -m tests.support.stalling_worker` = `sentinel worker`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import processors.worker.app as worker_app
from sentinel.cli import main

STALL_FILE = "SENTINEL_TEST_STALL_FILE"
_create_app = worker_app.create_app


def create_app_that_stalls(settings: Any) -> Any:
    app = _create_app(settings)
    stall = Path(os.environ[STALL_FILE])

    @app.timer(interval=0.2)  # type: ignore[untyped-decorator]
    async def stall_when_told() -> None:
        if stall.exists():
            app.consumer.pause_partitions(app.consumer.assignment())

    return app


if __name__ == "__main__":
    worker_app.create_app = create_app_that_stalls
    sys.exit(main(["worker"]))
