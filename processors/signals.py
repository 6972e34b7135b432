"""Run signals from Kubernetes objects and log lines (pure: no Faust, no Kafka, no I/O).

`signals_from_k8s` turns one `K8sObjectEvent` into the `RunSignal`s the run tracker folds in;
`LogSignals` does the same for the `LogLine`s of many container streams, keeping a little state
per stream (bounded, least recently used streams go first). `route` says where a correlation key
goes.

Routing (DESIGN.md "Runs and correlation")
    Keys of pods that a CI system owns (``github-runner:`` ARC runners, ``jenkins:`` agents)
    cannot name their run: only a CI event can (a BIND). Their signals leave with
    ``run_id=None`` and are routed by `correlation_key`. Every other key (``tekton:``,
    ``tekton-taskrun:``, ``argo:``, ``job:`` or a raw ``sentinel.io/run-id`` value) *is* the run
    id. `correlation_key` is always filled in when the input had one.

Kubernetes rules
    Pod   one POD signal (phase, reason, node, times, containers with init ones flagged, deleted).
          A Tekton TaskRun pod (label ``tekton.dev/taskRun``) also gives a STAGE signal for its
          TaskRun: Pending/Running/Succeeded/Failed map to pending/running/succeeded/failed, a pod
          deleted before it ended is cancelled.
    Job   one JOB signal: ``Complete``/``Failed`` conditions decide the outcome (the Failed
          condition's reason, e.g. BackoffLimitExceeded, is the conclusion), ``Suspended`` is
          pending, ``active`` or a start time is running; deleted before it ended is cancelled.
    Other kinds (core Events, Services) carry no run state here: [].
    Each signal also describes the run for the case that no CI system does (provider,
    pipeline, namespace, ``sentinel.io/`` labels); for keys that wait for a CI event the CI
    system describes the run, so provider and pipeline stay None.

Log rules (per container stream, in line order)
    ACTIVITY  once per ``activity_bucket_s`` bucket of event time, stamped with the bucket start,
              so that a replay and a live run report the same buckets with the same ids.
    Jenkins   ``[Pipeline] stage`` + ``[Pipeline] { (NAME)`` opens NAME, ``[Pipeline] // stage``
              closes the innermost open stage. ``ERROR: ...`` or ``script returned exit code N``
              (N != 0) while open fails it; ``Stage "NAME" skipped due to ...`` closes it
              cancelled with conclusion ``skipped``. Repeated names get ``#2``, ``#3``.
    Markers   every `LogMarkerRule` whose container globs and pattern match gives a MARKER signal
              (with a status only for run_start/run_end, which the tracker reads as the run's),
              and stage_start/stage_end also give a STAGE signal ``marker:<stage>``.
    Tests     a `TestLogParser` per stream; each batch of results is one TESTS signal with counts.

Judgment calls
    * Signal ids are hashes of what the signal is derived from (object uid + resourceVersion +
      event type; stream + bucket / stage / line time and text; stream + test identities), never
      of arrival order or wall-clock time: a redelivered input gives the same id and is applied
      once, and a replay gives the same ids as the live run.
    * A finished-looking pod or Job (Succeeded/Failed, Complete/Failed, deleted) without any
      finish time in the object gets the event time as its finish time, so that durations and
      quiet periods can still be computed. A pod's end is its main containers' latest end (an
      init container's end is not, unless a failed init container ended the pod).
    * A failed Tekton stage's conclusion is what a user looks for first: the pod's reason
      (Evicted) or the first failed container's reason (OOMKilled, Error); a cancelled one's is
      ``deleted``, as is a deleted Job's.
    * Pipeline fallbacks beyond the label rules: a bare Tekton TaskRun is named by its Task
      (``tekton.dev/task``), an Argo pod without a template label by its workflow; a raw
      ``sentinel.io/run-id`` key uses the Job rules when the object belongs to a Job.
    * The MARKER of a stage_start/stage_end rule carries no status: the tracker reads a
      marker's status as the run's own. A stage rule without a ``stage`` group or setting names
      its stage after the rule. A status word the table does not know falls back to the rule's
      status, then succeeded.
    * Parsed test results get the receiving time of the line that completed them (not "now"),
      so the same lines give equal signals; their run_id stays "" for the tracker to rewrite.
    * Jenkins prints an uncaught step failure (``ERROR: script returned exit code 1``) after
      ``End of Pipeline``, when no stage is open any more. The first ``skipped due to earlier
      failure(s)`` therefore marks the last stage that ran (if not already failed) as failed,
      by a second STAGE signal with a later event time (same status rank, later event wins in
      the tracker). A failed nested stage fails its enclosing stage, as Jenkins shows it.
    * Open Jenkins stages are not closed by `finish_stream`/`flush`: the stream may only have
      been evicted or the worker stopped, and the run's own end closes what is still open.
    * Pods of a CronJob's Job are described with the Job's name: a pod shows its Job as owner,
      never the CronJob (the Job signal itself carries the CronJob's name).

Known gaps
    * Jenkins parallel branches interleave in one console: ``// stage`` closes the innermost
      open stage, which in parallel output may be a sibling branch's stage.
    * Stage numbering (``#2``), test attempt numbering and the activity bucket memory restart
      with a stream that was evicted and comes back: a repeated name or test may then get the id
      of an earlier one and be taken for a redelivery.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal

from processors.log_levels import detect_level
from processors.test_results import TestLogParser, clean_line
from schemas.k8s_time import parse_k8s_time as parse_time
from schemas.messages import (
    ContainerState,
    K8sEventInfo,
    K8sEventType,
    K8sObjectEvent,
    LogLine,
    PodState,
    RunSignal,
    RunStatus,
    SignalKind,
    TestCounts,
    TestResult,
    TestStatus,
)
from sentinel.config import LogMarkerRule, MarkerAction, TrackingConfig

LINK_PREFIXES = ("github-runner:", "jenkins:")
K8S_SOURCE = "k8s"
LOG_SOURCE = "logs"
LABEL_PREFIX = "sentinel.io/"
PIPELINE_LABEL = "sentinel.io/pipeline"
TEKTON_TASKRUN = "tekton.dev/taskRun"
TEKTON_PIPELINE_TASK = "tekton.dev/pipelineTask"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
_ID_CHARS = 24

StreamKey = tuple[str, str, str]


def route(correlation_key: str) -> tuple[str | None, str | None]:
    """(run_id, link_key): a standalone run is its key; a CI-owned key waits for a BIND."""
    if correlation_key.startswith(LINK_PREFIXES):
        return None, correlation_key
    return correlation_key, None


def _digest(*parts: object) -> str:
    # Unit separator between parts: ("a", "bc") and ("ab", "c") must not collide.
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:_ID_CHARS]


# ---------------------------------------------------------------------------------------------
# Kubernetes objects


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _maps(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _provider(key: str) -> str | None:
    if key.startswith(LINK_PREFIXES):
        return None  # the CI system describes the run
    if key.startswith(("tekton:", "tekton-taskrun:")):
        return "tekton"
    if key.startswith("argo:"):
        return "argo"
    return "kubernetes"


def _owner_name(event: K8sObjectEvent, kind: str) -> str | None:
    for owner in event.owner_refs:
        if owner.get("kind") == kind and owner.get("name"):
            return str(owner["name"])
    return None


def _pipeline(event: K8sObjectEvent, key: str) -> str | None:
    labels = event.labels
    if labels.get(PIPELINE_LABEL):
        return labels[PIPELINE_LABEL]
    if key.startswith(LINK_PREFIXES):
        return None
    if key.startswith(("tekton:", "tekton-taskrun:")):
        # A bare TaskRun has no pipeline: its Task is what repeats from run to run.
        return labels.get("tekton.dev/pipeline") or labels.get("tekton.dev/task") or None
    if key.startswith("argo:"):
        return (
            labels.get("workflows.argoproj.io/workflow-template")
            or labels.get("workflows.argoproj.io/workflow")
            or None
        )
    cron = _owner_name(event, "CronJob")
    if cron is not None:
        return cron
    if event.kind == "Job":
        return event.name
    return next((labels[name] for name in JOB_NAME_LABELS if labels.get(name)), None)


def _k8s_signal(
    event: K8sObjectEvent, key: str, signal_id: str, kind: SignalKind, **fields: Any
) -> RunSignal:
    run_id, _ = route(key)
    return RunSignal(
        signal_id=signal_id,
        kind=kind,
        run_id=run_id,
        correlation_key=key,
        source=K8S_SOURCE,
        event_time=event.event_time,
        provider=_provider(key),
        pipeline=_pipeline(event, key),
        namespace=event.namespace,
        labels={k: v for k, v in event.labels.items() if k.startswith(LABEL_PREFIX)},
        **fields,
    )


def signals_from_k8s(event: K8sObjectEvent) -> list[RunSignal]:
    """The run signals one Kubernetes watch event carries ([] for unrelated objects)."""
    key = event.correlation_key
    if not key:
        return []
    base_id = _digest(event.kind, event.uid, event.resource_version, event.event_type.value)
    if event.kind == "Pod":
        return _pod_signals(event, key, base_id)
    if event.kind == "Job":
        return [_job_signal(event, key, base_id)]
    if event.kind == "Event":
        found = _event_signal(event, key, base_id)
        return [found] if found is not None else []
    return []


_CONTAINER_STATES: tuple[Literal["terminated", "running", "waiting"], ...] = (
    "terminated",
    "running",
    "waiting",
)


def _container(raw: Mapping[str, Any], init: bool) -> ContainerState:
    state = _map(raw.get("state"))
    which = next((w for w in _CONTAINER_STATES if w in state), None)
    detail = _map(state.get(which)) if which else {}
    last = _map(_map(raw.get("lastState")).get("terminated"))
    exit_code = detail.get("exitCode")
    last_code = last.get("exitCode")
    message = _str(detail.get("message"))
    return ContainerState(
        name=str(raw.get("name") or ""),
        init=init,
        state=which,
        reason=_str(detail.get("reason")),
        message=message[:_MAX_EVENT_MESSAGE] if message else None,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        restarts=int(raw.get("restartCount") or 0),
        last_reason=_str(last.get("reason")),
        last_exit_code=last_code if isinstance(last_code, int) else None,
        last_started_at=parse_time(last.get("startedAt")),
        last_finished_at=parse_time(last.get("finishedAt")),
        started_at=parse_time(detail.get("startedAt")),
        finished_at=parse_time(detail.get("finishedAt")),
    )


def _containers(status: Mapping[str, Any]) -> list[ContainerState]:
    init = [_container(c, True) for c in _maps(status.get("initContainerStatuses"))]
    main = [_container(c, False) for c in _maps(status.get("containerStatuses"))]
    return init + main


def _pod_finished_at(
    phase: str | None, deleted: bool, containers: list[ContainerState], event_time: datetime
) -> datetime | None:
    if phase not in ("Succeeded", "Failed") and not deleted:
        return None
    if phase in ("Succeeded", "Failed"):
        main = [c.finished_at for c in containers if not c.init]
        if main and all(main):
            return max(c.finished_at for c in containers if c.finished_at is not None)
        # Main containers never started: a failed init container ended the pod.
        failed_init = [
            c.finished_at
            for c in containers
            if c.init and c.finished_at is not None and c.exit_code not in (None, 0)
        ]
        if failed_init:
            return max(failed_init)
    # Evicted or deleted without a container saying when (an init container's end is not it).
    return event_time


_PHASE_STATUS = {
    "Pending": RunStatus.PENDING,
    "Running": RunStatus.RUNNING,
    "Succeeded": RunStatus.SUCCEEDED,
    "Failed": RunStatus.FAILED,
}


def _pod_state(event: K8sObjectEvent) -> PodState:
    obj = event.object
    status = _map(obj.get("status"))
    phase = _str(status.get("phase"))
    deleted = event.event_type is K8sEventType.DELETED
    containers = _containers(status)
    return PodState(
        uid=event.uid,
        namespace=event.namespace,
        name=event.name,
        phase=phase,
        reason=_str(status.get("reason")),
        message=_str(status.get("message")),
        node=_str(_map(obj.get("spec")).get("nodeName")),
        stage_id=event.labels.get(TEKTON_TASKRUN) or None,
        created_at=parse_time(_map(obj.get("metadata")).get("creationTimestamp")),
        started_at=parse_time(status.get("startTime")),
        finished_at=_pod_finished_at(phase, deleted, containers, event.event_time),
        deleted=deleted,
        resource_version=event.resource_version or None,
        containers=containers,
        updated_at=event.event_time,
    )


def _pod_failure_reason(pod: PodState) -> str | None:
    if pod.reason:
        return pod.reason  # Evicted, DeadlineExceeded: the pod-level reason says the most
    for container in pod.containers:
        if container.state == "terminated" and container.exit_code not in (None, 0):
            return container.reason or f"exit code {container.exit_code}"
    return None


def _pod_signals(event: K8sObjectEvent, key: str, base_id: str) -> list[RunSignal]:
    pod = _pod_state(event)
    signals = [_k8s_signal(event, key, base_id, SignalKind.POD, pod=pod)]
    if pod.stage_id is None:
        return signals
    status = _PHASE_STATUS.get(pod.phase or "Pending", RunStatus.UNKNOWN)
    conclusion: str | None = None
    if pod.deleted and not status.terminal:
        status, conclusion = RunStatus.CANCELLED, "deleted"
    elif status is RunStatus.FAILED:
        conclusion = _pod_failure_reason(pod)
    stage = _k8s_signal(
        event,
        key,
        f"{base_id}-stage",
        SignalKind.STAGE,
        status=status,
        conclusion=conclusion,
        stage_id=pod.stage_id,
        stage_name=event.labels.get(TEKTON_PIPELINE_TASK) or pod.stage_id,
        started_at=pod.started_at,
        finished_at=pod.finished_at if status.terminal else None,
    )
    return [*signals, stage]


def _true_condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in _maps(status.get("conditions")):
        if condition.get("type") == kind and str(condition.get("status")) == "True":
            return condition
    return None


def _job_status(status: Mapping[str, Any]) -> tuple[RunStatus, str | None, datetime | None]:
    """(status, conclusion, finished_at) from a Job's status block."""
    complete = _true_condition(status, "Complete")
    failed = _true_condition(status, "Failed")
    ended = complete or failed
    if ended is not None:
        finished = parse_time(status.get("completionTime")) or parse_time(
            ended.get("lastTransitionTime")
        )
        if failed is not None:
            return RunStatus.FAILED, _str(failed.get("reason")), finished
        return RunStatus.SUCCEEDED, None, finished
    if _true_condition(status, "Suspended") is not None:
        return RunStatus.PENDING, "suspended", None
    active = status.get("active")
    if (isinstance(active, int) and active > 0) or status.get("startTime"):
        return RunStatus.RUNNING, None, None
    return RunStatus.PENDING, None, None


def _job_signal(event: K8sObjectEvent, key: str, base_id: str) -> RunSignal:
    status_block = _map(event.object.get("status"))
    status, conclusion, finished_at = _job_status(status_block)
    if event.event_type is K8sEventType.DELETED and not status.terminal:
        # Deleting a running Job kills its pods: the run was stopped, not failed by itself.
        status, conclusion, finished_at = RunStatus.CANCELLED, "deleted", event.event_time
    elif status.terminal and finished_at is None:
        finished_at = event.event_time
    return _k8s_signal(
        event,
        key,
        base_id,
        SignalKind.JOB,
        status=status,
        conclusion=conclusion,
        started_at=parse_time(status_block.get("startTime")),
        finished_at=finished_at,
    )


# ---------------------------------------------------------------------------------------------
# Log lines: Jenkins stages

# Jenkins hides console annotations as ESC[8m ha:<base64> ESC[0m in the raw console text.
_CONSOLE_NOTE = re.compile(r"\x1b\[8mha:[^\x1b]*\x1b\[0m")
_TIMESTAMPER = re.compile(r"^\[\d{4}-\d{2}-\d{2}[T ][\d:.,]+(?:Z|[+-]\d{2}:?\d{2})?\] ")
_STAGE_STEP = re.compile(r"^\[Pipeline\] stage\s*$")
_BLOCK_OPEN = re.compile(r"^\[Pipeline\] \{ \((?P<name>.*)\)\s*$")
_STAGE_CLOSE = re.compile(r"^\[Pipeline\] // stage\s*$")
_SKIPPED = re.compile(r'^Stage "(?P<name>.+)" skipped due to (?P<why>.+?)\s*$')
_ERROR = re.compile(r"^ERROR: ")
_EXIT_CODE = re.compile(r"script returned exit code (?P<code>-?\d+)")
_BRANCH = "Branch: "
# Every line this reader acts on contains one of these: the rest skip all regex work.
_JENKINS_HINTS = ("[Pipeline]", "ERROR: ", "script returned exit code", "skipped due to")


def jenkins_text(raw: str) -> str:
    """A console line without colours and without the Timestamper plugin's ``[time] `` prefix."""
    if "\x1b[8mha:" in raw:
        raw = _CONSOLE_NOTE.sub("", raw)
    return _TIMESTAMPER.sub("", clean_line(raw)).strip()


def _is_failure_line(text: str) -> bool:
    if _ERROR.match(text):
        return True
    code = _EXIT_CODE.search(text)
    return code is not None and int(code.group("code")) != 0


@dataclass
class _Stage:
    stage_id: str
    name: str
    started_at: datetime
    failed: bool = False
    skipped: str | None = None
    finished_at: datetime | None = None


@dataclass
class _StageEvent:
    """What the Jenkins reader saw; turned into a STAGE signal by the stream."""

    stage_id: str
    name: str
    status: RunStatus
    started_at: datetime
    at: datetime
    finished_at: datetime | None = None
    conclusion: str | None = None
    tag: str = "open"


class JenkinsStages:
    """Jenkins ``[Pipeline]`` stage blocks of one console stream, read line by line."""

    def __init__(self) -> None:
        self._open: list[_Stage] = []
        self._stage_step = False  # the previous step line was `[Pipeline] stage`
        self._counts: dict[str, int] = {}
        self._last_closed: _Stage | None = None

    def feed(self, raw: str, at: datetime) -> list[_StageEvent]:
        if not any(hint in raw for hint in _JENKINS_HINTS):
            return []
        text = jenkins_text(raw)
        if not text:
            return []
        if _STAGE_STEP.match(text):
            self._stage_step = True
            return []
        opened = _BLOCK_OPEN.match(text)
        if opened:
            return self._block(opened.group("name"), at)
        if text.startswith("[Pipeline] "):
            self._stage_step = False  # another step came between: that stage step opened nothing
        if _STAGE_CLOSE.match(text):
            return self._close(at)
        skipped = _SKIPPED.match(text)
        if skipped:
            return self._skipped(skipped.group("name"), skipped.group("why"), at)
        if _is_failure_line(text) and self._open:
            self._open[-1].failed = True
        return []

    def _block(self, name: str, at: datetime) -> list[_StageEvent]:
        # A parallel branch block is not a stage, even right after `[Pipeline] stage`.
        if not self._stage_step or name.startswith(_BRANCH):
            return []
        self._stage_step = False
        count = self._counts.get(name, 0) + 1
        self._counts[name] = count
        stage_id = f"jenkins-stage:{name}" + (f"#{count}" if count > 1 else "")
        stage = _Stage(stage_id, name, at)
        self._open.append(stage)
        return [_StageEvent(stage_id, name, RunStatus.RUNNING, at, at)]

    def _close(self, at: datetime) -> list[_StageEvent]:
        if not self._open:
            return []
        stage = self._open.pop()
        if stage.failed and self._open:
            self._open[-1].failed = True  # an error propagates out of nested stages
        status, conclusion = RunStatus.SUCCEEDED, None
        if stage.skipped is not None:
            status, conclusion = RunStatus.CANCELLED, "skipped"
        elif stage.failed:
            status, conclusion = RunStatus.FAILED, "failed"
        if stage.skipped is None:
            stage.finished_at = at
            self._last_closed = stage
        return [
            _StageEvent(
                stage.stage_id, stage.name, status, stage.started_at, at, at, conclusion, "close"
            )
        ]

    def _skipped(self, name: str, why: str, at: datetime) -> list[_StageEvent]:
        stage = next((s for s in reversed(self._open) if s.name == name), None)
        if stage is not None:
            stage.skipped = why
        earlier = self._last_closed
        if not why.startswith("earlier failure") or earlier is None or earlier.failed:
            return []
        # The failing step's ERROR line comes only after End of Pipeline: the last stage that
        # ran is the one that failed. Said once, with this later event time, so it wins.
        earlier.failed = True
        return [
            _StageEvent(
                earlier.stage_id,
                earlier.name,
                RunStatus.FAILED,
                earlier.started_at,
                at,
                earlier.finished_at,
                "failed (later stages skipped)",
                "inferred-failure",
            )
        ]


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
            return _provider(self.correlation_key)
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


def _seen(newest: tuple[int, int] | None, position: tuple[int, int] | None) -> bool:
    """Whether `position` is at or before `newest` in the same partition."""
    if newest is None or position is None:
        return False
    return position[0] == newest[0] and position[1] <= newest[1]


def _counts(results: list[TestResult]) -> TestCounts:
    by_status = {status: 0 for status in TestStatus}
    for result in results:
        by_status[result.status] += 1
    return TestCounts(
        total=len(results),
        passed=by_status[TestStatus.PASSED],
        failed=by_status[TestStatus.FAILED],
        skipped=by_status[TestStatus.SKIPPED],
        error=by_status[TestStatus.ERROR],
    )


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
        out: list[RunSignal] = []
        stream = self._stream(key, routed, out)
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
            signal_id = _digest("log", *stream.key, at.isoformat(), stream.log_lines)
            out.append(self._signal(stream, signal_id, SignalKind.LOG, at, log_line=line))
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
            _, evicted = self._streams.popitem(last=False)
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
        signal_id = _digest("activity", *stream.key, start.isoformat())
        return [self._signal(stream, signal_id, SignalKind.ACTIVITY, start, log_pod=stream.key[1])]

    def _stage(self, stream: _Stream, event: _StageEvent) -> RunSignal:
        signal_id = _digest("jenkins-stage", *stream.key, event.stage_id, event.tag)
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
        base_id = _digest("marker", *stream.key, rule.name, at.isoformat(), line.line)
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
        signal_id = _digest("tests", *stream.key, *(repr(i) for i in identities))
        return [
            self._signal(
                stream,
                signal_id,
                SignalKind.TESTS,
                max(r.event_time for r in results),
                tests=_counts(results),
                test_results=results,
            )
        ]


# Normal Events are routine (Scheduled, Pulled, Started); these few Normal ones are not.
_NOTABLE_NORMAL_REASONS = frozenset({"NodeNotReady", "Evicted", "Preempted"})
_MAX_EVENT_MESSAGE = 1000


def _event_signal(event: K8sObjectEvent, key: str, signal_id: str) -> RunSignal | None:
    """A Warning core/v1 Event about one of the run's objects (a deleted Event is not news)."""
    obj = event.object
    kind = _str(obj.get("type"))
    reason = _str(obj.get("reason"))
    if event.event_type.value == "DELETED":
        return None
    if kind != "Warning" and reason not in _NOTABLE_NORMAL_REASONS:
        return None
    involved = _map(obj.get("involvedObject") or obj.get("regarding"))
    source = _map(obj.get("source"))
    series = _map(obj.get("series"))
    first = parse_time(obj.get("firstTimestamp")) or parse_time(obj.get("eventTime"))
    last = (
        parse_time(series.get("lastObservedTime"))
        or parse_time(obj.get("lastTimestamp"))
        or first
        or event.event_time
    )
    count = obj.get("count") or series.get("count") or 1
    message = _str(obj.get("message") or obj.get("note"))
    info = K8sEventInfo(
        uid=event.uid,
        type=kind,
        reason=reason,
        message=message[:_MAX_EVENT_MESSAGE] if message else None,
        involved_kind=_str(involved.get("kind")),
        involved_name=_str(involved.get("name")),
        node=_str(source.get("host")) or _node_of(involved),
        count=int(count) if isinstance(count, int | str) and str(count).isdigit() else 1,
        first_seen=first,
        last_seen=last,
    )
    run_id, _ = route(key)
    return RunSignal(
        signal_id=signal_id,
        kind=SignalKind.K8S_EVENT,
        run_id=run_id,
        correlation_key=key,
        source=K8S_SOURCE,
        event_time=event.event_time,
        namespace=event.namespace,
        k8s_event=info,
    )


def _node_of(involved: Mapping[str, Any]) -> str | None:
    if _str(involved.get("kind")) == "Node":
        return _str(involved.get("name"))
    return None


_CONTINUATION = re.compile(
    r"^(?:\s|Traceback \(|Caused by:|\.\.\. \d+ more|[\w.$]+(?:Error|Exception)\b)"
)
_ANALYSED_LEVELS = frozenset({"warning", "error", "fatal"})


def worth_analysing(text: str) -> bool:
    """Lines the log detectors need: warnings and errors, and what may continue a stack trace.
    Plain info/debug lines are not sent on (they are most of a log and carry no finding)."""
    return bool(_CONTINUATION.match(text)) or detect_level(text) in _ANALYSED_LEVELS
