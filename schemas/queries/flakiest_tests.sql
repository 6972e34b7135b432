-- Flakiest tests (last 30 days): test cases that both passed and failed on the same commit,
-- across runs or as a pass on retry within one run (a run without a known commit counts as its
-- own commit). Most flaky commits first.
SELECT
    suite,
    name,
    count() AS flaky_commits,
    sum(fails) AS failures,
    sum(passes) AS passes,
    arraySlice(groupArray(commit), 1, 5) AS sample_commits
FROM
(
    SELECT
        t.suite AS suite,
        t.name AS name,
        if(ifNull(r.commit_sha, '') = '', t.run_id, r.commit_sha) AS commit,
        countIf(t.status = 'passed') AS passes,
        countIf(t.status IN ('failed', 'error')) AS fails
    FROM test_results AS t
    LEFT JOIN (SELECT run_id, commit_sha FROM runs FINAL) AS r ON t.run_id = r.run_id
    WHERE t.event_time >= now64(3) - INTERVAL 30 DAY
    GROUP BY suite, name, commit
    HAVING passes > 0 AND fails > 0
)
GROUP BY suite, name
ORDER BY flaky_commits DESC, failures DESC, suite, name
LIMIT 20;
