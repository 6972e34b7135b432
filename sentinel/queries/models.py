"""What the read API returns (and the pages render): one pydantic model per answer.

They are the OpenAPI schema of `/api/...`; fields are named as the store and the messages name
them. Times are aware UTC datetimes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from schemas.messages import Anomaly, RunState, TestStatus


class RunSummary(RunState):
    """A run as listed: the run plus how many anomalies were found for it."""

    anomaly_count: int = 0


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


class AnomalyItem(Anomaly):
    """An anomaly with the pipeline, repository and branch of its run."""

    pipeline: str | None = None
    repository: str | None = None
    branch: str | None = None


class AnomalyPage(BaseModel):
    items: list[AnomalyItem]
    next_cursor: str | None = None


class TestAttempt(BaseModel):
    __test__ = False
    attempt: int
    status: TestStatus
    duration_s: float | None = None
    message: str | None = None
    source: str = ""


class TestCase(BaseModel):
    """One test of a run with every attempt; `status` is the final attempt's."""

    __test__ = False
    key: str = Field(description="suite::name, the test's identity across runs.")
    suite: str
    name: str
    status: TestStatus
    attempts: list[TestAttempt]
    duration_s: float | None = Field(default=None, description="Final attempt's duration.")
    message: str | None = Field(default=None, description="Latest failure message, if any.")
    flaky: bool = Field(description="Passed and failed within this run (or a flaky_test anomaly).")
    infra_caused: bool = Field(description="Failed while an infrastructure fault of the run hit.")
    anomaly_ids: list[str] = Field(default_factory=list)


class TestCounts(BaseModel):
    __test__ = False
    total: int = 0
    passed: int = 0
    failed: int = 0
    error: int = 0
    skipped: int = 0
    flaky: int = 0
    infra_caused: int = 0


class TestPage(BaseModel):
    __test__ = False
    run_id: str
    counts: TestCounts = Field(description="Over all the run's tests, whatever the filters.")
    items: list[TestCase]
    next_cursor: str | None = None


class LogLineView(BaseModel):
    n: int = Field(description="Line number in the run's log (1-based, by time): #L<n> links.")
    event_time: datetime
    namespace: str
    pod: str
    container: str
    level: str
    template_id: str
    template: str
    line: str
    truncated: bool = False


class LogPage(BaseModel):
    run_id: str
    items: list[LogLineView]
    next_cursor: str | None = None
    total_lines: int = Field(description="Lines of the run's log, whatever the filters.")


class TemplateCount(BaseModel):
    template_id: str
    template: str
    lines: int
    errors: int


PodPhaseName = Literal["pending", "scheduled", "pulling", "running", "terminated"]
TickKind = Literal["oom", "restart", "error", "evicted", "warning"]


class StageBar(BaseModel):
    stage_id: str
    name: str
    status: str
    start: datetime | None
    end: datetime | None = Field(description="None while the stage runs (the bar grows).")
    duration_s: float | None = None


class PodPhase(BaseModel):
    phase: PodPhaseName
    start: datetime
    end: datetime | None = Field(description="None: still in this phase at the end of the data.")


class PodTick(BaseModel):
    at: datetime
    kind: TickKind
    container: str | None = None
    reason: str
    message: str | None = None


class PodLane(BaseModel):
    uid: str
    namespace: str | None
    name: str
    node: str | None = None
    stage_id: str | None = None
    phase: str | None = Field(default=None, description="Kubernetes phase as last seen.")
    phases: list[PodPhase]
    ticks: list[PodTick]
    restarts: int = 0


class AnomalyMarker(BaseModel):
    anomaly_id: str
    type: str
    category: str
    severity: str
    subject: str
    summary: str
    start: datetime
    end: datetime
    lane: str | None = Field(description="pod:<name> or stage:<id> it belongs to, else None.")


class DensityBucket(BaseModel):
    start: datetime
    lines: int
    errors: int


class Timeline(BaseModel):
    """Everything the run page's timeline draws, within [window_start, window_end]."""

    run_id: str
    status: str
    start: datetime = Field(description="Start of the run's data (first event).")
    end: datetime = Field(description="End of the run's data (finish, or latest event).")
    window_start: datetime
    window_end: datetime
    bucket_s: float = Field(description="Width of one log density bucket.")
    stages: list[StageBar]
    pods: list[PodLane]
    anomalies: list[AnomalyMarker]
    log_density: list[DensityBucket]


class StageDelta(BaseModel):
    name: str
    status: str | None
    baseline_status: str | None
    duration_s: float | None
    baseline_duration_s: float | None
    delta_s: float | None


class TestChange(BaseModel):
    __test__ = False
    key: str
    status: str = Field(description="Final status in this run, 'flaky' or 'missing'.")
    baseline_status: str = Field(description="Final status in the baseline, 'flaky' or 'new'.")


class RestartedPod(BaseModel):
    name: str
    container: str
    restarts: int
    reason: str | None = None


class Comparison(BaseModel):
    run_id: str
    baseline_run_id: str | None
    baseline_chosen: Literal["given", "last_successful", "none"]
    note: str | None = Field(default=None, description="Why there is no baseline, if none.")
    duration_s: float | None = None
    baseline_duration_s: float | None = None
    stages: list[StageDelta] = Field(default_factory=list)
    tests_changed: list[TestChange] = Field(default_factory=list)
    new_templates: list[TemplateCount] = Field(default_factory=list)
    restarted_pods: list[RestartedPod] = Field(default_factory=list)


class PipelineSummary(BaseModel):
    provider: str
    repository: str
    pipeline: str
    runs: int
    succeeded: int
    failed: int
    failure_rate: float = Field(description="(failed + timed out) / finished runs.")
    duration_p50_s: float | None = None
    last_run_id: str
    last_status: str
    last_run_at: datetime


class TrendDay(BaseModel):
    day: date
    runs: int
    failed: int
    failure_rate: float
    duration_p50_s: float | None = None
    duration_p95_s: float | None = None


class TestStat(BaseModel):
    __test__ = False
    key: str
    results: int
    p50_s: float
    p95_s: float
    max_s: float


class FlakyTest(BaseModel):
    key: str
    suite: str
    name: str
    flaky_commits: int = Field(description="Commits (or runs) where it both passed and failed.")
    passes: int
    failures: int
    last_seen: datetime
    pipelines: list[str]
    sample_run_ids: list[str]


class PipelineTrends(BaseModel):
    pipeline: str
    days: int
    daily: list[TrendDay]
    slowest: list[TestStat]
    flakiest: list[FlakyTest]


class TopicStat(BaseModel):
    topic: str
    partitions: int
    messages: int = Field(description="Messages written (sum of the partitions' end offsets).")


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


class GroupStat(BaseModel):
    group: str
    consumed: int = Field(description="Messages the group has committed, over its topics.")
    lag: int
    partitions: list[PartitionLag]


class Reachability(BaseModel):
    reachable: bool


class Stats(BaseModel):
    version: str
    started_at: datetime
    uptime_s: float
    broker: Reachability
    store: Reachability
    topics: list[TopicStat] = Field(description="Messages in per topic (empty if no broker).")
    consumer_groups: list[GroupStat] = Field(description="Messages out and lag per group.")
    dlq_messages: int
    runs_last_hour: dict[str, int]
    runs_last_day: dict[str, int]
    alert_deliveries_last_day: dict[str, int]
    alert_deliveries_total: dict[str, int]
