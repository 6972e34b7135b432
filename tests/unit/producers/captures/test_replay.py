"""`replay` with handlers that queue their sends: it returns only once the broker has taken
every record, and a record the broker refused fails the replay instead of vanishing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from producers.captures.replay import ReplayTargets, replay
from producers.publisher import PublishError
from schemas.capture import LogRecord


def lines(count: int) -> list[LogRecord]:
    start = datetime(2026, 12, 7, tzinfo=UTC)
    return [
        LogRecord(
            type="log",
            ts=start + timedelta(seconds=n),
            namespace="ci",
            pod="pod-a",
            container="main",
            line=f"line {n}",
        )
        for n in range(count)
    ]


class QueueingTargets:
    """Handlers that queue each line and a broker that answers only when asked to."""

    def __init__(self, refuse: int | None = None) -> None:
        self.queued: list[tuple[str, asyncio.Future[None]]] = []
        self.refuse = refuse
        self.acknowledged_after: list[int] = []

    async def logs(self, record: LogRecord) -> str:
        self.queued.append((record.line, asyncio.get_running_loop().create_future()))
        return "published"

    async def acknowledged(self) -> None:
        self.acknowledged_after.append(len(self.queued))
        for n, (_line, future) in enumerate(self.queued):
            if n == self.refuse:
                future.set_exception(PublishError("logs: Broker: Message size too large"))
            else:
                future.set_result(None)
            await future

    def targets(self) -> ReplayTargets:
        # No webhook in these captures: the GitHub ingest is never called.
        return ReplayTargets(github=None, logs=self.logs, acknowledged=self.acknowledged)  # type: ignore[arg-type]


def test_replay_returns_after_every_queued_send_is_acknowledged() -> None:
    broker = QueueingTargets()
    stats = asyncio.run(replay(lines(5), broker.targets()))
    assert stats.records == 5 and stats.outcomes["log_published"] == 5
    assert broker.acknowledged_after == [5]  # once, after the last record was queued
    assert all(future.done() for _line, future in broker.queued)


def test_a_refused_send_fails_the_replay() -> None:
    broker = QueueingTargets(refuse=2)
    with pytest.raises(PublishError, match="too large"):
        asyncio.run(replay(lines(5), broker.targets()))
