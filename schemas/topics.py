"""The topic registry: every topic the pipeline uses, with its key, value model and settings.

Names carry a configurable prefix (default ``sentinel.``) so several installations can share one
Kafka cluster. Partition counts must match between topics that are joined by key (`sentinel.ci`
and the run tracker's table), so they come from one place: this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.messages import (
    AlertDelivery,
    AlertGroupState,
    AlertRun,
    Anomaly,
    CiEvent,
    DeadLetter,
    K8sObjectEvent,
    LogLine,
    Message,
    PipelineHealth,
    RunSignal,
    RunState,
    Silence,
    TestResult,
)

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """A topic's suffix (the name without prefix), value model, key meaning and settings."""

    suffix: str
    model: type[Message]
    key: str
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False
    extra_config: dict[str, str] = field(default_factory=dict)

    def name(self, prefix: str) -> str:
        return f"{prefix}{self.suffix}"

    def config(self) -> dict[str, str]:
        cfg = {"retention.ms": str(self.retention_ms)}
        if self.compacted:
            cfg["cleanup.policy"] = "compact"
        cfg.update(self.extra_config)
        return cfg


CI = TopicSpec("ci", CiEvent, key="run_id")
K8S = TopicSpec("k8s", K8sObjectEvent, key="namespace/name")
LOGS = TopicSpec("logs", LogLine, key="namespace/pod/container", retention_ms=3 * DAY_MS)
TESTS = TopicSpec("tests", TestResult, key="run_id")
RUNS = TopicSpec("runs", RunState, key="run_id", retention_ms=-1, compacted=True)
ANOMALIES = TopicSpec("anomalies", Anomaly, key="run_id")
ALERT_DELIVERIES = TopicSpec("alert-deliveries", AlertDelivery, key="channel/group_key")
DLQ = TopicSpec("dlq", DeadLetter, key="origin_topic/partition/offset", retention_ms=30 * DAY_MS)

# The alert dispatcher's durable state (sinks.alerts, docs/alerts.md). Runs and groups are
# written to the partition of the input (runs, anomalies) they come from, whatever their key:
# the dispatcher replica that owns input partition p restores partition p of both at start or
# on rebalance. Silences and pipeline health are small and global: every replica reads them all.
# Tombstones (null values) end a run's or group's record once its retention has passed.
ALERT_RUNS = TopicSpec("alert-runs", AlertRun, key="run_id", retention_ms=-1, compacted=True)
ALERT_GROUPS = TopicSpec(
    "alert-groups",
    AlertGroupState,
    key="group_key",
    retention_ms=-1,
    compacted=True,
    extra_config={"max.message.bytes": str(16 * 1024 * 1024)},
)
SILENCES = TopicSpec("silences", Silence, key="silence_id", retention_ms=-1, compacted=True)
ALERT_PIPELINES = TopicSpec(
    "alert-pipelines", PipelineHealth, key="[pipeline, branch]", retention_ms=-1, compacted=True
)

# Internal to the worker: pods, Jobs, log markers and test batches turned into run input. Keyed
# by run id (co-partitioned with `ci`, so one tracker table sees both), or by correlation key
# while a CI event has yet to name the run (ARC runner pods, Jenkins agent pods).
RUN_SIGNALS = TopicSpec("run-signals", RunSignal, key="run_id", retention_ms=3 * DAY_MS)
RUN_LINKS = TopicSpec("run-links", RunSignal, key="correlation_key", retention_ms=3 * DAY_MS)
# Finished runs, keyed by [pipeline, branch], for the detectors that compare a run with the
# earlier runs of its pipeline. The value is processors.anomalies.tests.RunRecord (JSON).
RUN_HISTORY = TopicSpec(
    "run-history",
    Message,
    key="[pipeline, branch]",
    retention_ms=3 * DAY_MS,
    extra_config={"max.message.bytes": str(16 * 1024 * 1024)},
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    CI,
    K8S,
    LOGS,
    TESTS,
    RUNS,
    ANOMALIES,
    ALERT_DELIVERIES,
    DLQ,
    RUN_SIGNALS,
    RUN_LINKS,
    RUN_HISTORY,
    ALERT_RUNS,
    ALERT_GROUPS,
    SILENCES,
    ALERT_PIPELINES,
)


@dataclass(frozen=True)
class TopicNames:
    """Resolved topic names for one installation."""

    prefix: str = "sentinel."

    @property
    def ci(self) -> str:
        return CI.name(self.prefix)

    @property
    def k8s(self) -> str:
        return K8S.name(self.prefix)

    @property
    def logs(self) -> str:
        return LOGS.name(self.prefix)

    @property
    def tests(self) -> str:
        return TESTS.name(self.prefix)

    @property
    def runs(self) -> str:
        return RUNS.name(self.prefix)

    @property
    def anomalies(self) -> str:
        return ANOMALIES.name(self.prefix)

    @property
    def alert_deliveries(self) -> str:
        return ALERT_DELIVERIES.name(self.prefix)

    @property
    def dlq(self) -> str:
        return DLQ.name(self.prefix)

    @property
    def run_signals(self) -> str:
        return RUN_SIGNALS.name(self.prefix)

    @property
    def run_links(self) -> str:
        return RUN_LINKS.name(self.prefix)

    @property
    def run_history(self) -> str:
        return RUN_HISTORY.name(self.prefix)

    @property
    def alert_runs(self) -> str:
        return ALERT_RUNS.name(self.prefix)

    @property
    def alert_groups(self) -> str:
        return ALERT_GROUPS.name(self.prefix)

    @property
    def silences(self) -> str:
        return SILENCES.name(self.prefix)

    @property
    def alert_pipelines(self) -> str:
        return ALERT_PIPELINES.name(self.prefix)

    def all(self) -> list[str]:
        return [spec.name(self.prefix) for spec in ALL_TOPICS]
