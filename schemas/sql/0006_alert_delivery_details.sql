-- What the alert dispatcher (issue 13) records with each delivery attempt, so that
-- GET /api/alerts can filter by run and show what was said: the channel's type, the runs the
-- message was about, firing/resolved, its title, the wait before a retry, and the silences that
-- suppressed it.
ALTER TABLE {database}.alert_deliveries ADD COLUMN IF NOT EXISTS channel_type LowCardinality(String) DEFAULT '' COMMENT 'console, file, slack, slack_bot, email, webhook or alertmanager.' AFTER channel;
ALTER TABLE {database}.alert_deliveries ADD COLUMN IF NOT EXISTS run_ids Array(String) DEFAULT [] COMMENT 'Runs the message was about.' AFTER anomaly_ids;
ALTER TABLE {database}.alert_deliveries ADD COLUMN IF NOT EXISTS status LowCardinality(String) DEFAULT '' COMMENT 'firing or resolved (the message).' AFTER outcome;
ALTER TABLE {database}.alert_deliveries ADD COLUMN IF NOT EXISTS title String DEFAULT '' COMMENT 'The message''s rendered title.' AFTER status;
ALTER TABLE {database}.alert_deliveries ADD COLUMN IF NOT EXISTS retry_in_s Nullable(Float64) COMMENT 'retrying: seconds until the next attempt.' AFTER error;
ALTER TABLE {database}.alert_deliveries ADD COLUMN IF NOT EXISTS silence_ids Array(String) DEFAULT [] COMMENT 'suppressed: the silences that muted the alerts.' AFTER retry_in_s;
