"""The partition watchdog: lag without the committed offset moving, for long enough, is a stall;
moving, caught up, excused or unknown is not."""

from __future__ import annotations

import pytest

from runtime.partition_stalls import ProgressWatchdog
from runtime.progress_monitor import Ownership, ProgressMonitor

TP = ("sentinel.logs", 0)
OTHER = ("sentinel.k8s", 2)


def test_a_partition_with_lag_that_does_not_move_is_stalled_after_stall_s() -> None:
    dog = ProgressWatchdog(stall_s=30)
    assert dog.observe(0, {TP: 10}, {TP: 50}) == []
    assert dog.observe(29, {TP: 10}, {TP: 60}) == []
    [stall] = dog.observe(30, {TP: 10}, {TP: 70})
    assert (stall.topic, stall.partition, stall.committed, stall.end) == (
        "sentinel.logs",
        0,
        10,
        70,
    )
    assert stall.lag == 60 and stall.unmoved_s == 30
    assert "sentinel.logs[0]: committed offset 10 of 70 (60 behind)" in stall.describe()
    assert dog.stalled == [stall]


def test_moving_or_caught_up_restarts_the_clock() -> None:
    dog = ProgressWatchdog(stall_s=30)
    dog.observe(0, {TP: 10}, {TP: 50})
    dog.observe(20, {TP: 11}, {TP: 50})  # moved: a slow consumer is not a stalled one
    assert dog.observe(45, {TP: 11}, {TP: 50}) == []
    assert dog.observe(50, {TP: 11}, {TP: 50}) != []
    idle = ProgressWatchdog(stall_s=30)
    for now in range(0, 100, 10):  # nothing to read: standing still is right
        assert idle.observe(now, {TP: 50}, {TP: 50}) == []
    idle.observe(100, {TP: 50}, {TP: 51})  # lag starts now, not when the offset last moved
    assert idle.observe(129, {TP: 50}, {TP: 51}) == []
    assert idle.observe(130, {TP: 50}, {TP: 51}) != []


def test_a_partition_never_committed_counts_from_when_it_was_first_seen_with_lag() -> None:
    dog = ProgressWatchdog(stall_s=10)
    assert dog.observe(0, {TP: None}, {TP: 0}) == []
    dog.observe(5, {TP: None}, {TP: 3})
    [stall] = dog.observe(15, {TP: None}, {TP: 3})
    assert stall.lag == 3 and "committed nothing" in stall.describe()


def test_partitions_given_away_are_forgotten_and_new_ones_start_fresh() -> None:
    dog = ProgressWatchdog(stall_s=10)
    dog.observe(0, {TP: 1, OTHER: 1}, {TP: 9, OTHER: 9})
    assert [s.topic for s in dog.observe(10, {TP: 1, OTHER: 1}, {TP: 9, OTHER: 9})] == [
        "sentinel.k8s",
        "sentinel.logs",
    ]
    assert dog.observe(11, {OTHER: 1}, {OTHER: 9})[0].topic == "sentinel.k8s"
    # TP comes back (a rebalance gave it back): its clock starts again.
    assert [s.topic for s in dog.observe(12, {TP: 1, OTHER: 1}, {TP: 9, OTHER: 9})] == [
        "sentinel.k8s"
    ]


def test_excused_and_unknown_stop_the_clocks() -> None:
    dog = ProgressWatchdog(stall_s=10)
    dog.observe(0, {TP: 1}, {TP: 9})
    dog.excused(8)  # e.g. recovering tables: not a stall, and counted from its end
    assert dog.observe(17, {TP: 1}, {TP: 9}) == []
    assert dog.observe(18, {TP: 1}, {TP: 9}) != []
    dog.unknown()  # the broker did not answer: judge afresh
    assert dog.stalled == []
    assert dog.observe(20, {TP: 1}, {TP: 9}) == []


def test_stall_s_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ProgressWatchdog(0)


class Offsets:
    def __init__(self) -> None:
        self.committed_at: dict[tuple[str, int], int | None] = {}
        self.end_at: dict[tuple[str, int], int] = {}
        self.fail = False

    def committed(self, partitions: object) -> dict[tuple[str, int], int | None]:
        if self.fail:
            raise RuntimeError("broker gone")
        return dict(self.committed_at)

    def ends(self, partitions: object) -> dict[tuple[str, int], int]:
        return dict(self.end_at)


def test_the_monitor_samples_owned_partitions_and_honours_excuses() -> None:
    offsets = Offsets()
    offsets.committed_at, offsets.end_at = {TP: 4}, {TP: 9}
    owned = Ownership(frozenset({TP}))
    now = [0.0]
    monitor = ProgressMonitor(
        "worker",
        offsets,
        lambda: owned,
        stall_s=10,
        interval_s=1,
        clock=lambda: now[0],  # type: ignore[arg-type]
    )
    assert monitor.sample() == []
    now[0] = 10
    assert [s.partition for s in monitor.sample()] == [0]
    owned = Ownership(frozenset({TP}), excuse="recovering its tables")
    now[0] = 11
    assert monitor.sample() == []
    assert monitor.now_owned().excuse == "recovering its tables"
    owned = Ownership(frozenset({TP}))
    offsets.fail = True
    now[0] = 30
    assert monitor.sample() == []  # unknown, not stalled
    offsets.fail = False
    assert monitor.sample() == []
    now[0] = 40
    assert monitor.stalled == [] and monitor.sample() != []
