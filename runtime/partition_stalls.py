"""Partition progress: a consumer that has lag on a partition but does not move is stalled.

Pure logic behind the watchdog of `runtime.progress_monitor`: it is fed samples (the partitions
one process owns, the offset its consumer group has committed on each, and each partition's end
offset) and says which partitions have had lag without their committed offset moving for
`stall_s`. A consumer whose main loop still turns but that no longer fetches, processes or
commits (faust-streaming/faust #175, #523, #532) is found this way; a busy one is not, because
its committed offset keeps moving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class PartitionStall:
    """A partition with lag whose committed offset has not moved for `unmoved_s` seconds."""

    topic: str
    partition: int
    committed: int | None
    end: int
    unmoved_s: float

    @property
    def lag(self) -> int:
        return self.end - max(self.committed or 0, 0)

    def describe(self) -> str:
        committed = "nothing" if self.committed is None else f"offset {self.committed}"
        return (
            f"{self.topic}[{self.partition}]: committed {committed} of {self.end} "
            f"({self.lag} behind) and not moved for {self.unmoved_s:.0f} s"
        )


@dataclass
class _Track:
    committed: int | None
    since: float  # first sample with lag since the committed offset last moved
    lagging: bool


class ProgressWatchdog:
    """Remembers, per owned partition, since when its committed offset has not moved while it
    had lag. `observe` takes one sample; `excused` (a recovery in progress, a store outage the
    component waits out) and `unknown` (the broker did not answer) restart every clock, so only
    an unexplained standstill counts."""

    def __init__(self, stall_s: float) -> None:
        if stall_s <= 0:
            raise ValueError("stall_s must be positive")
        self.stall_s = stall_s
        self._tracks: dict[TopicPartition, _Track] = {}
        self._stalled: list[PartitionStall] = []

    def observe(
        self,
        now: float,
        committed: Mapping[TopicPartition, int | None],
        ends: Mapping[TopicPartition, int],
    ) -> list[PartitionStall]:
        """One sample: `committed` holds exactly the partitions this process owns now (a
        partition missing from `ends` is not judged this time). Returns the stalled ones."""
        tracks: dict[TopicPartition, _Track] = {}
        stalled: list[PartitionStall] = []
        for tp, position in committed.items():
            previous = self._tracks.get(tp)
            end = ends.get(tp)
            lagging = end is not None and end > max(position or 0, 0)
            if (
                previous is None
                or previous.committed != position
                or not lagging
                or not previous.lagging
            ):
                tracks[tp] = _Track(position, now, lagging)
                continue
            tracks[tp] = previous
            unmoved = now - previous.since
            if end is not None and unmoved >= self.stall_s:
                stalled.append(PartitionStall(tp[0], tp[1], position, end, unmoved))
        self._tracks = tracks
        self._stalled = sorted(stalled, key=lambda s: (s.topic, s.partition))
        return list(self._stalled)

    def excused(self, now: float) -> None:
        """The component says why it is not moving (and something else reports it): no clock
        runs meanwhile."""
        for track in self._tracks.values():
            track.since = now
        self._stalled = []

    def unknown(self) -> None:
        """No sample could be taken (the broker did not answer): forget, judge afresh later."""
        self._tracks.clear()
        self._stalled = []

    @property
    def stalled(self) -> list[PartitionStall]:
        return list(self._stalled)
