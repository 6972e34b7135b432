"""What the worker reports on GET /progress: offsets it finished, sends still unanswered."""

from __future__ import annotations

from types import SimpleNamespace

from processors.worker.progress import ProcessedOffsets


def tp(topic: str, partition: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition)


def test_each_partition_reports_the_offset_after_the_last_message_finished() -> None:
    sensor = ProcessedOffsets()
    for offset in (0, 1, 2):
        sensor.on_message_out(tp("logs", 1), offset, None)
    # Agents finish out of order: an earlier offset finishing late does not move it back.
    sensor.on_message_out(tp("ci", 0), 5, None)
    sensor.on_message_out(tp("ci", 0), 3, None)
    assert sensor.snapshot()["processed"] == [
        {"topic": "ci", "partition": 0, "offset": 6},
        {"topic": "logs", "partition": 1, "offset": 3},
    ]


def test_sends_count_in_flight_until_answered_or_failed() -> None:
    sensor = ProcessedOffsets()
    for _ in range(3):
        sensor.on_send_initiated(None, "runs", None, 0, 0)
    assert sensor.snapshot()["sends_in_flight"] == 3
    sensor.on_send_completed(None, None, None)
    sensor.on_send_error(None, RuntimeError("broker gone"), None)
    assert sensor.snapshot()["sends_in_flight"] == 1
