"""A live worker forgets ended runs once event time is past their end + settle + retention
(issue 17), on real Apache Kafka: its changelogs carry tombstones for their keys (what a
restarted worker recovers from), the live run stays, and a late CI event for a forgotten run
goes to the DLQ instead of publishing a new partial state over the final one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from processors.runs.tracking import LATE_FOR_RETIRED
from producers.publisher import KafkaPublisher
from runtime.config import Settings
from runtime.kafka_clients import producer_config
from schemas.messages import (
    CiEvent,
    CiEventKind,
    DeadLetter,
    RunSignal,
    RunState,
    RunStatus,
    SignalKind,
)
from sentinel.stack import EmbeddedStack
from tests.support.helpers import read_topic

pytestmark = pytest.mark.integration

# Long ago, and the idle wall clock only counts after an hour without input: event time is
# what the test publishes. The worker's timer still ticks every second (that is what retires).
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ENDED = [f"generic:nightly#{n}" for n in (1, 2, 3)]
LIVE = "generic:soak#1"
CLOCK = "generic:clock#1"
SETTLE_S, RETAIN_S = 5, 30


@pytest.fixture
def stack(kafka_bootstrap: str, make_settings: Callable[..., Settings]) -> Iterator[EmbeddedStack]:
    tracking = {
        "idle_watermark_s": 3600,
        "allowed_lateness_s": 0,
        "settle_s": SETTLE_S,
        "retain_ended_s": RETAIN_S,
    }
    embedded = EmbeddedStack(make_settings(kafka_bootstrap, tracking=tracking))
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def run_event(
    run_id: str, event_id: str, status: RunStatus, second: float, run_url: str | None = None
) -> CiEvent:
    return CiEvent(
        event_id=event_id,
        provider="generic",
        event_type="run",
        kind=CiEventKind.RUN,
        run_id=run_id,
        provider_run_id=run_id,
        pipeline=run_id.split(":")[1].split("#")[0],
        status=status,
        event_time=T0 + timedelta(seconds=second),
        finished_at=T0 + timedelta(seconds=second) if status.terminal else None,
        # Names the key of its Jenkins agent pods: a BIND in run-links.
        labels={"jenkins.run_url": run_url} if run_url else {},
    )


def last_values(settings: Settings, table: str) -> dict[str, bytes | None]:
    """Each key's last message on the table's changelog (None: a tombstone)."""
    topic = f"{settings.worker_app_id}-{table}-changelog"
    found: dict[str, bytes | None] = {}
    for key, value in read_topic(settings, topic):
        found[(key or b"").decode()] = value
    return found


def test_ended_runs_are_forgotten_and_late_input_for_them_is_dead_lettered(
    stack: EmbeddedStack,
) -> None:
    settings, names = stack.settings, stack.settings.topic_names
    publisher = KafkaPublisher(producer_config(settings))

    def send(event: CiEvent) -> None:
        publisher.publish_sync(names.ci, event.run_id.encode(), event.to_bytes(), timeout=10)

    for n, run_id in enumerate(ENDED):
        send(run_event(run_id, f"{run_id}-start", RunStatus.RUNNING, n, f"job/nightly/{n}/"))
        send(run_event(run_id, f"{run_id}-end", RunStatus.SUCCEEDED, 10 + n))
    send(run_event(LIVE, "live-start", RunStatus.RUNNING, 5))
    # A pod of the first run logged: its log analysis is kept in run-logs until it ends.
    activity = RunSignal(
        signal_id="activity-1",
        kind=SignalKind.ACTIVITY,
        run_id=ENDED[0],
        source="logs",
        event_time=T0 + timedelta(seconds=3),
        log_pod="nightly-1-pod",
    )
    publisher.publish_sync(names.run_signals, ENDED[0].encode(), activity.to_bytes(), 10)
    # The worker's timer ticks into run-signals every second, so its input is never "all
    # consumed" for long (stack.wait_consumed): wait for what it writes instead.
    agent_keys = [f"jenkins:job/nightly/{n}/" for n in range(len(ENDED))]

    def kept() -> bool:
        states = last_values(settings, "run-states")
        ended = [states.get(run_id) for run_id in ENDED]
        return (
            all(raw is not None and RunState.from_bytes(raw).status.terminal for raw in ended)
            and states.get(LIVE) is not None
            and last_values(settings, "run-logs").get(ENDED[0]) is not None
            and all(last_values(settings, "run-links").get(key) is not None for key in agent_keys)
        )

    until(kept, "the ended runs, their log analysis and their agent keys in the tables")

    # Another run's input moves event time past end + settle + retain of the three.
    send(run_event(CLOCK, "clock-1", RunStatus.RUNNING, 12 + SETTLE_S + RETAIN_S + 1))

    def forgotten() -> bool:
        states = last_values(settings, "run-states")
        return all(run_id in states and states[run_id] is None for run_id in ENDED)

    until(forgotten, "tombstones for the ended runs in run-states")
    states = last_values(settings, "run-states")
    assert states[LIVE] is not None and states.get(CLOCK) is not None  # still tracked
    assert last_values(settings, "run-logs")[ENDED[0]] is None
    until(
        lambda: all(last_values(settings, "run-links")[key] is None for key in agent_keys),
        "tombstones for the ended runs' agent keys in run-links",
    )

    def published() -> int:
        return sum(1 for k, _v in read_topic(settings, names.runs) if k == ENDED[1].encode())

    # Each ended run was published: running, succeeded, then settled (its end checks done).
    until(lambda: published() == 3, "the second run's three states on the runs topic")

    # The CI system delivers the second run's completion again, long after it was forgotten.
    send(run_event(ENDED[1], f"{ENDED[1]}-end", RunStatus.SUCCEEDED, 11))
    publisher.close()
    until(lambda: bool(read_topic(settings, names.dlq)), "a dead letter")
    letters = [DeadLetter.from_bytes(v) for _k, v in read_topic(settings, names.dlq)]
    assert [(letter.error_type, letter.origin_key) for letter in letters] == [
        (LATE_FOR_RETIRED, ENDED[1].encode())
    ]
    assert "tracking.retain_ended_s=30" in letters[0].error
    # The letter is written instead of anything else for that event: no new state went out.
    assert published() == 3
    assert last_values(settings, "run-states")[ENDED[1]] is None


def until(done: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(1)
