-- Tables for everything else the pipeline stores: stages, Kubernetes events, log lines and their
-- templates, test results, anomalies and alert deliveries (issue 6).
--
-- Placeholders rendered by the migration runner (sinks.clickhouse.ddl): {database}, and
-- {log_ttl_days} from store.log_ttl_days. With store.cluster / store.replicated set, the runner
-- also adds ON CLUSTER and switches every engine to its Replicated* form (docs/clickhouse.md).
--
-- Every table the sink writes keeps non_replicated_deduplication_window, so a retried insert
-- with the same insert_deduplication_token lands once (replicated tables deduplicate anyway).
-- ORDER BY keys put the API's lookups first (per run), dashboards read the trend views (0003).

-- One row per stage per run snapshot; the highest run version wins, so a read with FINAL gives
-- each stage of a run as of the latest snapshot. Denormalised pipeline/repository/branch let
-- stage-duration dashboards filter without joining runs.
CREATE TABLE IF NOT EXISTS {database}.stages
(
    run_id String COMMENT 'Sentinel run id the stage belongs to.',
    stage_id String COMMENT 'Stage id within the run (workflow job id, TaskRun name, ...).',
    name String COMMENT 'Stage name as the CI system shows it.',
    status LowCardinality(String) COMMENT 'Normalised stage status (pending, running, succeeded, ...).',
    conclusion LowCardinality(Nullable(String)) COMMENT 'Conclusion as reported by the CI system.',
    runner_name Nullable(String) COMMENT 'Runner / node the stage ran on, when reported.',
    started_at Nullable(DateTime64(3, 'UTC')) COMMENT 'When the stage started.',
    finished_at Nullable(DateTime64(3, 'UTC')) COMMENT 'When the stage finished (NULL while active).',
    duration_s Nullable(Float64) COMMENT 'Stage duration in seconds, once known.',
    updated_at DateTime64(3, 'UTC') COMMENT 'Event time of the latest change to the stage.',
    step_count UInt32 COMMENT 'Number of steps in `steps`.',
    steps String COMMENT 'JSON array of the stage steps (StepInfo objects).',
    url Nullable(String) COMMENT 'Link to the stage in the CI system.',
    provider LowCardinality(String) COMMENT 'CI system of the run.',
    repository Nullable(String) COMMENT 'Repository of the run (copied from the run).',
    pipeline Nullable(String) COMMENT 'Pipeline of the run (copied from the run).',
    branch Nullable(String) COMMENT 'Branch of the run (copied from the run).',
    run_version UInt64 COMMENT 'Version of the run snapshot this row came from; the highest wins.',
    extra String DEFAULT '{}' COMMENT 'JSON object of stage fields this schema does not know.',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote this row.'
)
ENGINE = ReplacingMergeTree(run_version)
ORDER BY (run_id, stage_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Stages of each run, latest run snapshot wins (read with FINAL).';

-- Kubernetes watch events, append-only history. Ordered by correlation key (the run's pods,
-- jobs and events together) then object and time: the per-run timeline is one range read.
CREATE TABLE IF NOT EXISTS {database}.k8s_events
(
    event_time DateTime64(3, 'UTC') COMMENT 'Event time (object or event timestamp).',
    event_type LowCardinality(String) COMMENT 'Watch event: ADDED, MODIFIED, DELETED, RELISTED.',
    kind LowCardinality(String) COMMENT 'Object kind: Pod, Job, Service, Event, Node.',
    api_version LowCardinality(String) COMMENT 'apiVersion of the object.',
    namespace String COMMENT 'Namespace of the object ('''' for cluster-scoped objects).',
    name String COMMENT 'Name of the object.',
    uid String COMMENT 'Kubernetes uid of the object.',
    resource_version String COMMENT 'resourceVersion of the object in this event.',
    correlation_key String COMMENT 'Run correlation key from labels/annotations ('''' if none).',
    cluster LowCardinality(String) COMMENT 'Cluster name when several are watched ('''' if unset).',
    node LowCardinality(String) COMMENT 'Node: Pod spec.nodeName, Event source.host, Node name ('''' if none).',
    phase LowCardinality(String) COMMENT 'Pod status.phase ('''' for other kinds).',
    reason LowCardinality(String) COMMENT 'Event reason, or a container waiting/terminated reason (OOMKilled, ...).',
    message String COMMENT 'Event message or the container state message ('''' if none).',
    labels Map(String, String) COMMENT 'Labels of the object.',
    annotations Map(String, String) COMMENT 'Annotations of the object.',
    owner_refs String COMMENT 'JSON array of ownerReferences.',
    object String CODEC(ZSTD(3)) COMMENT 'The object as JSON (managedFields stripped).',
    received_at DateTime64(3, 'UTC') COMMENT 'When the watcher received the event.',
    schema_version UInt8 COMMENT 'schema_version of the K8sObjectEvent message.',
    extra String DEFAULT '{}' COMMENT 'JSON object of message fields this schema does not know.',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote this row.',

    INDEX idx_node node TYPE set(256) GRANULARITY 4,
    INDEX idx_reason reason TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (correlation_key, namespace, kind, name, event_time)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Kubernetes watch events (Pods, Jobs, Services, core Events), append-only.';

-- Container log lines, kept {log_ttl_days} days (TTL drops whole daily partitions). Ordered by
-- container stream and time (the order a pod's logs are read in); the log streamer knows the
-- pod's correlation key but the run id only once the tracker has linked them, so a run's lines
-- are found through bloom filter indexes on both. template_id/template are set when the log
-- template miner annotated the line.
CREATE TABLE IF NOT EXISTS {database}.log_lines
(
    event_time DateTime64(3, 'UTC') COMMENT 'Timestamp of the line (from the container runtime).',
    run_id String COMMENT 'Run the line belongs to ('''' until correlated).',
    namespace LowCardinality(String) COMMENT 'Namespace of the pod.',
    pod String COMMENT 'Pod name.',
    container LowCardinality(String) COMMENT 'Container name.',
    line String CODEC(ZSTD(3)) COMMENT 'The log line text.',
    truncated Bool COMMENT 'True when the producer cut an over-long line.',
    level LowCardinality(String) COMMENT 'Detected level (error, warning, info, ...; '''' if unknown).',
    template_id String COMMENT 'Id of the mined log template ('''' if not mined).',
    template LowCardinality(String) COMMENT 'The mined template text ('''' if not mined).',
    correlation_key String COMMENT 'Correlation key of the pod ('''' if none).',
    received_at DateTime64(3, 'UTC') COMMENT 'When the log streamer read the line.',
    schema_version UInt8 COMMENT 'schema_version of the LogLine message.',
    extra String DEFAULT '{}' COMMENT 'JSON object of message fields this schema does not know.',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote this row.',

    INDEX idx_run run_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_correlation correlation_key TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_template template_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_level level TYPE set(16) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toDate(event_time)
ORDER BY (namespace, pod, container, event_time)
TTL toDateTime(event_time) + INTERVAL {log_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1
COMMENT 'Container log lines with their mined template id (TTL store.log_ttl_days).';

-- One row per test case outcome; attempts of a retried test are separate rows.
-- The CHECK makes the server refuse a negative duration (a parser bug) rather than store it:
-- the sink sends such a row to the DLQ with the server's reason and keeps the rest.
CREATE TABLE IF NOT EXISTS {database}.test_results
(
    run_id String COMMENT 'Run the test ran in.',
    suite String COMMENT 'Test suite / class / package ('''' if none).',
    name String COMMENT 'Test case name.',
    attempt UInt16 COMMENT 'Attempt number (retries increase it).',
    status LowCardinality(String) COMMENT 'passed, failed, skipped or error.',
    duration_s Nullable(Float64) COMMENT 'Test duration in seconds, when reported.',
    message Nullable(String) COMMENT 'Failure message, when reported.',
    source LowCardinality(String) COMMENT 'Where it was parsed from: junit-xml, pytest-log, go-log, ...',
    event_time DateTime64(3, 'UTC') COMMENT 'When the result was reported.',
    received_at DateTime64(3, 'UTC') COMMENT 'When the parser produced the result.',
    schema_version UInt8 COMMENT 'schema_version of the TestResult message.',
    extra String DEFAULT '{}' COMMENT 'JSON object of message fields this schema does not know.',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote this row.',

    INDEX idx_event_time event_time TYPE minmax GRANULARITY 1,
    INDEX idx_name name TYPE bloom_filter(0.01) GRANULARITY 4,
    CONSTRAINT duration_not_negative CHECK duration_s IS NULL OR duration_s >= 0
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (run_id, suite, name, attempt)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Test case outcomes (JUnit XML and parsed logs), one row per attempt.';

-- Findings; the anomaly id is a hash of run, type, subject and window, so the same finding
-- reported twice is one row after merges (read with FINAL).
CREATE TABLE IF NOT EXISTS {database}.anomalies
(
    run_id String COMMENT 'Run the finding is about.',
    anomaly_id String COMMENT 'Deterministic id: hash of run, type, subject and window.',
    category LowCardinality(String) COMMENT 'infra, app, test or structure.',
    type LowCardinality(String) COMMENT 'Detector type, e.g. oom_killed, flaky_test, error_spike.',
    severity LowCardinality(String) COMMENT 'info, warning, error or critical.',
    subject String COMMENT 'What it is about: pod, test, stage or template.',
    summary String COMMENT 'One-line human summary.',
    node LowCardinality(String) COMMENT 'Node named in the evidence (evidence.node; '''' if none).',
    evidence String COMMENT 'JSON object: observed value, baseline, threshold, samples, links.',
    window_start DateTime64(3, 'UTC') COMMENT 'Start of the event-time window the finding covers.',
    window_end DateTime64(3, 'UTC') COMMENT 'End of the event-time window the finding covers.',
    detected_at DateTime64(3, 'UTC') COMMENT 'When the detector reported it; the latest report wins.',
    schema_version UInt8 COMMENT 'schema_version of the Anomaly message.',
    extra String DEFAULT '{}' COMMENT 'JSON object of message fields this schema does not know.',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote this row.',

    INDEX idx_category category TYPE set(8) GRANULARITY 4,
    INDEX idx_window window_start TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(detected_at)
ORDER BY (run_id, anomaly_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Anomalies found in runs, one per anomaly id (read with FINAL).';

-- Audit of every alert send attempt; (delivery_id, attempt) identifies an attempt.
CREATE TABLE IF NOT EXISTS {database}.alert_deliveries
(
    channel LowCardinality(String) COMMENT 'Channel name from the alerting config.',
    group_key String COMMENT 'Alert grouping key (run or group of anomalies).',
    delivery_id String COMMENT 'Id of the delivery (stable across its attempts).',
    attempt UInt16 COMMENT 'Attempt number of this send.',
    anomaly_ids Array(String) COMMENT 'Anomalies carried by the alert.',
    outcome LowCardinality(String) COMMENT 'sent, failed, retrying or suppressed.',
    status_code Nullable(UInt16) COMMENT 'HTTP / SMTP status of the attempt, when there was one.',
    error Nullable(String) COMMENT 'Error text of a failed attempt.',
    attempted_at DateTime64(3, 'UTC') COMMENT 'When the attempt was made.',
    schema_version UInt8 COMMENT 'schema_version of the AlertDelivery message.',
    extra String DEFAULT '{}' COMMENT 'JSON object of message fields this schema does not know.',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote this row.',

    INDEX idx_anomaly anomaly_ids TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
ORDER BY (channel, group_key, delivery_id, attempt)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Every alert send attempt (audit), one row per delivery attempt (read with FINAL).';
