-- Latest known state of every run: one row per RunState snapshot from the `sentinel.runs` topic.
--
-- ReplacingMergeTree(version) keeps, per run_id, the row with the highest version once parts
-- merge; readers use FINAL to get that answer before merges have happened.
-- `{database}` is replaced by the migration runner with the configured database name.
--
-- No PARTITION BY: a run's created_at can change between snapshots (it is NULL until the CI
-- system reports it), and versions of one run must stay in one partition to replace each other.
--
-- Skipping indexes serve the run listing (filters on status, provider, repository, pipeline,
-- branch and a created_at range; ClickHouse also derives created_at conditions from the API's
-- ifNull(created_at, first_event_at) range). With FINAL they are used only in exact mode
-- (use_skip_indexes_if_final_exact_mode, on by default in ClickHouse 26.9), which keeps a stale
-- version from hiding behind a skipped granule.
--
-- non_replicated_deduplication_window makes a plain (non-replicated) MergeTree remember the last
-- 1000 insert blocks, so an insert retried with the same insert_deduplication_token lands once.

CREATE TABLE IF NOT EXISTS {database}.runs
(
    run_id String COMMENT 'Sentinel run id (key of the sentinel.runs topic).',
    schema_version UInt8 COMMENT 'schema_version of the RunState message.',
    provider LowCardinality(String) COMMENT 'CI system: github, jenkins, generic, k8s.',
    provider_run_id String COMMENT 'Run id as the CI system knows it.',
    attempt UInt32 COMMENT 'Attempt number of the run (re-runs increase it).',
    repository Nullable(String) COMMENT 'Repository (owner/name) the run belongs to.',
    pipeline Nullable(String) COMMENT 'Workflow / job / pipeline name.',
    branch Nullable(String) COMMENT 'Branch the run was built from.',
    commit_sha Nullable(String) COMMENT 'Commit the run was built from.',
    trigger LowCardinality(Nullable(String)) COMMENT 'What started the run (push, schedule, ...).',
    actor Nullable(String) COMMENT 'User or app that started the run.',
    status LowCardinality(String) COMMENT 'Normalised run status (pending, running, succeeded, ...).',
    conclusion LowCardinality(Nullable(String)) COMMENT 'Conclusion as reported by the CI system.',
    url Nullable(String) COMMENT 'Link to the run in the CI system.',
    created_at Nullable(DateTime64(3, 'UTC')) COMMENT 'When the CI system created the run.',
    started_at Nullable(DateTime64(3, 'UTC')) COMMENT 'When the run started executing.',
    finished_at Nullable(DateTime64(3, 'UTC')) COMMENT 'When the run finished (NULL while active).',
    duration_s Nullable(Float64) COMMENT 'Run duration in seconds, once known.',
    stages String COMMENT 'JSON array of StageState objects (stages with their steps).',
    stage_count UInt32 COMMENT 'Number of stages in `stages`.',
    labels Map(String, String) COMMENT 'Labels carried by the run (correlation and user labels).',
    first_event_at DateTime64(3, 'UTC') COMMENT 'Event time of the first event seen for the run.',
    updated_at DateTime64(3, 'UTC') COMMENT 'Event time of the latest event applied to the run.',
    version UInt64 COMMENT 'Snapshot version; the highest one wins (ReplacingMergeTree).',
    extra String DEFAULT '{}' COMMENT 'JSON object of fields from newer producers this schema does not know.',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote this row.',

    INDEX idx_created_at created_at TYPE minmax GRANULARITY 1,
    INDEX idx_status status TYPE set(16) GRANULARITY 4,
    INDEX idx_provider provider TYPE set(16) GRANULARITY 4,
    INDEX idx_repository repository TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_pipeline pipeline TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_branch branch TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
ORDER BY run_id
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Latest state of each automation run (RunState snapshots; read with FINAL).';
