"""A component's confluent-kafka consumer that a test can pause from inside.

confluent-kafka's Consumer must be called from one thread: a test thread that called
`consumer.assignment()` while the component's thread sat in `consume()` hung for good (CI, the
sink's watchdog test, 300 s). So the test only asks; the pause happens in the component's own
thread, at its next `poll`/`consume`, which then returns nothing more — the component's loop
keeps turning, as with a client library that silently stops fetching.
"""

from __future__ import annotations

import threading
from typing import Any


class PausingConsumer:
    """Delegates everything to `consumer`; after `pause_soon()`, its next poll or consume first
    pauses every assigned partition (in the caller's thread, the component's own)."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self._asked = threading.Event()
        self.paused = threading.Event()

    def pause_soon(self, timeout: float = 30.0) -> None:
        self._asked.set()
        if not self.paused.wait(timeout):
            raise AssertionError(f"the component did not poll its consumer within {timeout}s")

    def _maybe_pause(self) -> None:
        if self._asked.is_set() and not self.paused.is_set():
            self._consumer.pause(self._consumer.assignment())
            self.paused.set()

    def consume(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_pause()
        return self._consumer.consume(*args, **kwargs)

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_pause()
        return self._consumer.poll(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)
