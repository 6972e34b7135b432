"""Configuration: one YAML file plus ``SENTINEL_``-prefixed env overrides, validated at start.

Environment variables override the YAML, nested keys joined by ``__``:
``SENTINEL_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` sets ``kafka.bootstrap_servers``.
Secrets never come from the YAML: the GitHub webhook secret is read from
``SENTINEL_GITHUB_WEBHOOK_SECRET`` or from the file named by ``webhooks.github.secret_file``, the
Jenkins and generic bearer tokens from ``SENTINEL_{JENKINS,GENERIC}_WEBHOOK_TOKEN`` or
``webhooks.{jenkins,generic}.token_file``.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from runtime.alerting_config import AlertingConfig
from runtime.api_config import ApiAuthConfig
from runtime.leader_config import LeaderElectionConfig
from runtime.ops_config import OpsConfig
from schemas.topics import TopicNames

GITHUB_SECRET_ENV = "SENTINEL_GITHUB_WEBHOOK_SECRET"
JENKINS_TOKEN_ENV = "SENTINEL_JENKINS_WEBHOOK_TOKEN"
GENERIC_TOKEN_ENV = "SENTINEL_GENERIC_WEBHOOK_TOKEN"
CONFIG_ENV = "SENTINEL_CONFIG"
FORBIDDEN_SECRET_KEYS = ("secret", "webhook_secret", "password", "token")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopicsConfig(Section):
    prefix: str = Field(default="sentinel.", description="Prefix of every topic name.")
    partitions: int = Field(default=3, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=16)


# librdkafka's message.max.bytes for every producer of ours (runtime.kafka_clients).
MAX_PRODUCED_BYTES = 16 * 1024 * 1024
VALUE_TOO_LARGE = "ValueTooLarge"  # the dead letter's error_type (KafkaConfig.value_problem)
# A consumed CI event carries the webhook body, a log line its text: the limit must leave them room.
VALUE_HEADROOM = 1024 * 1024


class KafkaConfig(Section):
    bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; empty = start the embedded broker."
    )
    client_id: str = "automation-run-sentinel"
    delivery_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="How long a webhook waits for the broker's ack."
    )
    producer: dict[str, str] = Field(
        default_factory=dict, description="Extra librdkafka producer properties (e.g. SASL)."
    )
    consumer: dict[str, str] = Field(
        default_factory=dict, description="Extra librdkafka consumer properties (e.g. SASL)."
    )
    max_value_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        le=MAX_PRODUCED_BYTES,
        description=(
            "Largest value the worker, the sink and the alert dispatcher accept from an input "
            "topic; a larger one goes to the dead-letter topic (ValueTooLarge)."
        ),
    )

    def value_problem(self, size: int) -> str | None:
        """Why a consumed value of `size` bytes is refused, or None (pure: no client)."""
        if size <= self.max_value_bytes:
            return None
        return (
            f"value of {size} bytes is over kafka.max_value_bytes={self.max_value_bytes} "
            "(raise it if such values are expected)"
        )


class StoreConfig(Section):
    dsn: str | None = Field(
        default=None,
        description=(
            "http(s)://user@host:8123/db for a server; empty = embedded engine in data_dir."
        ),
    )
    database: str = Field(default="sentinel", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    password_env: str = Field(
        default="SENTINEL_CLICKHOUSE_PASSWORD", description="Env var holding the server password."
    )
    log_ttl_days: int = Field(
        default=14, ge=1, le=3650, description="Days log_lines are kept (applied at migration)."
    )
    # Server-only knobs (docs/clickhouse.md); the embedded engine refuses cluster/replicated.
    cluster: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Run the schema DDL ON CLUSTER this cluster (server only).",
    )
    replicated: bool = Field(
        default=False, description="Create Replicated*MergeTree tables (server only)."
    )
    compression: str = Field(
        default="lz4", pattern=r"^(lz4|zstd|gzip|none)$", description="HTTP compression."
    )
    async_insert: bool = Field(
        default=False, description="Server-side async inserts (always waited for before commit)."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    send_receive_timeout_s: float = Field(default=300.0, gt=0, le=3600)
    insert_settings: dict[str, str] = Field(
        default_factory=dict, description="Extra ClickHouse settings sent with every insert."
    )


class BrokerKind(StrEnum):
    AUTO = "auto"
    APACHE_KAFKA = "apache-kafka"
    TANSU = "tansu"


class EmbeddedConfig(Section):
    data_dir: Path = Field(default=Path(".data"), description="Broker, store and spool files.")
    broker: BrokerKind = BrokerKind.AUTO
    kafka_version: str = Field(default="4.1.1", pattern=r"^\d+\.\d+\.\d+$")
    broker_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")


class ApiConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    page_size_max: int = Field(default=500, ge=1, le=10000)
    auth: ApiAuthConfig = Field(default_factory=ApiAuthConfig)


class GithubWebhookConfig(Section):
    secret_file: Path | None = Field(
        default=None, description=f"File holding the webhook secret (else env {GITHUB_SECRET_ENV})."
    )


class TokenWebhookConfig(Section):
    """A webhook authenticated by a bearer token (Jenkins, generic; docs/webhooks.md)."""

    token_file: Path | None = Field(
        default=None, description="File holding the bearer token (else the env variable)."
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="Accept requests without a token when none is configured (trusted "
        "networks only); otherwise the endpoint answers 401 until a token is set.",
    )


class JenkinsWebhookConfig(TokenWebhookConfig):
    instance: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of the Jenkins controller, put in run ids (jenkins:<instance>:<job>:"
        "<number>) so that several controllers posting here never share a run id.",
    )


class WebhooksConfig(Section):
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    spool_dir: Path | None = Field(
        default=None, description="Where undeliverable webhooks wait; default data_dir/spool."
    )
    dedup_ttl_hours: float = Field(default=72.0, gt=0)
    github: GithubWebhookConfig = Field(default_factory=GithubWebhookConfig)
    jenkins: JenkinsWebhookConfig = Field(default_factory=JenkinsWebhookConfig)
    generic: TokenWebhookConfig = Field(default_factory=TokenWebhookConfig)


class MarkerAction(StrEnum):
    MARK = "mark"
    RUN_START = "run_start"
    RUN_END = "run_end"
    STAGE_START = "stage_start"
    STAGE_END = "stage_end"


class LogMarkerRule(Section):
    """A log line pattern with a meaning: ``(?P<stage>...)`` names the stage, ``(?P<status>...)``
    may carry succeeded/failed/passed/success/failure/error words for ends."""

    name: str = Field(min_length=1, description="Marker name (what required_markers refers to).")
    pattern: str = Field(description="Python regular expression searched in each log line.")
    action: MarkerAction = MarkerAction.MARK
    status: str | None = Field(
        default=None, description="Status for run_end/stage_end when the line carries none."
    )
    stage: str | None = Field(default=None, description="Stage name when the pattern has none.")
    containers: list[str] = Field(default_factory=lambda: ["*"], description="Container globs.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str | None) -> str | None:
        allowed = {"succeeded", "failed", "cancelled", "timed_out", "unknown"}
        if value is not None and value not in allowed:
            raise ValueError(f"expected one of {sorted(allowed)}")
        return value


class RuleMatch(Section):
    """Which runs a structure rule applies to: every given glob must match (fnmatch)."""

    pipeline: str | None = None
    namespace: str | None = None
    provider: str | None = None
    repository: str | None = None
    branch: str | None = None
    labels: dict[str, str] = Field(default_factory=dict, description="Label name -> value glob.")


class StructureRule(Section):
    """What a run must look like. Each violation is an Anomaly of category `structure`."""

    name: str = Field(min_length=1)
    match: RuleMatch = Field(default_factory=RuleMatch)
    severity: str = Field(default="warning", pattern=r"^(info|warning|error|critical)$")
    required_stages: list[str] = Field(default_factory=list, description="Stage name globs.")
    stage_order: list[str] = Field(
        default_factory=list, description="Stage name globs that must start in this order."
    )
    max_run_duration_s: float | None = Field(default=None, gt=0)
    max_stage_duration_s: dict[str, float] = Field(
        default_factory=dict, description="Stage name glob -> longest allowed duration."
    )
    min_tests: int | None = Field(default=None, ge=0)
    required_markers: list[str] = Field(default_factory=list)
    required_containers: list[str] = Field(default_factory=list, description="Container globs.")


class InfraDetectorsConfig(Section):
    """Thresholds of the infrastructure detectors (issue 5); pod facts come from sentinel.k8s."""

    enabled: bool = True
    pending_limit_s: float = Field(
        default=300.0, gt=0, description="A pod Pending (unscheduled or pulling) longer than this."
    )
    restart_burst: int = Field(
        default=3, ge=1, description="This many container restarts within restart_window_s."
    )
    restart_window_s: float = Field(default=600.0, gt=0)
    severity: dict[str, str] = Field(
        default_factory=dict,
        description="Detector type -> severity (info/warning/error/critical) overrides.",
    )


class TestDetectorsConfig(Section):
    """Thresholds of the test detectors (issue 5): baselines per pipeline and branch."""

    __test__ = False  # not a pytest test class

    history_runs: int = Field(default=20, ge=2, description="Runs kept per pipeline and branch.")
    min_samples: int = Field(
        default=5, ge=2, description="Runs from which detectors judge with the configured margins."
    )
    duration_ratio: float = Field(
        default=2.0, gt=1, description="Slower than median x this (ratio guard)..."
    )
    duration_min_delta_s: float = Field(
        default=5.0, ge=0, description="...and by at least this many seconds (absolute guard)."
    )
    duration_mads: float = Field(
        default=5.0, gt=0, description="...and this many MADs above the median."
    )
    erratic_cv: float = Field(
        default=0.5, gt=0, description="Tests whose durations vary more than this are skipped."
    )
    failure_rate_spike: float = Field(
        default=0.3, gt=0, le=1, description="Failed share above the baseline by this much."
    )
    missing_after_runs: int = Field(
        default=3, ge=1, description="A test seen in this many previous runs and now missing."
    )
    cold_start_samples: int = Field(
        default=3,
        ge=1,
        description="From this many samples (below min_samples) a detector judges, with every "
        "margin multiplied by cold_start_factor (docs/anomalies.md, cold start).",
    )
    cold_start_factor: float = Field(
        default=2.0, ge=1, description="How much larger the margins are while samples are few."
    )


class LogDetectorsConfig(Section):
    """Thresholds of the log detectors (issue 5)."""

    window_s: float = Field(default=60.0, gt=0, description="Event-time window for error rates.")
    spike_factor: float = Field(
        default=5.0, gt=1, description="Errors per window above baseline mean x this..."
    )
    spike_min_errors: int = Field(default=10, ge=1, description="...and at least this many.")
    silence_s: float | None = Field(
        default=900.0,
        gt=0,
        description="A running pod of an active run that logged before and then nothing for "
        "this long (event time) is log_silence; null = off.",
    )
    min_samples: int = Field(default=3, ge=1, description="Earlier runs needed for a baseline.")
    cold_start_samples: int = Field(
        default=2,
        ge=1,
        description="From this many earlier runs (below min_samples) the log detectors judge "
        "with larger margins: spike_factor and spike_min_errors x cold_start_factor, and a new "
        "error template must occur at least cold_start_factor times in the run.",
    )
    cold_start_factor: float = Field(
        default=2.0, ge=1, description="How much larger the margins are while runs are few."
    )


class WarmStartConfig(Section):
    """Baselines read back from the store's history at start-up (see
    processors.anomalies.warm_start)."""

    enabled: bool = True
    lookback_days: float = Field(
        default=30.0, gt=0, le=3650, description="Only runs that finished this recently."
    )
    min_age_s: float = Field(
        default=900.0,
        ge=0,
        description="Only runs that finished at least this long ago (wall clock): younger ones "
        "are still the live worker's to judge.",
    )
    max_log_lines_per_run: int = Field(
        default=10_000, ge=0, description="Log lines read back per run (0 = test history only)."
    )


class AnomaliesConfig(Section):
    infra: InfraDetectorsConfig = Field(default_factory=InfraDetectorsConfig)
    tests: TestDetectorsConfig = Field(default_factory=TestDetectorsConfig)
    logs: LogDetectorsConfig = Field(default_factory=LogDetectorsConfig)
    warm_start: WarmStartConfig = Field(default_factory=WarmStartConfig)


class StructureConfig(Section):
    rules: list[StructureRule] = Field(default_factory=list)


class TrackingConfig(Section):
    app_id: str | None = Field(
        default=None,
        description="Faust app id = consumer group and changelog prefix; default <prefix>worker.",
    )
    ignore_check_suite_apps: list[str] = Field(
        default_factory=lambda: ["github-actions"],
        description="Check suites of these GitHub Apps duplicate workflow_run runs; skip them.",
    )
    web_port: int | None = Field(default=None, ge=0, le=65535, description="Faust web UI port.")
    commit_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="How often the worker commits its offsets."
    )
    inactivity_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="A run with no input at all (log lines included) for this long, in event "
        "time, is closed as timed_out.",
    )
    pod_quiet_period_s: float = Field(
        default=60.0,
        ge=0,
        description="A run with no CI system and no Job ends this long after all its pods ended.",
    )
    allowed_lateness_s: float = Field(
        default=60.0,
        ge=0,
        description="How far behind the newest event time the watermark stays: events up to "
        "this late still count before a timeout is decided.",
    )
    idle_watermark_s: float | None = Field(
        default=10.0,
        gt=0,
        description="Live mode: after this many seconds without input the wall clock advances "
        "the watermark, so a hung run times out; null = event time only (offline analysis).",
    )
    activity_bucket_s: float = Field(
        default=60.0, gt=0, le=3600, description="Log activity is reported once per bucket."
    )
    settle_s: float = Field(
        default=60.0,
        ge=0,
        description="End-of-run structure rules wait this long after the end (event time) for "
        "late test results and markers.",
    )
    retain_ended_s: float = Field(
        default=3600.0,
        gt=0,
        description="An ended run whose end-of-run checks are done (history entry sent) is "
        "forgotten by the worker (its state, tests and log analysis deleted from the tables; "
        "the final run stays on sentinel.runs and in the store) once the watermark passes its "
        "last event + settle_s + this. Input for a forgotten run that is older than the "
        "watermark minus this goes to the DLQ (LateForRetiredRun), never opening the run again. "
        "One hour: 60x allowed_lateness_s, far beyond Kafka redeliveries after a restart (the "
        "uncommitted seconds) and webhook spool replays after short broker outages; run ids do "
        "not come back (GitHub runs are per attempt, Jenkins per build number). Memory grows "
        "with it: about 27 KB per ended run kept.",
    )
    max_link_buffer: int = Field(
        default=2000,
        ge=1,
        description="Signals kept per correlation key while no CI event has named its run yet.",
    )
    log_recovery_lines: int = Field(
        default=200_000,
        ge=0,
        description="After a restart the worker re-reads up to this many log lines per "
        "partition to rebuild what it was parsing (open Jenkins stages, test sessions).",
    )
    jenkins_stages: bool = Field(
        default=True, description="Read stages from Jenkins `[Pipeline] stage` log lines."
    )
    log_markers: list[LogMarkerRule] = Field(
        default_factory=list, description="Log lines that start/end runs and stages or mark events."
    )


class SinkConfig(Section):
    group_id: str | None = Field(
        default=None, description="Consumer group; default <prefix>clickhouse-sink."
    )
    batch_rows: int = Field(default=1000, ge=1, le=1_000_000)
    batch_seconds: float = Field(default=1.0, gt=0, le=600)


class CorrelationRule(Section):
    """One way to read a run correlation key off an object: a label or an annotation.

    The first rule (in list order) whose label/annotation is present and non-empty wins. The
    key is `template` formatted with ``{value}`` (the label/annotation value), ``{namespace}``
    and ``{name}`` (the object's), so keys from different CI systems never collide.
    """

    label: str | None = Field(default=None, description="Label whose value identifies the run.")
    annotation: str | None = Field(
        default=None, description="Annotation whose value identifies the run."
    )
    template: str = Field(default="{value}", description="Key format: {value} {namespace} {name}.")

    @model_validator(mode="after")
    def _one_source(self) -> CorrelationRule:
        if (self.label is None) == (self.annotation is None):
            raise ValueError("set exactly one of label or annotation")
        try:
            self.template.format(value="v", namespace="ns", name="n")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"template may use only {{value}} {{namespace}} {{name}}: {exc}"
            ) from exc
        return self


def _default_correlation() -> list[CorrelationRule]:
    # DESIGN.md "Runs and correlation", in that order. ARC runner pods are named after the
    # runner, which GitHub reports as runner_name in workflow_job: the key is the pod name.
    rules = [
        ("label", "sentinel.io/run-id", "{value}"),
        ("label", "tekton.dev/pipelineRun", "tekton:{namespace}/{value}"),
        ("label", "tekton.dev/taskRun", "tekton-taskrun:{namespace}/{value}"),
        ("label", "workflows.argoproj.io/workflow", "argo:{namespace}/{value}"),
        ("annotation", "runUrl", "jenkins:{value}"),
        ("label", "actions.github.com/scale-set-name", "github-runner:{name}"),
        ("label", "batch.kubernetes.io/job-name", "job:{namespace}/{value}"),
        ("label", "job-name", "job:{namespace}/{value}"),
    ]
    return [CorrelationRule(**{src: key, "template": template}) for src, key, template in rules]


class K8sKind(StrEnum):
    POD = "Pod"
    JOB = "Job"
    SERVICE = "Service"
    EVENT = "Event"


class K8sConfig(Section):
    """The Kubernetes watcher (`sentinel k8s-watch`) and what both producers read objects with."""

    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig file; null = in-cluster service account if running in a pod, "
        "else $KUBECONFIG / ~/.kube/config.",
    )
    context: str | None = Field(default=None, description="kubeconfig context; null = current.")
    in_cluster: bool | None = Field(
        default=None, description="Force (true) or forbid (false) the in-cluster config."
    )
    cluster: str | None = Field(default=None, description="Cluster name put on every event.")
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty = all namespaces."
    )
    label_selector: str | None = None
    field_selector: str | None = None
    kinds: list[K8sKind] = Field(default_factory=lambda: list(K8sKind))
    correlation: list[CorrelationRule] = Field(default_factory=_default_correlation)
    job_correlation: str | None = Field(
        default="job:{namespace}/{name}",
        description="Key of a Job (and of Events about it) that no rule matched, so it shares "
        "the key its pods get from the job-name label; null = none.",
    )
    list_page_size: int = Field(default=500, ge=1, le=100_000)
    watch_timeout_s: int = Field(
        default=300, ge=1, le=3600, description="Server-side timeoutSeconds of one watch call."
    )
    silence_limit_s: float = Field(
        default=120.0, gt=0, le=3600, description="No byte for this long = the stream is dead."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    backoff_base_s: float = Field(default=0.5, gt=0, le=60)
    backoff_cap_s: float = Field(default=30.0, gt=0, le=3600)
    dedup_recent: int = Field(
        default=10_000, ge=16, le=10_000_000, description="(uid, resourceVersion) pairs remembered."
    )
    state_file: Path | None = Field(
        default=None,
        description="Where the watcher keeps what it published, so that after a restart it "
        "publishes only what changed while it was down; null = a restart publishes every "
        "object again (as RELISTED).",
    )
    checkpoint_s: float = Field(
        default=30.0, gt=0, le=3600, description="How often state_file is written."
    )


class LogsConfig(Section):
    """The pod log streamer (`sentinel log-stream`)."""

    only_correlated: bool = Field(
        default=True, description="Follow only pods with a run correlation key."
    )
    label_selector: str | None = Field(
        default=None, description="Server-side selector for the pods whose logs are followed."
    )
    field_selector: str | None = None
    max_streams: int = Field(default=50, ge=1, le=10_000, description="Concurrent log streams.")
    max_line_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    queue_size: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Lines waiting to be published."
    )
    silence_limit_s: float = Field(
        default=300.0, gt=0, le=86_400, description="A log stream silent this long is reopened."
    )
    state_file: Path | None = Field(
        default=None,
        description="Where the streamer keeps how far each container's log was published, so "
        "that after a restart it resumes there; null = a restart reads logs from the start.",
    )
    checkpoint_s: float = Field(
        default=10.0, gt=0, le=3600, description="How often state_file is written."
    )


class LoggingConfig(Section):
    level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    format: str = Field(
        default="auto",
        pattern=r"^(auto|json|text)$",
        description="json lines, readable text, or auto: text on a terminal, else json.",
    )


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="SENTINEL_", env_nested_delimiter="__", extra="forbid"
    )

    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    embedded: EmbeddedConfig = Field(default_factory=EmbeddedConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    sink: SinkConfig = Field(default_factory=SinkConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    k8s: K8sConfig = Field(default_factory=K8sConfig)
    logs: LogsConfig = Field(default_factory=LogsConfig)
    structure: StructureConfig = Field(default_factory=StructureConfig)
    anomalies: AnomaliesConfig = Field(default_factory=AnomaliesConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    ops: OpsConfig = Field(default_factory=OpsConfig)
    leader_election: LeaderElectionConfig = Field(default_factory=LeaderElectionConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    @field_validator("embedded")
    @classmethod
    def _absolute_data_dir(cls, value: EmbeddedConfig) -> EmbeddedConfig:
        value.data_dir = value.data_dir.expanduser().resolve()
        return value

    @model_validator(mode="after")
    def _values_fit_the_consumers(self) -> Settings:
        # Otherwise the webhook receiver or the log streamer would publish what every consumer
        # then dead-letters as too large.
        limit = self.kafka.max_value_bytes
        for key, size in (
            ("webhooks.max_body_bytes", self.webhooks.max_body_bytes),
            ("logs.max_line_bytes", self.logs.max_line_bytes),
        ):
            if size + VALUE_HEADROOM > limit:
                raise ValueError(
                    f"kafka.max_value_bytes ({limit}) must be at least {key} ({size}) + "
                    f"{VALUE_HEADROOM} bytes: the consumers would refuse what the producers send"
                )
        return self

    @property
    def topic_names(self) -> TopicNames:
        return TopicNames(self.topics.prefix)

    # Everything an installation names in Kafka carries the topic prefix, so two installations
    # sharing a cluster never share a consumer group or a table changelog.
    @property
    def worker_app_id(self) -> str:
        return self.tracking.app_id or f"{self.topics.prefix}worker"

    @property
    def sink_group_id(self) -> str:
        return self.sink.group_id or f"{self.topics.prefix}clickhouse-sink"

    @property
    def alerts_group_id(self) -> str:
        return self.alerting.group_id or f"{self.topics.prefix}alerts"

    @property
    def spool_dir(self) -> Path:
        return self.webhooks.spool_dir or self.embedded.data_dir / "spool"

    def github_webhook_secret(self) -> SecretStr | None:
        """The secret from the environment, else from the configured file, else None."""
        value = os.environ.get(GITHUB_SECRET_ENV)
        if value:
            return SecretStr(value)
        path = self.webhooks.github.secret_file
        if path is not None:
            return SecretStr(path.read_text().strip())
        return None

    def jenkins_webhook_token(self) -> SecretStr | None:
        return _secret(JENKINS_TOKEN_ENV, self.webhooks.jenkins.token_file)

    def generic_webhook_token(self) -> SecretStr | None:
        return _secret(GENERIC_TOKEN_ENV, self.webhooks.generic.token_file)


def _secret(env: str, path: Path | None) -> SecretStr | None:
    """A secret from the environment, else from the file, else None (empty counts as unset)."""
    value = os.environ.get(env) or (path.read_text().strip() if path is not None else "")
    return SecretStr(value) if value else None


class ConfigError(Exception):
    """Invalid configuration; `problems` holds one `path: what was expected` line per bad key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid configuration in {source}:\n  " + "\n  ".join(problems))


def _env_name(loc: tuple[Any, ...]) -> str:
    return "SENTINEL_" + "__".join(str(part).upper() for part in loc)


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    path = ".".join(str(part) for part in loc) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against config.example.yaml)"
    given = error.get("input")
    shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
    env = _env_name(loc)
    hint = f" [or from env {env}]" if env in os.environ else ""
    return f"{path}: {message}{shown}{hint}"


def _secret_keys(data: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            sub = f"{path}.{key}" if path else str(key)
            if str(key).lower() in FORBIDDEN_SECRET_KEYS:
                found.append(
                    f"{sub}: secrets are not read from the YAML file; set the environment "
                    f"variable (e.g. {GITHUB_SECRET_ENV}) or a *_file key instead"
                )
            found.extend(_secret_keys(value, sub))
    elif isinstance(data, list):  # e.g. alerting.receivers: a secret must not echo either
        for index, item in enumerate(data):
            found.extend(_secret_keys(item, f"{path}.{index}"))
    return found


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) if path.exists() else None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"(file): not valid YAML: {exc}"]) from exc
    if not path.exists():
        raise ConfigError(str(path), ["(file): does not exist"])
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["(top level): expected a mapping of sections"])
    return data


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load YAML (if given, else $SENTINEL_CONFIG if set), apply env overrides, validate.

    `overrides` are section dicts merged over the YAML (used by the CLI's flags and tests).
    Raises `ConfigError` listing every bad key.
    """
    if path is None and os.environ.get(CONFIG_ENV):
        path = os.environ[CONFIG_ENV]
    data: dict[str, Any] = read_yaml(Path(path)) if path is not None else {}
    source = str(path) if path is not None else "(defaults and environment)"
    problems = _secret_keys(data)
    for section, values in overrides.items():
        merged = dict(data.get(section) or {})
        merged.update(values)
        data[section] = merged
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        secret_paths = {problem.split(":", 1)[0] for problem in problems}
        problems.extend(
            _describe(error)
            for error in exc.errors()
            if ".".join(str(part) for part in error["loc"]) not in secret_paths
        )
        raise ConfigError(source, problems) from exc
    if problems:
        raise ConfigError(source, problems)
    secret_file = settings.webhooks.github.secret_file
    if secret_file is not None and not secret_file.is_file():
        raise ConfigError(
            source, [f"webhooks.github.secret_file: expected a readable file (got {secret_file})"]
        )
    for name in ("jenkins", "generic"):
        token_file = getattr(settings.webhooks, name).token_file
        if token_file is not None and not token_file.is_file():
            raise ConfigError(
                source, [f"webhooks.{name}.token_file: expected a readable file (got {token_file})"]
            )
    return settings
