"""The alert dispatcher (issue 13; semantics in docs/alerts.md).

Pure decision code — no broker, HTTP, SMTP or Slack library, no clock (``now`` is an argument),
so `sentinel analyze` back-tests with event time and the tests run in milliseconds:

- `matchers`, `labels`, `routing`: an alert's labels and the routes (receivers, grouping) it takes;
- `nflog`: Alertmanager's `needsUpdate` against the notification log;
- `engine`: runs, anomalies, silences and pipeline health in; aggregation groups, resolution,
  flushes and the state records to persist out;
- `notification`, `templates`, `slack_blocks`, `payloads`: what a message says, per channel;
- `backtest`: the engine driven by event time over recorded messages (`sentinel analyze`).

Adapters: `service` (the Kafka consumer and the state topics), `delivery` (a queue per receiver,
rate limit, retries) and `channels/` (console, file, Slack, email, webhook, Alertmanager).
"""
