"""Pydantic v2 models for every message on every topic.

One model per topic value (see `schemas.topics`). Every model carries `schema_version`; fields a
newer producer adds are kept (``extra="allow"``) so an old consumer passes them on instead of
rejecting the message. Timestamps are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every topic value: keeps unknown fields, serialises to compact JSON bytes."""

    model_config = ConfigDict(extra="allow", frozen=False, populate_by_name=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Any:
        return cls.model_validate_json(raw)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)


class CiEventKind(StrEnum):
    """What a CI event describes: the run as a whole, or one stage (job / check) of it."""

    RUN = "run"
    STAGE = "stage"


class StepInfo(BaseModel):
    """A step inside a stage (a GitHub Actions job step), as the CI system reported it."""

    model_config = ConfigDict(extra="allow")

    name: str
    number: int | None = None
    status: RunStatus
    conclusion: str | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None


class CiEvent(Message):
    """A CI webhook normalised to one shape (topic `sentinel.ci`, key = `run_id`)."""

    schema_version: Literal[1] = 1
    event_id: str = Field(description="Unique id of the delivery (e.g. X-GitHub-Delivery).")
    provider: str = Field(description="CI system: github, jenkins, generic.")
    event_type: str = Field(description="Provider event name, e.g. workflow_run, check_run.")
    action: str | None = None
    kind: CiEventKind
    run_id: str = Field(description="Sentinel run id this event belongs to.")
    provider_run_id: str
    attempt: int = 1
    repository: str | None = None
    pipeline: str | None = Field(default=None, description="Workflow / job / check-suite name.")
    branch: str | None = None
    commit_sha: str | None = None
    trigger: str | None = Field(default=None, description="What started the run (push, schedule).")
    actor: str | None = None
    app: str | None = Field(default=None, description="GitHub App slug that owns a check suite.")
    status: RunStatus = Field(description="Normalised status of the run or stage.")
    raw_status: str | None = None
    conclusion: str | None = None
    stage_id: str | None = None
    stage_name: str | None = None
    runner_name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    steps: list[StepInfo] = Field(default_factory=list)
    url: str | None = None
    created_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    event_time: AwareDatetime = Field(
        description="Event time: when the CI system said this happened."
    )
    received_at: AwareDatetime = Field(default_factory=utcnow)
    raw: dict[str, Any] | None = Field(default=None, description="Payload as received, for audit.")


class K8sEventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    RELISTED = "RELISTED"


class K8sObjectEvent(Message):
    """A Kubernetes watch event (topic `sentinel.k8s`, key = namespace/name)."""

    schema_version: Literal[1] = 1
    event_type: K8sEventType
    kind: str = Field(description="Pod, Job, Service or Event.")
    api_version: str
    namespace: str | None = None
    name: str
    uid: str
    resource_version: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_refs: list[dict[str, Any]] = Field(default_factory=list)
    correlation_key: str | None = None
    cluster: str | None = None
    object: dict[str, Any] = Field(description="The object with managedFields stripped.")
    event_time: AwareDatetime
    received_at: AwareDatetime = Field(default_factory=utcnow)


class LogLine(Message):
    """One container log line (topic `sentinel.logs`, key = namespace/pod/container)."""

    schema_version: Literal[1] = 1
    namespace: str
    pod: str
    container: str
    line: str
    truncated: bool = False
    correlation_key: str | None = None
    run_id: str | None = None
    event_time: AwareDatetime
    received_at: AwareDatetime = Field(default_factory=utcnow)


class TestStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"


class TestResult(Message):
    """One test case outcome (topic `sentinel.tests`, key = run_id)."""

    __test__ = False  # not a pytest test class

    schema_version: Literal[1] = 1
    run_id: str
    suite: str | None = None
    name: str
    status: TestStatus
    duration_s: float | None = None
    attempt: int = 1
    message: str | None = None
    source: str = Field(description="Where it was parsed from: junit-xml, pytest-log, go-log...")
    event_time: AwareDatetime
    received_at: AwareDatetime = Field(default_factory=utcnow)


class ContainerState(BaseModel):
    """One container of a pod as the kubelet last reported it."""

    model_config = ConfigDict(extra="allow")

    name: str
    init: bool = False
    state: Literal["waiting", "running", "terminated"] | None = None
    reason: str | None = Field(default=None, description="OOMKilled, Error, CrashLoopBackOff...")
    exit_code: int | None = None
    restarts: int = 0
    message: str | None = Field(default=None, description="The kubelet's waiting/terminated text.")
    last_reason: str | None = Field(
        default=None, description="Why the previous instance ended (lastState), e.g. OOMKilled."
    )
    last_exit_code: int | None = None
    last_started_at: AwareDatetime | None = None
    last_finished_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None


class PodState(BaseModel):
    """A pod that ran part of a run, as last seen (newest event time wins)."""

    model_config = ConfigDict(extra="allow")

    uid: str
    namespace: str | None = None
    name: str
    phase: str | None = Field(default=None, description="Pending, Running, Succeeded, Failed.")
    reason: str | None = Field(default=None, description="Pod-level reason, e.g. Evicted.")
    message: str | None = Field(default=None, description="Pod-level message, e.g. why evicted.")
    node: str | None = None
    stage_id: str | None = Field(default=None, description="Stage this pod ran, if known.")
    created_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    deleted: bool = False
    resource_version: str | None = None
    containers: list[ContainerState] = Field(default_factory=list)
    updated_at: AwareDatetime

    @property
    def terminated(self) -> bool:
        return self.phase in ("Succeeded", "Failed") or self.deleted


class K8sEventInfo(BaseModel):
    """A core/v1 Event about one of a run's objects (Warnings, and NodeNotReady)."""

    model_config = ConfigDict(extra="allow")

    uid: str
    type: str | None = Field(default=None, description="Normal or Warning.")
    reason: str | None = Field(default=None, description="OOMKilling, FailedScheduling, BackOff...")
    message: str | None = None
    involved_kind: str | None = None
    involved_name: str | None = None
    node: str | None = Field(default=None, description="The node it concerns, when known.")
    count: int = 1
    first_seen: AwareDatetime | None = None
    last_seen: AwareDatetime


class RunAttribution(BaseModel):
    """Why a run failed, when it was not the code under test (e.g. the node ran out of memory)."""

    model_config = ConfigDict(extra="allow")

    cause: str = Field(description="infrastructure")
    types: list[str] = Field(default_factory=list, description="oom_killed, evicted...")
    anomaly_ids: list[str] = Field(default_factory=list, description="The evidence.")
    summary: str


class TestCounts(BaseModel):
    """How many test results a run has, per status."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="allow")

    total: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    error: int = 0

    @classmethod
    def of(cls, results: Iterable[TestResult]) -> TestCounts:
        """The counts of these results (each result counted once, under its status)."""
        by_status = dict.fromkeys(TestStatus, 0)
        for result in results:
            by_status[result.status] += 1
        return cls(
            total=sum(by_status.values()),
            passed=by_status[TestStatus.PASSED],
            failed=by_status[TestStatus.FAILED],
            skipped=by_status[TestStatus.SKIPPED],
            error=by_status[TestStatus.ERROR],
        )


class SignalKind(StrEnum):
    """What a `RunSignal` tells the run tracker."""

    POD = "pod"  # a correlated pod's state
    JOB = "job"  # a Kubernetes Job's status (opens/closes runs with no CI system)
    STAGE = "stage"  # a stage from a Tekton TaskRun pod, a Jenkins log line or a log marker
    MARKER = "marker"  # a configured log marker was seen (may start or end the run)
    TESTS = "tests"  # a batch of test results
    ACTIVITY = "activity"  # log lines were written in this time bucket (the run is alive)
    BIND = "bind"  # correlation key -> run id, from a CI event (links topic only)
    # The run of `bind_run_id` was retired: forget the key if still bound to it (links topic only)
    UNBIND = "unbind"
    K8S_EVENT = "k8s_event"  # a Warning Event about one of the run's pods or Jobs
    LOG = "log"  # a log line worth analysing (warnings, errors, stack trace lines)
    WATERMARK = "watermark"  # event time has reached `event_time` (end of input if `final`)


class RunSignal(Message):
    """Input to the run tracker other than CI webhooks: derived from `sentinel.k8s`,
    `sentinel.logs` and JUnit uploads (internal topics `run-signals`, key = run id, and
    `run-links`, key = correlation key, while the run id is not known yet).

    `signal_id` is deterministic (same input, same id), so a signal delivered twice is applied
    once.
    """

    schema_version: Literal[1] = 1
    signal_id: str
    kind: SignalKind
    run_id: str | None = Field(default=None, description="None while routed by correlation key.")
    correlation_key: str | None = None
    source: str = Field(description="k8s, logs, junit, ci, replay.")
    event_time: AwareDatetime
    # How to describe a run that no CI system reports (a bare Job, a Tekton PipelineRun...).
    provider: str | None = None
    pipeline: str | None = None
    pipeline_rank: int = Field(
        default=0,
        description="How sure the source is of `pipeline` (processors.runs.k8s_signals): the "
        "highest rank wins whatever the order of arrival, then the newest signal.",
    )
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    # JOB / STAGE / MARKER
    status: RunStatus | None = None
    conclusion: str | None = None
    stage_id: str | None = None
    stage_name: str | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    marker: str | None = None
    # POD
    pod: PodState | None = None
    # K8S_EVENT
    k8s_event: K8sEventInfo | None = None
    # ACTIVITY
    log_pod: str | None = Field(default=None, description="ACTIVITY: the pod that logged.")
    # LOG
    log_line: LogLine | None = None
    # TESTS: counts always; results when the tracker is to publish them to `sentinel.tests`
    # (log-parsed tests, whose run id is known only after routing). Their run_id is rewritten.
    tests: TestCounts | None = None
    test_results: list[TestResult] = Field(default_factory=list)
    # BIND
    bind_run_id: str | None = None
    # WATERMARK
    final: bool = Field(default=False, description="No more input will come (offline analysis).")


class StageState(BaseModel):
    """One stage (workflow job, check run, TaskRun) as tracked on a run."""

    model_config = ConfigDict(extra="allow")

    stage_id: str
    name: str
    status: RunStatus
    conclusion: str | None = None
    runner_name: str | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    duration_s: float | None = None
    updated_at: AwareDatetime
    steps: list[StepInfo] = Field(default_factory=list)
    url: str | None = None
    source: str = Field(default="ci", description="What reported the stage: ci, k8s, logs.")


class RunState(Message):
    """Latest known state of a run (topic `sentinel.runs`, compacted, key = `run_id`)."""

    schema_version: Literal[1] = 1
    run_id: str
    provider: str
    provider_run_id: str
    attempt: int = 1
    repository: str | None = None
    pipeline: str | None = None
    branch: str | None = None
    commit_sha: str | None = None
    trigger: str | None = None
    actor: str | None = None
    status: RunStatus
    conclusion: str | None = None
    url: str | None = None
    created_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    duration_s: float | None = None
    stages: list[StageState] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    namespace: str | None = None
    correlation_keys: list[str] = Field(
        default_factory=list, description="Keys that joined pods and logs to this run."
    )
    pods: list[PodState] = Field(default_factory=list)
    k8s_events: list[K8sEventInfo] = Field(
        default_factory=list, description="Warning Events about the run's pods and Jobs."
    )
    markers: dict[str, AwareDatetime] = Field(
        default_factory=dict, description="Log markers seen, with when each was first seen."
    )
    tests: TestCounts = Field(default_factory=TestCounts)
    attribution: RunAttribution | None = Field(
        default=None, description="Set when infrastructure, not the tests, made the run fail."
    )
    closed_by: str | None = Field(
        default=None, description="What decided the final status: ci, job, marker, pods, timeout."
    )
    first_event_at: AwareDatetime
    updated_at: AwareDatetime = Field(description="Event time of the latest event applied.")
    last_activity_at: AwareDatetime | None = Field(
        default=None, description="Latest event time of any input, log lines included."
    )
    log_activity: dict[str, AwareDatetime] = Field(
        default_factory=dict,
        description="Per pod that logged: start of the latest activity bucket it logged in "
        "(what log silence is judged on).",
    )
    watermark: AwareDatetime | None = Field(
        default=None,
        description="Latest deadline event time is known to have passed for this run (decides"
        " timeouts and quiet periods).",
    )
    version: int = Field(default=1, description="Increases with every change; newest wins.")
    merge_keys: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Run tracker bookkeeping (processors.runs.state): for each newest-wins field, the"
            " order key of the event whose value it holds, so late and duplicate events merge the"
            " same way in any order."
        ),
    )


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class AnomalyCategory(StrEnum):
    INFRA = "infra"
    APP = "app"
    TEST = "test"
    STRUCTURE = "structure"


class Anomaly(Message):
    """A finding about a run (topic `sentinel.anomalies`, key = run_id)."""

    schema_version: Literal[1] = 1
    anomaly_id: str = Field(description="Hash of run, type, subject and window.")
    run_id: str
    category: AnomalyCategory
    type: str
    severity: Severity
    subject: str
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    window_start: AwareDatetime
    window_end: AwareDatetime
    detected_at: AwareDatetime = Field(default_factory=utcnow)


class DeliveryOutcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    RETRYING = "retrying"
    SUPPRESSED = "suppressed"
    # A message in flight when its dispatcher stopped, decided again by the next owner with
    # other alerts (so under another delivery id): it will not be sent; `error` names the
    # delivery that carries its alerts.
    SUPERSEDED = "superseded"


class AlertDelivery(Message):
    """One attempt to send an alert (topic `sentinel.alert-deliveries`)."""

    schema_version: Literal[1] = 1
    delivery_id: str
    channel: str = Field(description="The receiver's name in the alerting config.")
    group_key: str
    anomaly_ids: list[str]
    attempt: int = 1
    outcome: DeliveryOutcome
    status_code: int | None = None
    error: str | None = None
    attempted_at: AwareDatetime = Field(default_factory=utcnow)
    channel_type: str | None = Field(
        default=None, description="console, file, slack, slack_bot, email, webhook, alertmanager."
    )
    run_ids: list[str] = Field(default_factory=list, description="Runs the message is about.")
    status: str | None = Field(default=None, description="firing or resolved (the message's).")
    title: str | None = Field(default=None, description="The message's rendered title.")
    retry_in_s: float | None = Field(
        default=None, description="RETRYING: when the next attempt is made."
    )
    silence_ids: list[str] = Field(
        default_factory=list, description="SUPPRESSED: the silences that muted the alerts."
    )


class LabelMatcher(BaseModel):
    """One condition on an alert label, as Alertmanager's API spells it: `name` equal to
    (`is_equal`) or different from `value`, a fully anchored regular expression if `is_regex`."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def __str__(self) -> str:
        op = {(True, False): "=", (False, False): "!=", (True, True): "=~", (False, True): "!~"}
        return f"{self.name}{op[(self.is_equal, self.is_regex)]}{json.dumps(self.value)}"


class Silence(Message):
    """Mutes the alerts whose labels match every matcher between `starts_at` and `ends_at`
    (topic `sentinel.silences`, compacted, key = `silence_id`; expiring one is a new version
    with `ends_at` = the time it was expired)."""

    schema_version: Literal[1] = 1
    silence_id: str
    matchers: list[LabelMatcher] = Field(min_length=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: str = Field(min_length=1)
    comment: str = Field(min_length=1)
    updated_at: AwareDatetime = Field(default_factory=utcnow)

    def state_at(self, now: datetime) -> str:
        """pending, active or expired at `now` (Alertmanager's words)."""
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"


class AlertRun(Message):
    """What the alert dispatcher keeps of a run: its labels, state and what messages show
    (topic `sentinel.alert-runs`, compacted, key = run id, in the partition of the run)."""

    schema_version: Literal[1] = 1
    run_id: str
    partition: int
    known: bool = Field(default=True, description="False until a run snapshot was seen.")
    provider: str | None = None
    provider_run_id: str | None = Field(default=None, description="The CI's number for the run.")
    repository: str | None = None
    pipeline: str | None = None
    branch: str | None = None
    namespace: str | None = None
    commit_sha: str | None = None
    status: str | None = None
    url: str | None = Field(default=None, description="The run in its CI system.")
    labels: dict[str, str] = Field(default_factory=dict)
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    duration_s: float | None = None
    tests: TestCounts | None = None
    first_seen: AwareDatetime = Field(description="When the dispatcher first heard of it.")
    ended_seen: AwareDatetime | None = Field(
        default=None, description="When the dispatcher first saw it in a final status."
    )
    version: int = 0
    updated_at: AwareDatetime = Field(description="When the dispatcher last changed it.")
    pending: list[Anomaly] = Field(
        default_factory=list, description="Anomalies waiting for the run's first snapshot."
    )
    judgeable: bool = Field(
        default=False,
        description="Ended succeeded or failed with no infrastructure attribution: the run's "
        "tests were judged against its pipeline's history.",
    )
    health_published: bool = Field(
        default=False, description="Its pipeline-health record was published (pipeline judged)."
    )
    findings: list[str] = Field(
        default_factory=list, description="'type/subject' of its pipeline-scoped anomalies."
    )


class AlertInstance(BaseModel):
    """One alert in an aggregation group: an anomaly, or a run's end (a run summary)."""

    model_config = ConfigDict(extra="allow")

    alert_id: str = Field(description="The anomaly id, or run-finished:<run id>.")
    kind: Literal["anomaly", "run_finished"] = "anomaly"
    scope: Literal["run", "pipeline"] = "run"
    run_id: str
    labels: dict[str, str]
    summary: str
    subject: str = ""
    evidence: str = Field(default="", description="One line of evidence.")
    severity: Severity = Severity.WARNING
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = Field(default=None, description="Set once resolved.")
    received_at: AwareDatetime
    detected_at: AwareDatetime = Field(description="The anomaly's (event) time.")


class NotificationLogEntry(BaseModel):
    """What one receiver was last told about one group (Alertmanager's nflog entry)."""

    model_config = ConfigDict(extra="allow")

    receiver: str
    firing_ids: list[str] = Field(default_factory=list)
    resolved_ids: list[str] = Field(default_factory=list)
    sent_at: AwareDatetime
    delivery_id: str
    messages: int = Field(default=1, description="Messages sent for the group so far.")
    thread_ts: str | None = Field(default=None, description="Slack bot: the first message's ts.")
    thread_channel: str | None = Field(default=None, description="Slack bot: its channel id.")


class InflightMessage(BaseModel):
    """A message decided for one receiver and not yet delivered: which one, about what."""

    model_config = ConfigDict(extra="allow")

    delivery_id: str
    anomaly_ids: list[str] = Field(default_factory=list)


class AlertGroupState(Message):
    """An aggregation group: its alerts and, per receiver, the notification log (topic
    `sentinel.alert-groups`, compacted, key = group key, in the partition of its input)."""

    schema_version: Literal[1] = 1
    group_key: str
    route_id: str
    partition: int
    receivers: list[str]
    group_labels: dict[str, str]
    alerts: list[AlertInstance] = Field(default_factory=list)
    announced: list[str] = Field(
        default_factory=list, description="Alert ids that took part in a completed flush."
    )
    finished: list[str] = Field(
        default_factory=list,
        description="Alert ids that resolved, were told and left the group (or a told run "
        "summary): the same anomaly delivered again is ignored.",
    )
    notifications: dict[str, NotificationLogEntry] = Field(default_factory=dict)
    suppressed: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per receiver: alerts recorded as suppressed by a silence (recorded once).",
    )
    inflight: list[str] = Field(
        default_factory=list,
        description="Receivers with a message decided but not yet delivered: a dispatcher that "
        "restores the group flushes it again at once.",
    )
    inflight_messages: dict[str, InflightMessage] = Field(
        default_factory=dict,
        description="Per receiver in `inflight`: the message decided, so that one decided "
        "again differently is recorded superseded rather than left retrying.",
    )
    created_at: AwareDatetime
    next_flush_at: AwareDatetime | None = None
    last_flush_at: AwareDatetime | None = None
    flushes: int = 0
    updated_at: AwareDatetime


class PipelineHealth(Message):
    """The latest judged run of a pipeline and branch, as the dispatcher that owns the run saw
    it (topic `sentinel.alert-pipelines`, compacted, key = [pipeline, branch]): a
    pipeline-scoped alert of an earlier run resolves when such a record lacks its finding."""

    schema_version: Literal[1] = 1
    pipeline: str
    branch: str | None = None
    run_id: str
    finished_at: AwareDatetime
    findings: list[str] = Field(default_factory=list, description="'type/subject' pairs.")
    judged_at: AwareDatetime


# A dead letter must fit the DLQ topic, which keeps the broker's default limit (1 MiB per record
# batch, compressed or not): the raw value (base64 in JSON: 4/3 of it) and the error are cut.
MAX_DEAD_LETTER_RAW = 512 * 1024
MAX_DEAD_LETTER_ERROR = 8 * 1024


class DeadLetter(Message):
    """A message that could not be processed, with the reason (topic `sentinel.dlq`): kept whole
    up to 512 KiB; a larger value keeps its first 512 KiB, with its size and SHA-256."""

    schema_version: Literal[1] = 1
    origin_topic: str
    origin_partition: int | None = None
    origin_offset: int | None = None
    origin_key: bytes | None = None
    raw_value: bytes
    error: str
    error_type: str
    component: str
    failed_at: AwareDatetime = Field(default_factory=utcnow)
    raw_truncated: bool = Field(
        default=False, description="raw_value holds only the first 512 KiB of the value."
    )
    raw_size: int | None = Field(default=None, description="The whole value's size, if cut.")
    raw_sha256: str | None = Field(default=None, description="The whole value's SHA-256, if cut.")

    @model_validator(mode="before")
    @classmethod
    def _fit_the_topic(cls, data: Any) -> Any:
        # Only where Python builds a letter from bytes; one read back from JSON is cut already.
        if not isinstance(data, dict):
            return data
        raw, error = data.get("raw_value"), data.get("error")
        if isinstance(raw, bytes) and len(raw) > MAX_DEAD_LETTER_RAW:
            data = {
                **data,
                "raw_value": raw[:MAX_DEAD_LETTER_RAW],
                "raw_truncated": True,
                "raw_size": len(raw),
                "raw_sha256": hashlib.sha256(raw).hexdigest(),
            }
        if isinstance(error, str) and len(error) > MAX_DEAD_LETTER_ERROR:
            # Cut to the limit, suffix included: a letter read back is not cut again.
            suffix = f"… (cut from {len(error)} characters)"
            data = {**data, "error": error[: MAX_DEAD_LETTER_ERROR - len(suffix)] + suffix}
        return data

    @field_serializer("origin_key", "raw_value")
    def _b64(self, value: bytes | None) -> str | None:
        # Raw bytes may be anything (invalid UTF-8 included): base64 keeps them exact in JSON.
        return None if value is None else base64.b64encode(value).decode()

    @field_validator("origin_key", "raw_value", mode="before")
    @classmethod
    def _unb64(cls, value: Any) -> Any:
        # JSON carries them base64-encoded (see the serializer); Python callers pass bytes.
        return base64.b64decode(value) if isinstance(value, str) else value
