-- Infra-caused failures by node (last 30 days): failed or timed-out runs with an infrastructure
-- anomaly (OOMKilled, eviction, image pull, node NotReady, ...), per node. The node is the one
-- the detector put in the evidence, else the node the anomaly's pod (subject namespace/name)
-- was scheduled on according to the Kubernetes events. Nodes with most failed runs first.
SELECT
    node,
    uniqExact(run_id) AS failed_runs,
    count() AS infra_anomalies,
    arraySort(groupUniqArray(type)) AS anomaly_types
FROM
(
    SELECT
        a.run_id AS run_id,
        a.type AS type,
        if(a.node != '', a.node, ifNull(p.pod_node, '')) AS node
    FROM anomalies AS a FINAL
    LEFT JOIN
    (
        SELECT concat(namespace, '/', name) AS subject, argMax(node, event_time) AS pod_node
        FROM k8s_events
        WHERE kind = 'Pod' AND node != ''
        GROUP BY subject
    ) AS p ON a.subject = p.subject
    WHERE a.category = 'infra'
      AND a.window_start >= now64(3) - INTERVAL 30 DAY
      AND a.run_id IN (SELECT run_id FROM runs FINAL WHERE status IN ('failed', 'timed_out'))
)
WHERE node != ''
GROUP BY node
ORDER BY failed_runs DESC, infra_anomalies DESC, node;
