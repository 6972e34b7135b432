-- Daily trends for Grafana and analysts, kept up to date by materialized views (issue 6), and
-- log templates aggregated from annotated log lines.
--
-- Why the pipeline trend is fed from terminal snapshots only: `runs` is a ReplacingMergeTree of
-- RunState snapshots (pending, running, ..., final), and an MV sees every inserted snapshot, not
-- the merged result. Counting in the MV would count a run once per snapshot. So the MV takes only
-- rows whose status is terminal, and counts with uniqExact(run_id): a run whose final state is
-- re-emitted (a late stage event bumps its version) still counts once, in the day it started.
-- The duration quantiles are over terminal snapshots, so a re-emitted run weighs once per
-- re-emission; `pipeline_daily_exact` (a plain view over runs FINAL) gives exact figures at a
-- higher read cost. Read the trends with the -Merge combinators and GROUP BY (see the views).

CREATE TABLE IF NOT EXISTS {database}.pipeline_daily
(
    day Date COMMENT 'UTC day the run started (started_at, else created_at, else first event).',
    provider LowCardinality(String) COMMENT 'CI system.',
    repository String COMMENT 'Repository ('''' if unknown).',
    pipeline String COMMENT 'Pipeline / workflow name ('''' if unknown).',
    runs AggregateFunction(uniqExact, String) COMMENT 'Distinct finished runs (uniqExactMerge).',
    succeeded AggregateFunction(uniqExactIf, String, UInt8) COMMENT 'Distinct runs that succeeded (uniqExactIfMerge).',
    failed AggregateFunction(uniqExactIf, String, UInt8) COMMENT 'Distinct runs that failed (uniqExactIfMerge).',
    cancelled AggregateFunction(uniqExactIf, String, UInt8) COMMENT 'Distinct runs cancelled (uniqExactIfMerge).',
    timed_out AggregateFunction(uniqExactIf, String, UInt8) COMMENT 'Distinct runs timed out (uniqExactIfMerge).',
    duration_quantiles AggregateFunction(quantilesTDigestIf(0.5, 0.9, 0.99), Float64, UInt8) COMMENT 'p50/p90/p99 run duration in seconds (quantilesTDigestIfMerge(0.5, 0.9, 0.99)).'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (provider, repository, pipeline, day)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Daily pipeline trend states, fed by pipeline_daily_mv from terminal run snapshots.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.pipeline_daily_mv TO {database}.pipeline_daily
AS SELECT
    toDate(coalesce(started_at, created_at, first_event_at)) AS day,
    provider,
    ifNull(repository, '') AS repository,
    ifNull(pipeline, '') AS pipeline,
    uniqExactState(run_id) AS runs,
    uniqExactIfState(run_id, toUInt8(status = 'succeeded')) AS succeeded,
    uniqExactIfState(run_id, toUInt8(status = 'failed')) AS failed,
    uniqExactIfState(run_id, toUInt8(status = 'cancelled')) AS cancelled,
    uniqExactIfState(run_id, toUInt8(status = 'timed_out')) AS timed_out,
    quantilesTDigestIfState(0.5, 0.9, 0.99)(ifNull(duration_s, 0), toUInt8(duration_s IS NOT NULL)) AS duration_quantiles
FROM {database}.runs
WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
GROUP BY day, provider, repository, pipeline;

-- The dashboards' view of pipeline_daily: plain numbers per day and pipeline.
CREATE VIEW IF NOT EXISTS {database}.pipeline_daily_trends
AS SELECT
    day,
    provider,
    repository,
    pipeline,
    uniqExactMerge(runs) AS runs,
    uniqExactIfMerge(succeeded) AS succeeded,
    uniqExactIfMerge(failed) AS failed,
    uniqExactIfMerge(cancelled) AS cancelled,
    uniqExactIfMerge(timed_out) AS timed_out,
    if(runs = 0, 0, failed / runs) AS failure_rate,
    quantilesTDigestIfMerge(0.5, 0.9, 0.99)(duration_quantiles) AS duration_q,
    duration_q[1] AS duration_p50_s,
    duration_q[2] AS duration_p90_s,
    duration_q[3] AS duration_p99_s
FROM {database}.pipeline_daily
GROUP BY day, provider, repository, pipeline;

-- Exact daily figures from the latest run snapshots (slower: reads runs FINAL).
CREATE VIEW IF NOT EXISTS {database}.pipeline_daily_exact
AS SELECT
    toDate(coalesce(started_at, created_at, first_event_at)) AS day,
    provider,
    ifNull(repository, '') AS repository,
    ifNull(pipeline, '') AS pipeline,
    count() AS runs,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'failed') AS failed,
    countIf(status = 'cancelled') AS cancelled,
    countIf(status = 'timed_out') AS timed_out,
    if(runs = 0, 0, failed / runs) AS failure_rate,
    quantilesExact(0.5, 0.9, 0.99)(duration_s) AS duration_q
FROM {database}.runs FINAL
WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
GROUP BY day, provider, repository, pipeline;

-- Daily test trend per test case. Flaky runs are runs in which the test both passed and failed
-- (pass on retry): the states keep the distinct run ids of each outcome, intersected on read.
CREATE TABLE IF NOT EXISTS {database}.test_daily
(
    day Date COMMENT 'UTC day of the result (event_time).',
    suite String COMMENT 'Test suite ('''' if none).',
    name String COMMENT 'Test case name.',
    results SimpleAggregateFunction(sum, UInt64) COMMENT 'Results reported (attempts included).',
    passed SimpleAggregateFunction(sum, UInt64) COMMENT 'Results with status passed.',
    failed SimpleAggregateFunction(sum, UInt64) COMMENT 'Results with status failed or error.',
    skipped SimpleAggregateFunction(sum, UInt64) COMMENT 'Results with status skipped.',
    passed_runs AggregateFunction(groupUniqArrayIf, String, UInt8) COMMENT 'Distinct runs with a pass (groupUniqArrayIfMerge).',
    failed_runs AggregateFunction(groupUniqArrayIf, String, UInt8) COMMENT 'Distinct runs with a failure (groupUniqArrayIfMerge).',
    duration_quantiles AggregateFunction(quantilesTDigestIf(0.5, 0.9, 0.99), Float64, UInt8) COMMENT 'p50/p90/p99 test duration in seconds (quantilesTDigestIfMerge(0.5, 0.9, 0.99)).'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (suite, name, day)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Daily test trend states, fed by test_daily_mv from test_results.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.test_daily_mv TO {database}.test_daily
AS SELECT
    toDate(event_time) AS day,
    suite,
    name,
    count() AS results,
    countIf(status = 'passed') AS passed,
    countIf(status IN ('failed', 'error')) AS failed,
    countIf(status = 'skipped') AS skipped,
    groupUniqArrayIfState(run_id, toUInt8(status = 'passed')) AS passed_runs,
    groupUniqArrayIfState(run_id, toUInt8(status IN ('failed', 'error'))) AS failed_runs,
    quantilesTDigestIfState(0.5, 0.9, 0.99)(ifNull(duration_s, 0), toUInt8(duration_s IS NOT NULL)) AS duration_quantiles
FROM {database}.test_results
GROUP BY day, suite, name;

CREATE VIEW IF NOT EXISTS {database}.test_daily_trends
AS SELECT
    day,
    suite,
    name,
    sum(results) AS results,
    sum(passed) AS passed,
    sum(failed) AS failed,
    sum(skipped) AS skipped,
    length(arrayIntersect(groupUniqArrayIfMerge(passed_runs), groupUniqArrayIfMerge(failed_runs))) AS flaky_runs,
    quantilesTDigestIfMerge(0.5, 0.9, 0.99)(duration_quantiles) AS duration_q,
    duration_q[1] AS duration_p50_s,
    duration_q[2] AS duration_p90_s,
    duration_q[3] AS duration_p99_s
FROM {database}.test_daily
GROUP BY day, suite, name;

-- Log templates seen, aggregated from log lines the template miner annotated.
CREATE TABLE IF NOT EXISTS {database}.log_templates
(
    template_id String COMMENT 'Id of the mined template.',
    template SimpleAggregateFunction(anyLast, String) COMMENT 'Template text (masked tokens as <*>).',
    example_line SimpleAggregateFunction(any, String) COMMENT 'One log line that matched it.',
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')) COMMENT 'Event time of the first matching line.',
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')) COMMENT 'Event time of the latest matching line.',
    line_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Matching lines stored (before the log TTL).',
    error_count SimpleAggregateFunction(sum, UInt64) COMMENT 'Matching lines at level error or above.'
)
ENGINE = AggregatingMergeTree
ORDER BY template_id
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Mined log templates with first/last seen and counts (fed by log_templates_mv).';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.log_templates_mv TO {database}.log_templates
AS SELECT
    template_id,
    anyLast(toString(template)) AS template,
    any(line) AS example_line,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count() AS line_count,
    countIf(level IN ('error', 'critical', 'fatal')) AS error_count
FROM {database}.log_lines
WHERE template_id != ''
GROUP BY template_id;
