-- Slowest tests this week: the 20 test cases with the highest median duration over the last
-- 7 days (results without a duration are left out), with their p90, slowest run and count.
SELECT
    suite,
    name,
    count() AS results,
    round(quantileExact(0.5)(duration_s), 3) AS p50_s,
    round(quantileExact(0.9)(duration_s), 3) AS p90_s,
    round(max(duration_s), 3) AS max_s,
    argMax(run_id, duration_s) AS slowest_run
FROM test_results
WHERE event_time >= now64(3) - INTERVAL 7 DAY
  AND duration_s IS NOT NULL
GROUP BY suite, name
ORDER BY p50_s DESC, max_s DESC, suite, name
LIMIT 20;
