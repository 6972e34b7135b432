"""Anomalous input to Slack: the alert path's latency, beside a raw Kafka hop in the same run.

    .venv/bin/python bench/alert_latency.py [--runs 30] [--broker apache-kafka|tansu]

For each of N runs it produces one Kubernetes watch event to `sentinel.k8s` — a pod carrying a
`sentinel.io/run-id` label whose container was OOMKilled, as `sentinel k8s-watch` would publish
it — and measures the time until the Slack incoming-webhook request about that run arrives at a
Slack stand-in on loopback (tests/support/alert_servers.py). The path: k8s topic → worker
(signal router → run-signals → run tracker: run state and `oom_killed` anomaly) → the alert
dispatcher (group_wait 0) → Slack channel. The embedded stack runs as in `sentinel up` (broker,
worker process, sink and dispatcher threads). The baseline, measured in the same run on the
same broker, is one produce → consume hop with the same client settings. Prints a Markdown
table row for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kafka_hop import kafka_round_trips, percentile  # noqa: E402  (bench/kafka_hop.py)

from producers.k8s.objects import object_key, to_object_event  # noqa: E402
from producers.publisher import KafkaPublisher  # noqa: E402
from runtime.config import BrokerKind, Settings, load_settings  # noqa: E402
from runtime.kafka_clients import producer_config  # noqa: E402
from sentinel.stack import EmbeddedStack  # noqa: E402
from tests.support.alert_servers import FakeSlack, LoopbackServer  # noqa: E402

URL_ENV = "SENTINEL_BENCH_SLACK_URL"


def oom_pod(run_id: str, index: int) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = f"bench-{index}-{uuid.uuid4().hex[:5]}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ci",
            "uid": str(uuid.uuid4()),
            "resourceVersion": str(1000 + index),
            "creationTimestamp": now,
            "labels": {"sentinel.io/run-id": run_id},
        },
        "spec": {"nodeName": "node-a", "containers": [{"name": "tests"}]},
        "status": {
            "phase": "Failed",
            "startTime": now,
            "containerStatuses": [
                {
                    "name": "tests",
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "reason": "OOMKilled",
                            "exitCode": 137,
                            "startedAt": now,
                            "finishedAt": now,
                        }
                    },
                }
            ],
        },
    }


def alert_latencies(settings: Settings, slack: FakeSlack, count: int) -> list[float]:
    publisher = KafkaPublisher(producer_config(settings), component="bench")
    topic = settings.topic_names.k8s
    samples = []
    try:
        for index in range(count):
            run_id = f"bench-{uuid.uuid4().hex[:8]}-{index}"
            event = to_object_event(
                "ADDED", oom_pod(run_id, index), datetime.now(UTC), settings.k8s
            )
            seen = len(slack.webhook_posts)
            started = time.monotonic()
            publisher.publish_sync(topic, object_key(event).encode(), event.to_bytes(), timeout=10)
            needle = quote(run_id, safe="")
            deadline = started + 60
            arrived = None
            while arrived is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no Slack message about {run_id} within 60 s")
                with slack.lock:
                    for body, at in zip(
                        slack.webhook_posts[seen:], slack.webhook_arrivals[seen:], strict=True
                    ):
                        if needle in str(body):
                            arrived = at
                time.sleep(0.005)
            samples.append(arrived - started)
            print(f"  run {index + 1}/{count}: {samples[-1]:.3f}s", file=sys.stderr)
            time.sleep(0.3)  # one message per run; keep runs apart as real ones are
    finally:
        publisher.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--broker", default="apache-kafka", choices=["apache-kafka", "tansu"])
    args = parser.parse_args()
    slack = FakeSlack()
    with LoopbackServer(slack.app) as server, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        os.environ[URL_ENV] = f"{server.url}/hooks/BENCH"
        alerting = {
            "route": {"receivers": ["slack"], "group_wait_s": 0, "group_interval_s": 1},
            "receivers": [{"name": "slack", "slack": {"url_env": URL_ENV}, "rate_per_s": 100}],
        }
        settings = load_settings(
            None, embedded={"data_dir": tmp}, logging={"level": "WARNING"}, alerting=alerting
        )
        stack = EmbeddedStack(settings, broker_kind=BrokerKind(args.broker))
        print(f"starting the embedded stack ({args.broker})...", file=sys.stderr)
        stack.start()
        try:
            print("baseline: raw Kafka produce -> consume", file=sys.stderr)
            baseline = kafka_round_trips(stack.settings, stack.settings.topic_names.dlq, args.runs)
            print("alerts: k8s event produced -> Slack request", file=sys.stderr)
            alerts = alert_latencies(stack.settings, slack, args.runs)
        finally:
            stack.stop()
    assert slack.violations == [], slack.violations
    base_p50, p50 = statistics.median(baseline), statistics.median(alerts)
    print(
        "| broker | runs | event→Slack p50 | p95 | p99 | max | Kafka hop p50 | ratio p50 |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {args.broker} | {args.runs} | {p50:.3f} s | {percentile(alerts, 0.95):.3f} s "
        f"| {percentile(alerts, 0.99):.3f} s | {max(alerts):.3f} s | {base_p50 * 1000:.1f} ms "
        f"| {p50 / base_p50:.0f}x |"
    )


if __name__ == "__main__":
    main()
