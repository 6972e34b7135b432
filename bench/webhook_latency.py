"""Webhook-to-API latency of the embedded stack, beside a raw Kafka round trip on the same broker.

    .venv/bin/python bench/webhook_latency.py [--runs 30] [--broker apache-kafka|tansu]
        [--batch-seconds S]

For each of N workflow runs it posts the signed `requested` and `completed` webhooks and measures
the time from the `completed` POST until `GET /api/runs/{id}` shows the run `succeeded`: the whole
path webhook → Kafka → run tracker → Kafka → ClickHouse sink → store → API. The baseline, measured
in the same run on the same broker, is one produce → consume hop with the same client settings;
the ratio says how many raw broker hops the pipeline costs, which stays comparable between
machines of different speed. `--batch-seconds` sets `sink.batch_seconds` (the sink's batch
window, 1.0 s by default: the low-latency setting lowers it). Prints a Markdown table row for
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kafka_hop import kafka_round_trips, percentile  # noqa: E402  (bench/kafka_hop.py)

from runtime.config import BrokerKind, load_settings  # noqa: E402
from sentinel.stack import EmbeddedStack  # noqa: E402
from tests.support.helpers import ServerThread  # noqa: E402

CORPUS = REPO / "tests" / "data" / "github-webhooks" / "workflow_run"
SECRET = "bench-secret"


def post(url: str, event: str, delivery: str, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = httpx.post(
        f"{url}/api/webhooks/github",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature,
        },
        timeout=30,
    )
    response.raise_for_status()


def pipeline_latencies(url: str, count: int) -> list[float]:
    requested = json.loads((CORPUS / "requested.payload.json").read_text())
    completed = json.loads((CORPUS / "completed.payload.json").read_text())
    samples = []
    for index in range(count):
        run_number = 500_000 + index
        requested["workflow_run"]["id"] = completed["workflow_run"]["id"] = run_number
        run_id = f"github:octo-org/octo-repo:{run_number}:1"
        post(url, "workflow_run", f"bench-{index}-a", requested)
        started = time.perf_counter()
        post(url, "workflow_run", f"bench-{index}-b", completed)
        while True:
            response = httpx.get(f"{url}/api/runs/{run_id}", timeout=10)
            if response.status_code == 200 and response.json()["status"] == "succeeded":
                break
            time.sleep(0.02)
        samples.append(time.perf_counter() - started)
        print(f"  run {index + 1}/{count}: {samples[-1]:.3f}s", file=sys.stderr)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--broker", default="apache-kafka", choices=["apache-kafka", "tansu"])
    parser.add_argument("--batch-seconds", type=float, help="sink.batch_seconds (default 1.0)")
    args = parser.parse_args()
    sink = {} if args.batch_seconds is None else {"batch_seconds": args.batch_seconds}
    os.environ["SENTINEL_GITHUB_WEBHOOK_SECRET"] = SECRET
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-") as tmp:
        settings = load_settings(
            None, embedded={"data_dir": tmp}, logging={"level": "WARNING"}, sink=sink
        )
        stack = EmbeddedStack(settings, broker_kind=BrokerKind(args.broker))
        print(f"starting the embedded stack ({args.broker})...", file=sys.stderr)
        stack.start()
        try:
            assert stack.owner is not None
            with ServerThread(stack.owner.api()) as server:
                print("baseline: raw Kafka produce -> consume", file=sys.stderr)
                baseline = kafka_round_trips(
                    stack.settings, stack.settings.topic_names.k8s, args.runs
                )
                print("pipeline: webhook -> API", file=sys.stderr)
                pipeline = pipeline_latencies(server.url, args.runs)
        finally:
            stack.stop()
    base_p50, pipe_p50 = statistics.median(baseline), statistics.median(pipeline)
    print(
        "| broker | sink.batch_seconds | runs | webhook→API p50 | p95 | max | Kafka hop p50 "
        "| ratio p50 |\n|---|---|---|---|---|---|---|---|\n"
        f"| {args.broker} | {stack.settings.sink.batch_seconds} | {args.runs} | {pipe_p50:.3f} s "
        f"| {percentile(pipeline, 0.95):.3f} s "
        f"| {max(pipeline):.3f} s | {base_p50 * 1000:.1f} ms | {pipe_p50 / base_p50:.0f}x |"
    )


if __name__ == "__main__":
    main()
