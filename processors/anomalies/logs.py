"""Log detectors: error spikes and new error templates (pure: no Faust, no Kafka, no I/O).

Everything runs on event time (DESIGN.md "Time"): windows come from the log lines' timestamps and
``now`` is the caller's watermark, never the wall clock, so a fast replay and a live run give the
same anomalies.

State
    `RunLogState` (one per run, JSON-serialisable for a Faust table keyed by run) holds, per pod,
    the events and error events per tumbling ``window_s`` window (with up to 3 sample error lines
    per window), the error templates of the run (text, first time, count, up to 3 sample lines),
    the last log time per pod, and per container stream the event being folded (see below).
    `PipelineLogBaseline` (one per pipeline, bounded) holds the error templates seen in earlier
    runs (LRU, `max_templates`), per-run window statistics of the last `max_runs` runs (mean and
    max errors per pod-window are derived from them) and the ids of the runs already recorded.

`LogAnalyzer`
    ``feed(state, line, miner)`` folds one `LogLine` in; ``detect(...)`` returns the anomalies that
    hold now; ``update_baseline(baseline, state)`` records a finished run (idempotent per run id);
    ``miner_for(pipeline, baseline)`` keeps one `LogTemplateMiner` per pipeline, seeded from the
    baseline.

Events and stack traces
    Each container stream is run through `StackTraceFolder`, so a Python traceback or a Java
    stack trace (``\\tat`` frames, ``Caused by:``) is one event: counted once, at the time of its
    first line, as soon as it is known to be an error (level error or fatal; an event whose
    first line was not an error becomes one when a trace is folded into it, as the folder
    folds a traceback into the line logged just before it). The folder's
    pending event (first line, level, mode) is kept in the state, so a trace split by a worker
    restart is still one event.
    The line that names an error event (the one that is mined) is its first line when that line
    is an error by itself (``ERROR Failed to ...``, ``E0102 ...``, ``Exception in thread ...``);
    otherwise (a bare ``Traceback (most recent call last):`` or a neutral line under which a trace
    was printed) the first folded line that is not a frame, i.e. the exception line
    (``ValueError: ...``, ``java.lang.IllegalStateException: ...``). JSON lines are mined on their
    ``msg``/``message``/``error`` fields, not on the whole object.

Template ids across restarts (judgment call)
    drain3's own persistence pickles the whole Drain tree (jsonpickle) and `LogTemplateMiner`'s
    id maps are not part of it, so instead ids are kept stable like this: the baseline and the
    run states store each template's id and current text; a rebuilt miner is *seeded* with those
    texts (`seed`: the text goes in as an already masked message, founding a cluster with the
    same template) and remembers an alias from the id the seeded cluster gets to the stored id.
    A line that falls into a seeded cluster is then reported under its old id; a cluster founded
    after the restart gets ``T + sha1(founding message)`` as before, which is what the old miner
    would have given it. Run states are seeded lazily, the first time `feed` sees a run on a
    given miner. As a second guard, a template whose id is unknown to the baseline is only new
    when its text does not match a known template either (same token count, at least
    ``sim_th`` of the positions equal, ``<*>`` matching anything), so an id that drifted (a
    restart, two workers each with their own miner) does not raise a false "new error".

Detectors (thresholds from `LogDetectorsConfig`)
    error_spike         a closed window's error events for one pod > spike_factor x baseline mean
                        AND >= spike_min_errors AND > baseline max. The baseline is over
                        pod-windows (a pod that logged anything in a window) of the last runs of
                        the pipeline. A window is closed when the watermark reaches its end, or
                        at ``final``. Subject: pod. Window: the tumbling window.
    new_error_template  an error template of this run that no earlier run of the pipeline had;
                        reported once the window holding its first occurrence is closed (so
                        late lines within the caller's lateness are in). Subject: template id.
                        Window: the tumbling window of its first occurrence. Evidence: template,
                        up to 3 sample lines.
    (Log silence is judged on the run's state by the tracker: processors.anomalies.silence.)
    Detectors that need history (spike, new template) judge from ``min_samples`` earlier runs
    that logged anything (any level: a run of info lines is a sample of "no errors here"), and
    from ``cold_start_samples`` with larger margins: spike factor and minimum errors x
    ``cold_start_factor``, and a new template must occur at least ``cold_start_factor`` times
    in the run. Runs the infrastructure broke are not samples. Both have severity warning and
    category app. Ids: 32 hex chars of sha256 over JSON [run_id, type, subject, window start,
    window end] (as in processors.runs.structure / processors.anomalies.tests); detected_at = window
    end. `detect` returns every finding that holds, each time: callers dedup on anomaly_id.

Other judgment calls
    * `feed` updates the state in place and returns it (a copy per log line would be costly).
    * Counts are per pod (the subject users see); template ids per pipeline.
    * A late line still counts in its window even when the window was already evaluated: a
      later `detect` may then report it (same id as a replay that saw the line in time). A late
      line that is an earlier occurrence of a template moves the template's first window, and
      with it the new_error_template id; callers should pass a watermark that already allows
      for lateness.
    * `miner_for` seeds a miner from the baseline only when it creates it; call `seed` to add
      templates later (e.g. a baseline loaded after the first line).
    * If the state's ``window_s`` differs from the baseline's (config changed), spikes are not
      checked and `update_baseline` restarts the window statistics.
"""

from __future__ import annotations

import json
import math
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from processors.anomalies.ids import anomaly_id
from processors.logs.levels import Event, StackTraceFolder, detect_level, is_continuation
from processors.logs.templates import DEFAULT_CONFIG, LogTemplateMiner, MinerConfig
from runtime.config import LogDetectorsConfig
from schemas.messages import Anomaly, AnomalyCategory, LogLine, Severity
from schemas.utc import as_utc as _utc

__all__ = [
    "ERROR_SPIKE",
    "NEW_ERROR_TEMPLATE",
    "BaselineRun",
    "LogAnalyzer",
    "PipelineLogBaseline",
    "RunLogState",
    "RunTemplate",
    "StreamState",
    "WindowCount",
    "anomaly_id",
    "mining_text",
    "template_matches",
]

ERROR_SPIKE = "error_spike"
NEW_ERROR_TEMPLATE = "new_error_template"

_ERROR_LEVELS = frozenset({"error", "fatal"})
_MAX_SAMPLES = 3
_SAMPLE_CHARS = 500
_MINING_CHARS = 2000
_TRACEBACK = "Traceback (most recent call last):"
_CHAIN = ("During handling of the above exception", "The above exception was the direct cause")
_JSON_MESSAGE_KEYS = ("msg", "message", "error", "err", "exception", "exc_info")
_WILDCARD = "<*>"
_MAX_SEEDED_RUNS = 10_000
_LOGFMT_FIELD = re.compile(r'(?:^|\s)(?P<k>msg|message|error|err)=(?P<v>"(?:[^"\\]|\\.)*"|\S+)')


# --------------------------------------------------------------------------------------------
# State models


class WindowCount(BaseModel):
    """Events and error events of one pod in one tumbling window."""

    events: int = 0
    errors: int = 0
    samples: list[str] = Field(default_factory=list)
    active: bool = Field(
        default=False,
        description="The pod logged in this window (any level: the run's activity signals).",
    )

    @property
    def logged(self) -> bool:
        return self.active or self.events > 0


class RunTemplate(BaseModel):
    """One error template seen in a run."""

    text: str
    first_time: AwareDatetime
    pod: str
    count: int = 0
    samples: list[str] = Field(default_factory=list)


class StreamState(BaseModel):
    """The event `StackTraceFolder` is folding on one container stream."""

    pod: str
    first_line: str
    time: AwareDatetime
    level: str | None = None
    mode: str | None = None
    counted: bool = False
    mined: bool = False
    strong: bool = Field(
        default=False, description="First line is an error by itself (it names the event)."
    )


class RunLogState(BaseModel):
    """Per-run log analysis state (a Faust table value keyed by run id)."""

    run_id: str
    pipeline: str | None = None
    window_s: float = 60.0
    windows: dict[str, dict[int, WindowCount]] = Field(
        default_factory=dict, description="pod -> window index (start / window_s) -> counts."
    )
    templates: dict[str, RunTemplate] = Field(default_factory=dict)
    streams: dict[str, StreamState] = Field(default_factory=dict)
    dropped_templates: int = 0
    dropped_windows: int = 0
    max_templates: int = 500
    max_windows_per_pod: int = 2000


class BaselineRun(BaseModel):
    """Window statistics of one earlier run."""

    run_id: str
    windows: int = 0
    errors: int = 0
    max_errors: int = 0


class PipelineLogBaseline(BaseModel):
    """Per-pipeline log baseline, bounded (a Faust table value keyed by pipeline)."""

    pipeline: str | None = None
    window_s: float = 60.0
    templates: dict[str, str] = Field(
        default_factory=dict, description="Error template id -> text, least recently seen first."
    )
    runs: list[BaselineRun] = Field(
        default_factory=list, description="Window statistics of the last runs, oldest first."
    )
    recorded: list[str] = Field(default_factory=list, description="Run ids already recorded.")
    n_runs: int = Field(
        default=0,
        description="Runs recorded that logged anything (any level), infrastructure-caused "
        "runs left out.",
    )
    max_templates: int = 5000
    max_runs: int = 50
    max_recorded: int = 2000

    @property
    def n_windows(self) -> int:
        return sum(r.windows for r in self.runs)

    @property
    def stat_runs(self) -> int:
        """Runs in the window statistics that logged anything."""
        return sum(1 for r in self.runs if r.windows > 0)

    @property
    def mean_errors(self) -> float:
        n = self.n_windows
        return sum(r.errors for r in self.runs) / n if n else 0.0

    @property
    def max_errors(self) -> int:
        return max((r.max_errors for r in self.runs), default=0)


# --------------------------------------------------------------------------------------------
# Helpers


def mining_text(line: str) -> str:
    """The text mined for a line: a JSON log's message fields, else the line (bounded)."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            obj: Any = json.loads(stripped)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            parts = [obj[k] for k in _JSON_MESSAGE_KEYS if isinstance(obj.get(k), str)]
            if parts:
                return " ".join(parts)[:_MINING_CHARS]
    fields = {m.group("k"): m.group("v") for m in _LOGFMT_FIELD.finditer(stripped)}
    if "msg" in fields or "message" in fields:
        parts = [_unquote(fields[k]) for k in _JSON_MESSAGE_KEYS if k in fields]
        return " ".join(parts)[:_MINING_CHARS]
    return stripped[:_MINING_CHARS]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def template_matches(a: str, b: str, sim_th: float = DEFAULT_CONFIG.sim_th) -> bool:
    """Do two template texts describe the same messages? Same token count, and at least
    ``sim_th`` of the positions equal, ``<*>`` matching anything."""
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb):
        return False
    if not ta:
        return True
    same = sum(1 for x, y in zip(ta, tb, strict=True) if x == y or _WILDCARD in (x, y))
    return same / len(ta) >= sim_th


def _iso(when: datetime) -> str:
    return _utc(when).isoformat(timespec="microseconds")


def _window_index(when: datetime, window_s: float) -> int:
    return math.floor(_utc(when).timestamp() / window_s)


def _window_bounds(index: int, window_s: float) -> tuple[datetime, datetime]:
    start = datetime.fromtimestamp(index * window_s, UTC)
    return start, start + timedelta(seconds=window_s)


def _sample(line: str) -> str:
    return line if len(line) <= _SAMPLE_CHARS else line[:_SAMPLE_CHARS] + "..."


def _names_event(line: str) -> bool:
    """Can this folded line name an error event (an exception line, not a frame)?"""
    if not line.strip() or line[:1] in (" ", "\t"):
        return False
    stripped = line.strip()
    return not (stripped.startswith(_TRACEBACK) or stripped.startswith(_CHAIN))


def _is_strong(line: str) -> bool:
    stripped = line.strip()
    return (
        detect_level(line) in _ERROR_LEVELS
        and not stripped.startswith(_TRACEBACK)
        and not is_continuation(line)
    )


@dataclass
class _MinerAux:
    """What the analyzer knows about one miner: id aliases from seeding, what it has seen."""

    alias: dict[str, str] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)  # every id this miner has returned
    stable: set[str] = field(default_factory=set)  # every id reported (after aliasing)
    seeded_runs: dict[str, None] = field(default_factory=dict)  # bounded, oldest first


# --------------------------------------------------------------------------------------------
# Analyzer


class LogAnalyzer:
    """Folds log lines into `RunLogState` and detects log anomalies (see the module docs)."""

    def __init__(
        self,
        config: LogDetectorsConfig | None = None,
        miner_config: MinerConfig = DEFAULT_CONFIG,
        *,
        max_miners: int = 256,
    ) -> None:
        self.config = config or LogDetectorsConfig()
        self.miner_config = miner_config
        self.max_miners = max_miners
        self._miners: dict[str, LogTemplateMiner] = {}
        self._aux: weakref.WeakKeyDictionary[LogTemplateMiner, _MinerAux] = (
            weakref.WeakKeyDictionary()
        )

    # -- states and miners -------------------------------------------------------------------

    def new_state(self, run_id: str, pipeline: str | None = None) -> RunLogState:
        return RunLogState(run_id=run_id, pipeline=pipeline, window_s=self.config.window_s)

    def new_baseline(self, pipeline: str | None = None) -> PipelineLogBaseline:
        return PipelineLogBaseline(pipeline=pipeline, window_s=self.config.window_s)

    def miner_for(
        self, pipeline: str | None, baseline: PipelineLogBaseline | None = None
    ) -> LogTemplateMiner:
        """The pipeline's miner; a new one is seeded from ``baseline``'s templates."""
        key = pipeline or ""
        miner = self._miners.pop(key, None)
        if miner is None:
            miner = LogTemplateMiner(self.miner_config)
            if baseline is not None:
                self.seed(miner, baseline.templates)
            while len(self._miners) >= self.max_miners:
                self._miners.pop(next(iter(self._miners)))
        self._miners[key] = miner  # most recently used last
        return miner

    def _aux_of(self, miner: LogTemplateMiner) -> _MinerAux:
        aux = self._aux.get(miner)
        if aux is None:
            aux = _MinerAux()
            self._aux[miner] = aux
        return aux

    def seed(self, miner: LogTemplateMiner, templates: Mapping[str, str]) -> None:
        """Teach ``miner`` known templates (id -> text) so that their ids survive a rebuild."""
        aux = self._aux_of(miner)
        saved = miner.strip_headers
        miner.strip_headers = False  # template texts are already stripped and masked
        try:
            for stable_id, text in templates.items():
                if stable_id in aux.stable or stable_id in aux.known or not text.strip():
                    continue
                mid, _template = miner.add(text)
                if mid not in aux.known:
                    aux.known.add(mid)
                    if mid != stable_id:
                        aux.alias[mid] = stable_id
                    aux.stable.add(stable_id)
                # else: the text joined a cluster the miner already has; that id prevails.
        finally:
            miner.strip_headers = saved

    def _mine(self, miner: LogTemplateMiner, line: str) -> tuple[str, str]:
        aux = self._aux_of(miner)
        mid, template = miner.add(mining_text(line))
        aux.known.add(mid)
        stable_id = aux.alias.get(mid, mid)
        aux.stable.add(stable_id)
        return stable_id, template

    # -- folding -----------------------------------------------------------------------------

    def feed(self, state: RunLogState, line: LogLine, miner: LogTemplateMiner) -> RunLogState:
        """Fold one log line into ``state`` (in place; returned for convenience)."""
        self._seed_once(state, miner)
        text = line.line.rstrip("\r\n")
        pending, folded = self._fold(state, line, text, miner)
        if pending.level in _ERROR_LEVELS:
            self._judge_error(state, miner, pending, text, folded)
        return state

    def _seed_once(self, state: RunLogState, miner: LogTemplateMiner) -> None:
        """A run's known templates go into the miner the first time this process sees it."""
        aux = self._aux_of(miner)
        if state.run_id in aux.seeded_runs:
            return
        aux.seeded_runs[state.run_id] = None
        if len(aux.seeded_runs) > _MAX_SEEDED_RUNS:
            del aux.seeded_runs[next(iter(aux.seeded_runs))]
        self.seed(miner, {tid: t.text for tid, t in state.templates.items()})

    def _fold(
        self, state: RunLogState, line: LogLine, text: str, miner: LogTemplateMiner
    ) -> tuple[StreamState, bool]:
        """The stream's current event after this line, and whether the line continued it."""
        when = _utc(line.event_time)
        key = f"{line.namespace}/{line.pod}/{line.container}"
        pending = state.streams.get(key)
        folder = StackTraceFolder()
        before: Event | None = None
        if pending is not None:
            # Restore the folder's pending event. StackTraceFolder has no public restore; its
            # decisions depend only on these two fields (the event's level and the trace mode).
            before = Event([pending.first_line], pending.level)
            folder._current = before
            folder._mode = pending.mode
        folder.feed(text)
        current = folder._current
        assert current is not None
        folded = before is not None and current is before
        if folded and pending is not None:
            pending.level = current.level
            pending.mode = folder._mode
            return pending, True
        # A finished error event that never showed a line naming it: use its first line,
        # unless that is a bare traceback header (a template every traceback shares).
        if (
            pending is not None
            and pending.counted
            and not pending.mined
            and not pending.first_line.strip().startswith(_TRACEBACK)
        ):
            pending.mined = True
            self._record_template(state, miner, pending, pending.first_line)
        pending = StreamState(
            pod=line.pod,
            first_line=_sample(text),
            time=when,
            level=current.level,
            mode=folder._mode,
            strong=_is_strong(text),
        )
        state.streams[key] = pending
        self._count_event(state, line.pod, when)
        return pending, folded

    def _judge_error(
        self,
        state: RunLogState,
        miner: LogTemplateMiner,
        pending: StreamState,
        text: str,
        folded: bool,
    ) -> None:
        """Count an error event once, and mine its template from the line that names it."""
        if not pending.counted:
            pending.counted = True
            self._count_error(state, pending)
        if pending.mined:
            return
        name: str | None = None
        if pending.strong:
            name = pending.first_line if folded else text
        elif folded and _names_event(text):
            name = text
        if name is not None:
            pending.mined = True
            self._record_template(state, miner, pending, name)

    def _cell(self, state: RunLogState, pod: str, when: datetime) -> WindowCount | None:
        cells = state.windows.setdefault(pod, {})
        index = _window_index(when, state.window_s)
        cell = cells.get(index)
        if cell is None:
            if len(cells) >= state.max_windows_per_pod:
                oldest = min(cells)
                if index < oldest:
                    state.dropped_windows += 1
                    return None
                del cells[oldest]
                state.dropped_windows += 1
            cell = cells[index] = WindowCount()
        return cell

    def note_activity(self, state: RunLogState, pod: str, when: datetime) -> RunLogState:
        """The pod logged something (any level) in the window holding ``when``: the window
        counts in the baseline as one with zero errors if no error comes (issue 12: a run that
        logged only info lines is a sample of "no errors here")."""
        cell = self._cell(state, pod, _utc(when))
        if cell is not None:
            cell.active = True
        return state

    def _count_event(self, state: RunLogState, pod: str, when: datetime) -> None:
        cell = self._cell(state, pod, when)
        if cell is not None:
            cell.events += 1

    def _count_error(self, state: RunLogState, pending: StreamState) -> None:
        cell = self._cell(state, pending.pod, pending.time)
        if cell is not None:
            cell.errors += 1

    def _record_template(
        self, state: RunLogState, miner: LogTemplateMiner, pending: StreamState, line: str
    ) -> None:
        cell = state.windows.get(pending.pod, {}).get(_window_index(pending.time, state.window_s))
        if cell is not None and len(cell.samples) < _MAX_SAMPLES:
            cell.samples.append(_sample(line))
        tid, text = self._mine(miner, line)
        entry = state.templates.get(tid)
        if entry is None:
            if len(state.templates) >= state.max_templates:
                state.dropped_templates += 1
                return
            entry = state.templates[tid] = RunTemplate(
                text=text, first_time=pending.time, pod=pending.pod
            )
        elif pending.time < entry.first_time:
            entry.first_time = pending.time
            entry.pod = pending.pod
        entry.text = text
        entry.count += 1
        if len(entry.samples) < _MAX_SAMPLES:
            sample = _sample(line)
            if sample not in entry.samples:
                entry.samples.append(sample)

    # -- detection ---------------------------------------------------------------------------

    def detect(
        self,
        state: RunLogState,
        baseline: PipelineLogBaseline | None,
        run_id: str,
        now: datetime,
        config: LogDetectorsConfig | None = None,
        final: bool = False,
    ) -> list[Anomaly]:
        """Every log anomaly that holds for the run at watermark ``now`` (deterministic ids).

        ``final``: the run is over, every window counts as closed.
        """
        cfg = config or self.config
        now = _utc(now)
        found: list[Anomaly] = []
        if baseline is None:
            return found
        spike_factor = _cold_factor(baseline.stat_runs, cfg)
        if spike_factor is not None and baseline.window_s == state.window_s:
            found.extend(self._spikes(state, baseline, run_id, now, cfg, final, spike_factor))
        new_factor = _cold_factor(baseline.n_runs, cfg)
        if new_factor is not None:
            found.extend(self._new_templates(state, baseline, run_id, now, final, new_factor))
        unique = {a.anomaly_id: a for a in found}
        return sorted(unique.values(), key=lambda a: (a.window_start, a.type, a.subject))

    def _spikes(
        self,
        state: RunLogState,
        baseline: PipelineLogBaseline,
        run_id: str,
        now: datetime,
        cfg: LogDetectorsConfig,
        final: bool,
        factor: float = 1.0,
    ) -> Iterable[Anomaly]:
        mean, top = baseline.mean_errors, baseline.max_errors
        spike_factor, min_errors = cfg.spike_factor * factor, cfg.spike_min_errors * factor
        for pod in sorted(state.windows):
            for index, cell in sorted(state.windows[pod].items()):
                start, end = _window_bounds(index, state.window_s)
                if not final and now < end:
                    continue
                n = cell.errors
                if n > spike_factor * mean and n >= min_errors and n > top:
                    yield _anomaly(
                        run_id,
                        ERROR_SPIKE,
                        pod,
                        f"{n} error events from pod {pod} in {state.window_s:g} s "
                        f"(baseline mean {mean:.2f}, max {top} per window)",
                        {
                            "pipeline": state.pipeline,
                            "pod": pod,
                            "observed": n,
                            "events": cell.events,
                            "baseline_mean": round(mean, 4),
                            "baseline_max": top,
                            "baseline_windows": baseline.n_windows,
                            "baseline_runs": baseline.stat_runs,
                            "threshold": {
                                "spike_factor": spike_factor,
                                "min_errors": min_errors,
                                "above": max(spike_factor * mean, top),
                                "margin_factor": factor,
                            },
                            "sample_lines": list(cell.samples),
                        },
                        (start, end),
                    )

    def _new_templates(
        self,
        state: RunLogState,
        baseline: PipelineLogBaseline,
        run_id: str,
        now: datetime,
        final: bool,
        factor: float = 1.0,
    ) -> Iterable[Anomaly]:
        by_length: dict[int, list[str]] | None = None
        sim_th = self.miner_config.sim_th
        for tid in sorted(state.templates):
            entry = state.templates[tid]
            if tid in baseline.templates or entry.count < factor:
                continue  # with few earlier runs, a new error must recur to count (cold start)
            start, end = _window_bounds(
                _window_index(entry.first_time, state.window_s), state.window_s
            )
            if not final and now < end:
                continue
            if by_length is None:
                by_length = {}
                for text in baseline.templates.values():
                    by_length.setdefault(len(text.split()), []).append(text)
            peers = by_length.get(len(entry.text.split()), [])
            if any(template_matches(entry.text, known, sim_th) for known in peers):
                continue
            yield _anomaly(
                run_id,
                NEW_ERROR_TEMPLATE,
                tid,
                f"New error signature in pod {entry.pod}: {entry.text[:200]}",
                {
                    "pipeline": state.pipeline,
                    "template_id": tid,
                    "template": entry.text,
                    "sample_lines": list(entry.samples[:_MAX_SAMPLES]),
                    "observed": entry.count,
                    "first_seen": _iso(entry.first_time),
                    "pod": entry.pod,
                    "baseline_runs": baseline.n_runs,
                    "baseline_templates": len(baseline.templates),
                },
                (start, end),
            )

    # -- baseline ----------------------------------------------------------------------------

    def update_baseline(
        self,
        baseline: PipelineLogBaseline | None,
        state: RunLogState,
        *,
        window_stats: bool = True,
    ) -> PipelineLogBaseline:
        """Record a finished run (a new baseline; recording a run id twice changes nothing).

        ``window_stats=False`` records the run's templates but keeps its error counts out of
        the spike statistics (e.g. a run the infrastructure broke).
        """
        base = (
            baseline.model_copy(deep=True)
            if baseline is not None
            else PipelineLogBaseline(pipeline=state.pipeline, window_s=state.window_s)
        )
        if state.run_id in base.recorded:
            return base
        base.recorded.append(state.run_id)
        del base.recorded[: max(0, len(base.recorded) - base.max_recorded)]
        cells = [c for pod in sorted(state.windows) for c in state.windows[pod].values()]
        windows = sum(1 for c in cells if c.logged)
        if windows == 0 and not state.templates:
            return base
        if window_stats:  # a run the infrastructure broke is no sample of the application
            base.n_runs += 1
        for tid in sorted(state.templates, key=lambda t: (state.templates[t].first_time, t)):
            base.templates.pop(tid, None)
            base.templates[tid] = state.templates[tid].text
        while len(base.templates) > base.max_templates:
            base.templates.pop(next(iter(base.templates)))
        if window_stats:
            if base.window_s != state.window_s:
                base.runs = []
                base.window_s = state.window_s
            base.runs.append(
                BaselineRun(
                    run_id=state.run_id,
                    windows=windows,
                    errors=sum(c.errors for c in cells),
                    max_errors=max((c.errors for c in cells), default=0),
                )
            )
            del base.runs[: max(0, len(base.runs) - base.max_runs)]
        return base


def _cold_factor(samples: int, cfg: LogDetectorsConfig) -> float | None:
    """1 from `min_samples` earlier runs, `cold_start_factor` from `cold_start_samples`,
    None below (nothing to compare with)."""
    if samples >= cfg.min_samples:
        return 1.0
    if samples >= cfg.cold_start_samples:
        return cfg.cold_start_factor
    return None


def _anomaly(
    run_id: str,
    kind: str,
    subject: str,
    summary: str,
    evidence: dict[str, Any],
    window: tuple[datetime, datetime],
) -> Anomaly:
    start, end = _utc(window[0]), _utc(window[1])
    return Anomaly(
        anomaly_id=anomaly_id(run_id, kind, subject, start, end),
        run_id=run_id,
        category=AnomalyCategory.APP,
        type=kind,
        severity=Severity.WARNING,
        subject=subject,
        summary=summary,
        evidence=evidence,
        window_start=start,
        window_end=end,
        detected_at=end,
    )
