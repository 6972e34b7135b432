"""Run tracking as pure steps: one input message in, what to store and send out.

The Faust agent looks up states in its table and calls `RunTracker.on_message`; the tracker
returns an `Outcome` (new states, test results, structure anomalies, BINDs for the links topic,
dead letters) and the agent writes them. Nothing here touches Kafka.

Event time (DESIGN.md "Time")
    The watermark is the newest event time seen minus `allowed_lateness_s`. In live mode a
    WATERMARK tick (sent by the worker's timer once a second to every partition) carries the
    wall clock; it counts only when no input has come for `idle_watermark_s`, so a hung run
    times out even when nothing else happens. `sentinel analyze` sets no idle clock and a huge
    lateness, and sends one final WATERMARK at the end of the capture: then every decision that
    depends on time is taken once, with all input known, and a replay as fast as possible gives
    the same runs and anomalies as living through it.

Which runs to look at when time passes: per partition, an index of each open run's next
deadline (timeouts, quiet periods, structure checks); it is rebuilt from the table after a
restart (`rebuild`) and when a partition comes back after a rebalance (`forget`).

Retention (issue 17)
    A settled run (ended, end-of-run checks done, history entry sent) stays in the index with
    one more deadline: its last event + `settle_s` + `retain_ended_s`. When the watermark passes
    it, the outcome names the run in `retired` and the worker deletes its table entries (its
    final state stays on the compacted `sentinel.runs` and in the store). Input for a run with
    no state whose event time is older than the watermark minus `retain_ended_s` can only be for
    a retired run (or one never seen, equally too late to track): it is dead-lettered
    (`LateForRetiredRun`), so it never opens a partial run under the id of a finished one.
    That test needs no memory per retired run. `sentinel analyze` retains for as long as it
    waits (`OFFLINE_LATENESS_S`), so a replay keeps everything, as before.
    Known gap: the watermark follows the newest input of any kind, so log-derived signals
    that trail it (a router working through a log backlog while CI events keep it current) by
    more than settle + lateness + retention find their run retired and are dead-lettered;
    they came after the run had settled before retention too (BENCHMARKS.md, soak).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from processors.anomalies.infra import attribute, detect_infra
from processors.anomalies.silence import detect_log_silence, silence_deadlines
from processors.runs.linking import bind_signal, unbind_signal
from processors.runs.source_signals import REPLAY
from processors.runs.state import (
    Policy,
    advance,
    apply,
    apply_signal,
    ci_correlation_keys,
    deadlines,
    has_test_batch,
)
from processors.runs.structure import evaluate, next_deadline
from runtime.config import InfraDetectorsConfig, Settings, StructureRule
from schemas.keys import KEY_MISMATCH, key_problem
from schemas.messages import (
    Anomaly,
    CiEvent,
    LogLine,
    RunAttribution,
    RunSignal,
    RunState,
    SignalKind,
    TestResult,
)
from schemas.topics import CI

_ANOMALY_PREFIX = "anomaly:"
JUNIT_SOURCE = "junit"
_SETTLED_KEY = "structure:settled"
LATE_FOR_RETIRED = "LateForRetiredRun"


@dataclass
class Outcome:
    states: list[RunState] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    binds: list[RunSignal] = field(default_factory=list)
    # Every result of a new test batch (with the run id), to keep with the run for its history.
    batch_results: list[TestResult] = field(default_factory=list)
    # Runs that just ended for good (end-of-run checks done): their history entry is due.
    finished: list[RunState] = field(default_factory=list)
    # Log lines for the run's log analysis: (run id, signal id, line).
    log_lines: list[tuple[str, str, LogLine]] = field(default_factory=list)
    # A pod of the run logged (any level) in an activity bucket: (run id, signal id, pod, when).
    log_activity: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    # Settled runs kept `retain_ended_s` past their end: their table entries are to be deleted
    # (and their correlation keys let go: UNBINDs in `binds`).
    retired: list[str] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    # Event time of the input that made this outcome (for the processing latency metric).
    event_time: datetime | None = None


@dataclass
class TrackerConfig:
    policy: Policy = field(default_factory=Policy)
    ignore_check_suite_apps: frozenset[str] = frozenset({"github-actions"})
    rules: tuple[StructureRule, ...] = ()
    settle_s: float = 60.0
    allowed_lateness_s: float = 60.0
    idle_watermark_s: float | None = 10.0
    infra: InfraDetectorsConfig | None = None
    log_silence_s: float | None = None  # None: off
    activity_bucket_s: float = 60.0
    retain_ended_s: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackerConfig:
        tracking = settings.tracking
        return cls(
            policy=Policy(
                inactivity_timeout_s=tracking.inactivity_timeout_s,
                pod_quiet_period_s=tracking.pod_quiet_period_s,
            ),
            ignore_check_suite_apps=frozenset(tracking.ignore_check_suite_apps),
            rules=tuple(settings.structure.rules),
            settle_s=tracking.settle_s,
            allowed_lateness_s=tracking.allowed_lateness_s,
            idle_watermark_s=tracking.idle_watermark_s,
            infra=settings.anomalies.infra if settings.anomalies.infra.enabled else None,
            log_silence_s=settings.anomalies.logs.silence_s,
            activity_bucket_s=tracking.activity_bucket_s,
            retain_ended_s=tracking.retain_ended_s,
        )


Load = Callable[[str], RunState | None]


class RunTracker:
    """Folds CI events and run signals into runs; decides what passing event time closes."""

    def __init__(self, config: TrackerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._newest: datetime | None = None  # newest event time seen on any input
        self._final: datetime | None = None  # end of input (offline analysis)
        self._replayed: datetime | None = None  # input processed up to here (offline analysis)
        self._last_input = clock()
        self._input_time: datetime | None = None  # event time of the message being handled
        self._due: dict[int, dict[str, datetime]] = {}  # partition -> run id -> next deadline
        self._rebuilt: set[int] = set()

    # -- inputs -------------------------------------------------------------------------------

    def on_message(
        self, topic_kind: str, raw: bytes, partition: int, load: Load, key: bytes | None = None
    ) -> Outcome:
        """One message of `sentinel.ci` (topic_kind "ci") or of run-signals ("signal").

        A CI event must carry its run id as its Kafka `key` (`schemas.keys`): under another key
        it lands on a partition whose table does not hold its run, away from the run's signals.
        """
        self._input_time = None
        if topic_kind == "ci":
            out = self._on_ci(raw, partition, load, key)
        else:
            out = self._on_signal(raw, partition, load)
        out.event_time = self._input_time
        return out

    def _on_ci(self, raw: bytes, partition: int, load: Load, message_key: bytes | None) -> Outcome:
        try:
            event = CiEvent.model_validate_json(raw)
        except ValidationError as exc:
            return Outcome(error=f"not a valid CiEvent: {exc}", error_type="ValidationError")
        wrong_key = key_problem(CI, message_key, event)
        if wrong_key is not None:
            return Outcome(error=wrong_key, error_type=KEY_MISMATCH)
        self._saw(event.event_time)
        before = load(event.run_id)
        if before is None and self._too_late(event.event_time):
            return self._late(f"CI event {event.event_id}", event.run_id, event.event_time)
        try:
            state = apply(before, event, self.config.ignore_check_suite_apps, self.config.policy)
        except ValueError as exc:  # e.g. a stage event without a stage id: not retriable
            return Outcome(error=str(exc), error_type="InvalidEvent")
        out = Outcome()
        if state is not None:
            known = set(before.correlation_keys) if before else set()
            for key in ci_correlation_keys(event):
                if key not in known:
                    out.binds.append(
                        bind_signal(key, event.run_id, event.event_id, event.event_time)
                    )
            self._settle(state, partition, out)
        return out

    def _on_signal(self, raw: bytes, partition: int, load: Load) -> Outcome:
        try:
            signal = RunSignal.model_validate_json(raw)
        except ValidationError as exc:
            return Outcome(error=f"not a valid RunSignal: {exc}", error_type="ValidationError")
        if signal.kind is SignalKind.WATERMARK:
            return self._on_watermark(signal, partition, load)
        if signal.run_id is None:
            return Outcome(error="run signal without run_id", error_type="InvalidEvent")
        if signal.kind is SignalKind.LOG:
            # For the log detectors only: the run's state is not what a log line changes
            # (its activity comes as ACTIVITY signals).
            if signal.log_line is None:
                return Outcome(error="log signal without a line", error_type="InvalidEvent")
            # Time first: the state is read (and parsed) only for an old line.
            if self._too_late(signal.event_time) and load(signal.run_id) is None:
                return self._late("log signal", signal.run_id, signal.event_time)
            return Outcome(log_lines=[(signal.run_id, signal.signal_id, signal.log_line)])
        self._saw(signal.event_time)
        before = load(signal.run_id)
        if before is None and self._too_late(signal.event_time):
            kind = f"{signal.kind.value} signal {signal.signal_id}"
            return self._late(kind, signal.run_id, signal.event_time)
        new_batch = signal.kind is SignalKind.TESTS and not has_test_batch(before, signal.signal_id)
        try:
            state = apply_signal(before, signal, self.config.policy)
        except ValueError as exc:
            return Outcome(error=str(exc), error_type="InvalidEvent")
        out = Outcome()
        if signal.kind is SignalKind.ACTIVITY and signal.log_pod is not None:
            # The log baseline counts windows in which pods logged at all (issue 12).
            out.log_activity.append(
                (signal.run_id, signal.signal_id, signal.log_pod, signal.event_time)
            )
        if new_batch:
            out.batch_results = [
                result.model_copy(update={"run_id": signal.run_id})
                for result in signal.test_results
            ]
            if signal.source != JUNIT_SOURCE:  # the upload published its results itself
                out.tests = list(out.batch_results)
        if state is not None:
            self._settle(state, partition, out)
        return out

    def _on_watermark(self, tick: RunSignal, partition: int, load: Load) -> Outcome:
        if tick.final:
            self._final = max(self._final or tick.event_time, tick.event_time)
        elif tick.source == REPLAY:
            # Offline: everything up to this time has been processed, so it is event time.
            self._replayed = max(self._replayed or tick.event_time, tick.event_time)
        elif self._idle():
            # Wall clock of the worker: only while no input is arriving (live mode).
            self._saw(tick.event_time, count_as_input=False)
        return self.due(partition, load)

    # -- time ---------------------------------------------------------------------------------

    def watermark(self) -> datetime | None:
        marks = []
        if self._newest is not None:
            marks.append(self._newest - timedelta(seconds=self.config.allowed_lateness_s))
        if self._final is not None:
            marks.append(self._final)
        if self._replayed is not None:
            marks.append(self._replayed)
        return max(marks) if marks else None

    def due(self, partition: int, load: Load) -> Outcome:
        """Re-check the runs of `partition` whose next deadline the watermark has passed."""
        out = Outcome()
        mark = self.watermark()
        pending = self._due.get(partition, {})
        if mark is None or not pending:
            return out
        final = self._final is not None
        for run_id in [r for r, when in pending.items() if final or when <= mark]:
            state = load(run_id)
            if state is None:
                pending.pop(run_id, None)
                continue
            if not self._retire(state, mark, pending, out):
                # Settled just now long after its end (its deadline passed while the worker was
                # down, or time jumped)? Then it goes in the same outcome: the agent deletes its
                # entries after it has sent its history entry.
                settled = self._settle(state, partition, out, force=True)
                self._retire(settled, mark, pending, out)
        return out

    def _retire(
        self, state: RunState, mark: datetime, pending: dict[str, datetime], out: Outcome
    ) -> bool:
        retire_at = self._retire_at(state)
        if retire_at is None or mark < retire_at:
            return False
        pending.pop(state.run_id, None)
        out.retired.append(state.run_id)
        # Keys a CI event bound to it (a runner pod name, a Jenkins runUrl) are let go too.
        out.binds += [
            unbind_signal(key, state.run_id, mark)
            for key in state.correlation_keys
            if key != state.run_id
        ]
        return True

    def _too_late(self, when: datetime) -> bool:
        """Older than any run still kept after its end can have had input."""
        mark = self.watermark()
        retain = timedelta(seconds=self.config.retain_ended_s)
        return mark is not None and when.astimezone(UTC) < mark - retain

    def _late(self, what: str, run_id: str, when: datetime) -> Outcome:
        retain = self.config.retain_ended_s
        error = (
            f"{what} for run {run_id} at {when.isoformat()} is older than the watermark "
            f"{self.watermark()} minus tracking.retain_ended_s={retain:g} and the run has no "
            "state: it ended and was retired (its final state is on the runs topic), or it is "
            "too late to track; not applied, so it cannot replace the run's final state"
        )
        return Outcome(error=error, error_type=LATE_FOR_RETIRED)

    def _retire_at(self, state: RunState) -> datetime | None:
        """When a settled run's table entries go: `retain_ended_s` after its last input settled.

        A run that an event opened again (no longer terminal) is not retired until it ends again.
        """
        if _SETTLED_KEY not in state.merge_keys or not state.status.terminal:
            return None
        last = max(state.finished_at or state.updated_at, state.updated_at)
        return last + timedelta(seconds=self.config.settle_s + self.config.retain_ended_s)

    def needs_rebuild(self, partition: int) -> bool:
        return partition not in self._rebuilt

    def forget(self, partition: int) -> None:
        """The partition went to another worker. Should it come back, its index is rebuilt
        from the table: the other worker opened, changed and closed runs of it meanwhile,
        and a run missing from the index is never re-checked as time passes (a hung run's
        log silence went unreported)."""
        self._rebuilt.discard(partition)
        self._due.pop(partition, None)

    def rebuild(self, partition: int, states: Iterable[RunState]) -> None:
        """After a (re)start: index the runs of a partition from the table (open ones, and
        settled ones for their retirement)."""
        self._rebuilt.add(partition)
        pending = self._due.setdefault(partition, {})
        for state in states:
            when = self._next_deadline(state)
            if when is not None:
                pending.setdefault(state.run_id, when)

    def _saw(self, when: datetime, count_as_input: bool = True) -> None:
        when = when.astimezone(UTC)
        if self._newest is None or when > self._newest:
            self._newest = when
        if count_as_input:
            self._last_input = self._clock()
            self._input_time = when

    def _idle(self) -> bool:
        idle_after = self.config.idle_watermark_s
        return idle_after is not None and self._clock() - self._last_input >= idle_after

    # -- after every change ---------------------------------------------------------------------

    def _settle(
        self, state: RunState, partition: int, out: Outcome, force: bool = False
    ) -> RunState:
        """Advance `state` to the watermark, check structure, index its next deadline."""
        mark = self.watermark()
        changed = not force
        if mark is not None:
            advanced = advance(state, mark, self.config.policy)
            if advanced is not None:
                state, changed = advanced, True
        attribution = self._attribution(state, mark)
        if attribution != state.attribution:
            state = state.model_copy(
                update={"attribution": attribution, "version": state.version + 1}
            )
            changed = True
        found = self._new_anomalies(state, mark)
        if found:
            state = _record_anomalies(state, found)
            out.anomalies.extend(found)
            changed = True
        if self._end_checked(state, mark) and _SETTLED_KEY not in state.merge_keys:
            state = _with_keys(state, {_SETTLED_KEY: "1"})
            changed = True
            out.finished.append(state)
        if changed:
            out.states.append(state)
        pending = self._due.setdefault(partition, {})
        when = self._next_deadline(state)
        if when is None:
            pending.pop(state.run_id, None)
        else:
            pending[state.run_id] = when
        return state

    def _new_anomalies(self, state: RunState, mark: datetime | None) -> list[Anomaly]:
        found: list[Anomaly] = []
        if self.config.rules:
            found += evaluate(
                state,
                self.config.rules,
                mark,
                settle_s=self.config.settle_s,
                final=self._final is not None,
            )
        if self.config.infra is not None:
            found += detect_infra(state, mark, self.config.infra)
        if self.config.log_silence_s is not None:
            found += detect_log_silence(
                state, mark, self.config.log_silence_s, self.config.activity_bucket_s
            )
        return _reports(state, found)

    def _attribution(self, state: RunState, mark: datetime | None) -> RunAttribution | None:
        """Infrastructure that explains a failed run (derived again on every change)."""
        if self.config.infra is None or not state.status.terminal:
            return None
        found = attribute(state, detect_infra(state, mark, self.config.infra))
        if found is None:
            return None
        return RunAttribution(
            cause=found.cause,
            types=list(found.types),
            anomaly_ids=list(found.anomaly_ids),
            summary=found.summary,
        )

    def _end_checked(self, state: RunState, mark: datetime | None) -> bool:
        if not state.status.terminal:
            return False
        if self._final is not None:
            return True
        end = state.finished_at or state.updated_at
        return mark is not None and mark >= end + timedelta(seconds=self.config.settle_s)

    def _next_deadline(self, state: RunState) -> datetime | None:
        found = list(deadlines(state, self.config.policy))
        mark = self.watermark()
        if _SETTLED_KEY not in state.merge_keys:
            if state.status.terminal:  # its end-of-run checks and history entry are due then
                end = state.finished_at or state.updated_at
                found.append(end + timedelta(seconds=self.config.settle_s))
            if self.config.rules:
                structure = next_deadline(
                    state, self.config.rules, settle_s=self.config.settle_s, after=mark
                )
                if structure is not None:
                    found.append(structure)
            # Detectors' limits: those already passed were judged just now (`_settle` checks
            # before it indexes), so only future ones are due; else every tick re-checks them.
            limits: list[datetime] = []
            if self.config.infra is not None and not state.status.terminal:
                limits += _pending_deadlines(state, self.config.infra)
            if self.config.log_silence_s is not None:
                limits += silence_deadlines(
                    state, self.config.log_silence_s, self.config.activity_bucket_s
                )
            found += [when for when in limits if mark is None or when > mark]
        else:
            retire_at = self._retire_at(state)
            if retire_at is not None:
                found.append(retire_at)
        return min(found) if found else None


def _pending_deadlines(state: RunState, config: InfraDetectorsConfig) -> list[datetime]:
    """When still-pending pods become `pending_too_long` (so it fires while they wait)."""
    limit = timedelta(seconds=config.pending_limit_s, microseconds=1)
    return [
        pod.created_at + limit
        for pod in state.pods
        if pod.created_at is not None and pod.started_at is None and not pod.terminated
    ]


def _reports(state: RunState, found: Iterable[Anomaly]) -> list[Anomaly]:
    """The findings to send: new ones, and known ones whose content changed since they were
    last sent (issue 17).

    A run's inputs reach it in any order (its Job, pods and Events are keyed apart on the k8s
    topic), so the first report of a finding is made from whatever had arrived: the
    BackoffLimitExceeded Event without the Job, or the Job without its pods. Reporting it
    again whenever its words change makes the newest report the one made from everything
    the run has seen, the same in every order; the anomalies table keeps the newest report
    of an id and the dispatcher updates the words of the alert it already holds (no second
    alert). A new time alone is not news (structure findings are timed by the watermark,
    which moves with every input), and `detected_at` never goes back: it is the table's
    version column, so the newest words must not carry an older time.
    """
    reports = []
    for anomaly in found:
        sent = state.merge_keys.get(_ANOMALY_PREFIX + anomaly.anomaly_id)
        sent_at = _sent_at(sent)
        if sent_at is not None and sent_at > anomaly.detected_at:
            anomaly = anomaly.model_copy(update={"detected_at": sent_at})
        if sent is None or _digest_of(sent) != _digest_of(_sent_mark(anomaly)):
            reports.append(anomaly)
    return reports


def _sent_mark(anomaly: Anomaly) -> str:
    """What the run keeps of a report: type, time and a digest of everything a user reads."""
    content = anomaly.model_dump_json(exclude={"detected_at"})
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    return f"{anomaly.type}|{anomaly.detected_at.isoformat()}|{digest}"


def _digest_of(mark: str) -> str:
    return mark.rsplit("|", 1)[-1]


def _sent_at(mark: str | None) -> datetime | None:
    parts = (mark or "").split("|")
    # A mark without a time (bare type) was written before reports were repeated.
    return datetime.fromisoformat(parts[1]) if len(parts) == 3 else None


def _record_anomalies(state: RunState, found: Collection[Anomaly]) -> RunState:
    return _with_keys(state, {_ANOMALY_PREFIX + a.anomaly_id: _sent_mark(a) for a in found})


def _with_keys(state: RunState, keys: dict[str, str]) -> RunState:
    return state.model_copy(
        update={"merge_keys": {**state.merge_keys, **keys}, "version": state.version + 1}
    )


def decode_state(raw: bytes | None) -> RunState | None:
    return None if raw is None else RunState.model_validate_json(raw)
