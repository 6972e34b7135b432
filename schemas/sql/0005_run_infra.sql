-- Warning Events about a run's pods and Jobs (FailedScheduling, BackOff, Evicted, NodeNotReady,
-- OOMKilling...), kept on the run for the infrastructure detectors and for people reading it;
-- and the run's attribution (infrastructure-caused failures, with their evidence).
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS k8s_events String DEFAULT '[]' COMMENT 'JSON array of K8sEventInfo: Warning Events about the run''s pods and Jobs.' AFTER pods;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS attribution String DEFAULT '' COMMENT 'JSON RunAttribution when infrastructure made the run fail (cause, types, anomaly ids); empty otherwise.' AFTER tests_error;
