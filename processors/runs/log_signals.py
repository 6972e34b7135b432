"""Run signals from container log lines (pure: no Faust, no Kafka, no I/O).

`LogSignals` turns the `LogLine`s of many container streams into `RunSignal`s, keeping a little
state per stream (bounded, least recently used streams go first). A stream that has had no line
for `tracking.retain_ended_s` of log event time (the newest line of any stream) is finished and
forgotten too: its pod is gone or its run ended long ago (issue 17: without this the state of
every container ever seen was kept up to the cap, about 10 KB each). The keys of forgotten
streams are handed to the worker (`drain_forgotten`) to delete their log-stream-starts entries.

Log rules (per container stream, in line order)
    ACTIVITY  once per ``activity_bucket_s`` bucket of event time, stamped with the bucket start,
              so that a replay and a live run report the same buckets with the same ids.
    Jenkins   stage blocks (`processors.runs.jenkins_stages`) give STAGE signals.
    Markers   every `LogMarkerRule` whose container globs and pattern match gives a MARKER signal
              (with a status only for run_start/run_end, which the tracker reads as the run's),
              and stage_start/stage_end also give a STAGE signal ``marker:<stage>``.
    Tests     a `TestLogParser` per stream; each batch of results is one TESTS signal with counts.
    LOG       warning/error lines and what may continue a stack trace, for the log detectors.

Judgment calls
    * Signal ids are hashes of stream + bucket / stage / line time and text / test identities,
      never of arrival order or wall-clock time: a redelivered input gives the same id and is
      applied once, and a replay gives the same ids as the live run.
    * The MARKER of a stage_start/stage_end rule carries no status: the tracker reads a
      marker's status as the run's own. A stage rule without a ``stage`` group or setting names
      its stage after the rule. A status word the table does not know falls back to the rule's
      status, then succeeded.
    * Parsed test results get the receiving time of the line that completed them (not "now"),
      so the same lines give equal signals; their run_id stays "" for the tracker to rewrite.
    * Open Jenkins stages are not closed by `finish_stream`/`flush`: the stream may only have
      been evicted or the worker stopped, and the run's own end closes what is still open.
    * A line older than the newest line of its stream is a line sent again (a container writes
      its log in time order): it gives nothing. A clock stepped back on the node would hide
      the lines until time passes the newest again.

Known gaps
    * Stage numbering (``#2``), test attempt numbering and the activity bucket memory restart
      with a stream that was evicted and comes back: a repeated name or test may then get the id
      of an earlier one and be taken for a redelivery.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from processors.logs.levels import worth_analysing
from processors.runs.correlation import provider_of, route, signal_digest
from processors.runs.jenkins_stages import JenkinsStages, StageEvent
from processors.test_results.log_parsers import TestLogParser
from runtime.config import LogMarkerRule, MarkerAction, TrackingConfig
from schemas.messages import (
    LogLine,
    RunSignal,
    RunStatus,
    SignalKind,
    TestCounts,
    TestResult,
)

LOG_SOURCE = "logs"
StreamKey = tuple[str, str, str]

# ---------------------------------------------------------------------------------------------
# Log lines: markers

_STATUS_WORDS: dict[str, RunStatus] = {
    **dict.fromkeys(("succeeded", "success", "passed", "pass", "ok"), RunStatus.SUCCEEDED),
    **dict.fromkeys(("failed", "failure", "fail", "error"), RunStatus.FAILED),
    **dict.fromkeys(("cancelled", "canceled", "aborted"), RunStatus.CANCELLED),
    **dict.fromkeys(("timed_out", "timeout", "timedout"), RunStatus.TIMED_OUT),
    "unknown": RunStatus.UNKNOWN,
}


@dataclass(frozen=True)
class _Marker:
    rule: LogMarkerRule
    regex: re.Pattern[str]

    def applies_to(self, container: str) -> bool:
        return any(fnmatchcase(container, glob) for glob in self.rule.containers)

    def end_status(self, match: re.Match[str]) -> RunStatus:
        word = (_group(match, "status") or "").strip().lower()
        if word in _STATUS_WORDS:
            return _STATUS_WORDS[word]
        if self.rule.status is not None:
            return RunStatus(self.rule.status)
        return RunStatus.SUCCEEDED

    def stage_name(self, match: re.Match[str]) -> str:
        # Without a stage group or a configured stage, the rule's name still names something.
        return (_group(match, "stage") or "").strip() or self.rule.stage or self.rule.name


def _group(match: re.Match[str], name: str) -> str | None:
    return match.groupdict().get(name)


def compile_markers(rules: Iterable[LogMarkerRule]) -> list[_Marker]:
    return [_Marker(rule, re.compile(rule.pattern)) for rule in rules]


# ---------------------------------------------------------------------------------------------
# Log lines: per stream


@dataclass
class _Route:
    run_id: str | None
    correlation_key: str | None
    namespace: str

    @property
    def provider(self) -> str | None:
        # A standalone run keyed by correlation is described like its pods describe it.
        if self.run_id is not None and self.run_id == self.correlation_key:
            return provider_of(self.correlation_key)
        return None


def _route_line(line: LogLine) -> _Route | None:
    if line.run_id:
        return _Route(line.run_id, line.correlation_key, line.namespace)
    if line.correlation_key:
        run_id, _ = route(line.correlation_key)
        return _Route(run_id, line.correlation_key, line.namespace)
    return None


@dataclass
class _Stream:
    key: StreamKey
    route: _Route
    parser: TestLogParser = field(default_factory=lambda: TestLogParser(run_id=""))
    jenkins: JenkinsStages = field(default_factory=JenkinsStages)
    last_bucket: int | None = None
    received_at: datetime | None = None
    log_lines: int = 0  # lines sent on for analysis: numbers their ids (same time, same text)
    # (partition, offset) of the newest line fed: a line redelivered by Kafka (a rebalance, a
    # restart's recovery overlapping live input) must not be parsed twice, or a test parser
    # would take the repeated output for a retry and count the tests again.
    position: tuple[int, int] | None = None
    # Event time of the newest line fed. A container writes its log in time order, so a line
    # older than that was sent again (a log stream re-opened or re-read from its start, a
    # capture holding a line twice) at a new offset: parsed again, a go test "=== RUN" line
    # would open a second attempt of a test that already passed, which then "fails" at the
    # package line (issue 12's 12 tests of 11).
    newest: datetime | None = None


def _seen(newest: tuple[int, int] | None, position: tuple[int, int] | None) -> bool:
    """Whether `position` is at or before `newest` in the same partition."""
    if newest is None or position is None:
        return False
    return position[0] == newest[0] and position[1] <= newest[1]


class LogSignals:
    """Run signals from container log lines, one small state machine per container stream.

    Feed lines of a stream in order. At most `max_streams` streams are kept; the least recently
    fed one is finished (its pending test results reported) to make room.
    """

    def __init__(self, config: TrackingConfig, max_streams: int = 10_000) -> None:
        if max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        self.config = config
        self.max_streams = max_streams
        self._markers = compile_markers(config.log_markers)
        self._streams: OrderedDict[StreamKey, _Stream] = OrderedDict()
        self._newest: datetime | None = None  # newest line of any stream
        self._forgotten: list[StreamKey] = []

    def __len__(self) -> int:
        return len(self._streams)

    def knows(self, namespace: str, pod: str, container: str) -> bool:
        """Whether a stream is held (its earlier lines shaped what the next line means)."""
        return (namespace, pod, container) in self._streams

    def feed(self, line: LogLine, position: tuple[int, int] | None = None) -> list[RunSignal]:
        """Signals this line completes (plus those of a stream evicted to make room).

        `position` is the line's (partition, offset) in `sentinel.logs`: a line at or before the
        newest one fed to its stream from the same partition was seen already and gives nothing.
        """
        routed = _route_line(line)
        if routed is None:
            return []
        key = (line.namespace, line.pod, line.container)
        known = self._streams.get(key)
        if known is not None and _seen(known.position, position):
            return []
        if known is not None and known.newest is not None and line.event_time < known.newest:
            return []  # sent again: this stream's lines are in time order
        out: list[RunSignal] = []
        stream = self._stream(key, routed, out)
        stream.newest = line.event_time
        if position is not None:
            stream.position = position
        stream.route, stream.received_at = routed, line.received_at
        at = line.event_time
        out.extend(self._activity(stream, at))
        if self.config.jenkins_stages:
            for part in line.line.split("\n"):
                out.extend(self._stage(stream, event) for event in stream.jenkins.feed(part, at))
        out.extend(self._marker_signals(stream, line))
        out.extend(self._tests(stream, stream.parser.feed(line.line, at)))
        if worth_analysing(line.line):
            stream.log_lines += 1
            signal_id = signal_digest("log", *stream.key, at.isoformat(), stream.log_lines)
            out.append(self._signal(stream, signal_id, SignalKind.LOG, at, log_line=line))
        out.extend(self._expire(at))
        return out

    def release(self, owned_elsewhere: Callable[[StreamKey], bool]) -> int:
        """Drop, without finishing them, the streams `owned_elsewhere` selects: their partition
        went to another worker, which carries them on from the lines it re-reads. Should the
        partition come back, the router rebuilds them the same way (`log_recovery`): state kept
        from before would miss every line the other worker read meanwhile. Returns how many."""
        gone = [key for key in self._streams if owned_elsewhere(key)]
        for key in gone:
            del self._streams[key]
        return len(gone)

    def drain_forgotten(self) -> list[StreamKey]:
        """Streams finished since the last call (expired or evicted), to forget elsewhere too."""
        forgotten, self._forgotten = self._forgotten, []
        return forgotten

    def _expire(self, at: datetime) -> list[RunSignal]:
        """Finish the streams silent for `retain_ended_s`, least recently fed first.

        Only the front of the LRU order is looked at, so a line costs O(streams expired).
        """
        if self._newest is None or at > self._newest:
            self._newest = at
        cutoff = self._newest - timedelta(seconds=self.config.retain_ended_s)
        out: list[RunSignal] = []
        while self._streams:
            key, oldest = next(iter(self._streams.items()))
            if oldest.newest is None or oldest.newest >= cutoff:
                break
            self._streams.popitem(last=False)
            self._forgotten.append(key)
            out.extend(self._finish(oldest))
        return out

    def finish_stream(self, namespace: str, pod: str, container: str) -> list[RunSignal]:
        """The stream ended (container gone): report what it still holds and forget it."""
        stream = self._streams.pop((namespace, pod, container), None)
        return [] if stream is None else self._finish(stream)

    def flush(self) -> list[RunSignal]:
        """Finish every stream (shutdown, end of a replay), least recently fed first."""
        out: list[RunSignal] = []
        while self._streams:
            _, stream = self._streams.popitem(last=False)
            out.extend(self._finish(stream))
        return out

    def _stream(self, key: StreamKey, routed: _Route, out: list[RunSignal]) -> _Stream:
        stream = self._streams.get(key)
        if stream is not None:
            self._streams.move_to_end(key)
            return stream
        while len(self._streams) >= self.max_streams:
            evicted_key, evicted = self._streams.popitem(last=False)
            self._forgotten.append(evicted_key)
            out.extend(self._finish(evicted))
        stream = _Stream(key, routed)
        self._streams[key] = stream
        return stream

    def _finish(self, stream: _Stream) -> list[RunSignal]:
        return self._tests(stream, stream.parser.finish())

    def _signal(
        self, stream: _Stream, signal_id: str, kind: SignalKind, at: datetime, **fields: Any
    ) -> RunSignal:
        routed = stream.route
        return RunSignal(
            signal_id=signal_id,
            kind=kind,
            run_id=routed.run_id,
            correlation_key=routed.correlation_key,
            source=LOG_SOURCE,
            event_time=at,
            provider=routed.provider,
            namespace=routed.namespace,
            **fields,
        )

    def _activity(self, stream: _Stream, at: datetime) -> list[RunSignal]:
        size = self.config.activity_bucket_s
        bucket = math.floor(at.timestamp() / size)
        if stream.last_bucket is not None and bucket <= stream.last_bucket:
            return []
        stream.last_bucket = bucket
        start = datetime.fromtimestamp(bucket * size, UTC)
        signal_id = signal_digest("activity", *stream.key, start.isoformat())
        return [self._signal(stream, signal_id, SignalKind.ACTIVITY, start, log_pod=stream.key[1])]

    def _stage(self, stream: _Stream, event: StageEvent) -> RunSignal:
        signal_id = signal_digest("jenkins-stage", *stream.key, event.stage_id, event.tag)
        return self._signal(
            stream,
            signal_id,
            SignalKind.STAGE,
            event.at,
            status=event.status,
            conclusion=event.conclusion,
            stage_id=event.stage_id,
            stage_name=event.name,
            started_at=event.started_at,
            finished_at=event.finished_at,
        )

    def _marker_signals(self, stream: _Stream, line: LogLine) -> list[RunSignal]:
        out: list[RunSignal] = []
        for marker in self._markers:
            if not marker.applies_to(line.container):
                continue
            match = marker.regex.search(line.line)
            if match is not None:
                out.extend(self._marker(stream, marker, match, line))
        return out

    def _marker(
        self, stream: _Stream, marker: _Marker, match: re.Match[str], line: LogLine
    ) -> list[RunSignal]:
        rule, at = marker.rule, line.event_time
        base_id = signal_digest("marker", *stream.key, rule.name, at.isoformat(), line.line)
        action = rule.action
        if action is MarkerAction.MARK:
            return [self._signal(stream, base_id, SignalKind.MARKER, at, marker=rule.name)]
        if action is MarkerAction.RUN_START:
            return [
                self._signal(
                    stream,
                    base_id,
                    SignalKind.MARKER,
                    at,
                    marker=rule.name,
                    status=RunStatus.RUNNING,
                    started_at=at,
                )
            ]
        if action is MarkerAction.RUN_END:
            return [
                self._signal(
                    stream,
                    base_id,
                    SignalKind.MARKER,
                    at,
                    marker=rule.name,
                    status=marker.end_status(match),
                    conclusion=_group(match, "status"),
                    finished_at=at,
                )
            ]
        return self._marker_stage(stream, marker, match, at, base_id)

    def _marker_stage(
        self, stream: _Stream, marker: _Marker, match: re.Match[str], at: datetime, base_id: str
    ) -> list[RunSignal]:
        name = marker.stage_name(match)
        starting = marker.rule.action is MarkerAction.STAGE_START
        stage = self._signal(
            stream,
            f"{base_id}-stage",
            SignalKind.STAGE,
            at,
            status=RunStatus.RUNNING if starting else marker.end_status(match),
            conclusion=None if starting else _group(match, "status"),
            stage_id=f"marker:{name}",
            stage_name=name,
            started_at=at if starting else None,
            finished_at=None if starting else at,
        )
        # The MARKER carries no status: the tracker reads a marker's status as the run's own.
        seen = self._signal(stream, base_id, SignalKind.MARKER, at, marker=marker.rule.name)
        return [stage, seen]

    def _tests(self, stream: _Stream, results: list[TestResult]) -> list[RunSignal]:
        if not results:
            return []
        if stream.received_at is not None:
            # Received with the line that completed them, not "now": same input, same output.
            for result in results:
                result.received_at = stream.received_at
        identities = sorted((r.suite or "", r.name, r.attempt, r.status.value) for r in results)
        signal_id = signal_digest("tests", *stream.key, *(repr(i) for i in identities))
        return [
            self._signal(
                stream,
                signal_id,
                SignalKind.TESTS,
                max(r.event_time for r in results),
                tests=TestCounts.of(results),
                test_results=results,
            )
        ]
