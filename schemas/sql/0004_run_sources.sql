-- What Kubernetes and the logs add to a run (issue 4): the namespace its pods ran in, the
-- correlation keys that joined them, the pods themselves, log markers seen, test counts, and
-- what closed the run. Added columns get defaults, so rows written before read as "none".
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS namespace Nullable(String) COMMENT 'Kubernetes namespace the run''s pods ran in.' AFTER pipeline;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS correlation_keys Array(String) COMMENT 'Keys that joined pods and logs to the run (github-runner:..., jenkins:..., job:...).' AFTER labels;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS pods String DEFAULT '[]' COMMENT 'JSON array of PodState objects (phase, node, containers with reasons and restarts).' AFTER correlation_keys;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS markers String DEFAULT '{}' COMMENT 'JSON object: log marker name -> when it was first seen.' AFTER pods;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS tests_total UInt32 DEFAULT 0 COMMENT 'Test results counted on the run (logs and JUnit uploads).' AFTER markers;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS tests_passed UInt32 DEFAULT 0 COMMENT 'Passed test results.' AFTER tests_total;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS tests_failed UInt32 DEFAULT 0 COMMENT 'Failed test results.' AFTER tests_passed;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS tests_skipped UInt32 DEFAULT 0 COMMENT 'Skipped test results.' AFTER tests_failed;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS tests_error UInt32 DEFAULT 0 COMMENT 'Test results that errored.' AFTER tests_skipped;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS closed_by LowCardinality(Nullable(String)) COMMENT 'What decided the final status: ci, job, marker, pods, timeout.' AFTER tests_error;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS last_activity_at Nullable(DateTime64(3, 'UTC')) COMMENT 'Latest event time of any input for the run, log lines included.' AFTER updated_at;
