-- Failure rate by pipeline (last 30 days), from the pipeline_daily materialized view: finished
-- runs, failed and timed-out runs (each run once, in its final state), failure rate =
-- (failed + timed_out) / runs, and run duration quantiles. Worst pipelines first.
SELECT
    provider,
    repository,
    pipeline,
    uniqExactMerge(runs) AS finished_runs,
    uniqExactIfMerge(failed) AS failed_runs,
    uniqExactIfMerge(timed_out) AS timed_out_runs,
    round((failed_runs + timed_out_runs) / finished_runs, 4) AS failure_rate,
    arrayMap(q -> round(q, 1), quantilesTDigestIfMerge(0.5, 0.9, 0.99)(duration_quantiles)) AS duration_p50_p90_p99_s
FROM pipeline_daily
WHERE day >= today() - 29
GROUP BY provider, repository, pipeline
ORDER BY failure_rate DESC, finished_runs DESC, provider, repository, pipeline;
