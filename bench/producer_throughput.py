"""The producers' throughput beside raw confluent-kafka producing the same payloads.

    .venv/bin/python bench/producer_throughput.py [--lines 50000] [--webhooks 2000]
        [--connections 16] [--bootstrap host:port]

- log lines: `LogStreamer` (the `sentinel log-stream` code) following one pod of the fake
  Kubernetes API (tests/fakes/kube_api.py: the real list/watch/log wire protocol over
  loopback HTTP, in a process of its own: bench/kube_api_host.py) that has logged N lines:
  read the chunked log stream, split and parse each line, `LogLine`, queue, publish
  (idempotent producer, acks=all), timed from the start until every line is acknowledged;
- webhooks: the GitHub webhook route of `sentinel api` (verify the signature, record the
  delivery id, normalise, publish and wait for the broker's acknowledgement, answer 202) in a
  uvicorn process of its own, posted M signed `workflow_run` webhooks over C connections by
  an async client in this process.

Baseline for both, in the same run on the same broker: a raw confluent-kafka producer with
the same client settings producing the same keys and values (built before the clock starts)
and flushing. Prints Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
from bench_kafka import cpu_seconds, kafka, raw_produce  # noqa: E402
from kube_api_host import line as logged_line  # noqa: E402

from producers.k8s.client import api_client  # noqa: E402
from producers.k8s.log_lines import log_key, to_log_line  # noqa: E402
from producers.k8s.log_stream import LogStreamer  # noqa: E402
from producers.publisher import KafkaPublisher  # noqa: E402
from producers.webhooks.github import normalize  # noqa: E402
from runtime.config import Settings, load_settings  # noqa: E402
from runtime.kafka_clients import producer_config  # noqa: E402
from schemas.messages import CiEvent  # noqa: E402
from sentinel.brokers import free_port  # noqa: E402
from sentinel.topic_admin import ensure_topics  # noqa: E402
from tests.support.k8s import FAST_K8S  # noqa: E402

CORPUS = REPO / "tests" / "data" / "github-webhooks" / "workflow_run"
SECRET = "bench-secret"


def settings_for(tmp: Path, bootstrap: str, **sections: dict[str, object]) -> Settings:
    return load_settings(
        None,
        topics={"prefix": f"bp{time.time_ns() % 10**9}.", "partitions": 3},
        kafka={"bootstrap_servers": bootstrap},
        embedded={"data_dir": str(tmp)},
        logging={"level": "WARNING"},
        **sections,
    )


def log_lines(tmp: Path, bootstrap: str, count: int) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    kubeconfig = tmp / "kubeconfig"
    base = time.time_ns() - count * 1000
    host = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "kube_api_host.py"), str(kubeconfig), str(count),
         str(base)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        assert host.stdout is not None and host.stdout.readline().strip() == b"ready"
        settings = settings_for(
            tmp,
            bootstrap,
            k8s={**FAST_K8S, "kubeconfig": str(kubeconfig), "namespaces": ["ci"]},
        )
        ensure_topics(settings)
        publisher = KafkaPublisher(producer_config(settings), component="bench")
        api = api_client(settings.k8s)
        streamer = LogStreamer(settings, publisher, api)
        cpu_started = time.process_time()
        started = time.perf_counter()
        streamer.start()
        while streamer.published < count:
            time.sleep(0.005)
        assert publisher.flush(60) == 0
        path_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started  # this process: streamer + librdkafka
        streamer.stop()
        publisher.close()
        api.close()
    finally:
        assert host.stdin is not None
        host.stdin.close()
        host.wait(30)
    texts = [logged_line(index) for index in range(count)]
    # The same payloads, raw (the same parse gives the same bytes; built outside the clock).
    now = datetime.now(UTC)
    messages = []
    for index, text in enumerate(texts):
        stamp = datetime.fromtimestamp((base + index * 1000) / 1e9, UTC)
        raw = f"{stamp.isoformat().replace('+00:00', 'Z')} {text}".encode()
        line = to_log_line("ci", "bench", "main", raw, now, 16384, "run-1")
        messages.append((log_key(line).encode(), line.to_bytes()))
    raw_s = raw_produce(settings, settings.topic_names.logs, messages)
    return row("log lines, log-stream path", count, path_s, raw_s, cpu_s)


def serve_webhooks(settings: Settings, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        SENTINEL_GITHUB_WEBHOOK_SECRET=SECRET,
        SENTINEL_KAFKA__BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers or "",
        SENTINEL_TOPICS__PREFIX=settings.topics.prefix,
        SENTINEL_EMBEDDED__DATA_DIR=str(tmp / "receiver"),
        SENTINEL_LOGGING__LEVEL="WARNING",
        SENTINEL_WEBHOOKS__DEDUP_TTL_HOURS="1",
        PYTHONPATH=str(REPO),
    )
    command = [sys.executable, str(REPO / "bench" / "webhook_receiver.py"), str(port)]
    return subprocess.Popen(command, env=env, cwd=REPO)


def bodies(count: int) -> list[tuple[str, bytes]]:
    template = json.loads((CORPUS / "requested.payload.json").read_text())
    made = []
    for index in range(count):
        body = json.loads(json.dumps(template))
        body["workflow_run"]["id"] = 800_000 + index
        made.append((f"bp-{index}", json.dumps(body).encode()))
    return made


async def post_all(url: str, hooks: list[tuple[str, bytes]], connections: int) -> float:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for hook in hooks:
        queue.put_nowait(hook)

    async def poster(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            delivery, body = queue.get_nowait()
            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "workflow_run",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": signature,
            }
            response = await client.post(
                f"{url}/api/webhooks/github", content=body, headers=headers
            )
            assert response.status_code == 202, response.text

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(poster(client) for _ in range(connections)))
        return time.perf_counter() - started


def webhooks(tmp: Path, bootstrap: str, count: int, connections: int) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    settings = settings_for(tmp, bootstrap)
    ensure_topics(settings)
    port = free_port()
    receiver = serve_webhooks(settings, tmp, port)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert receiver.poll() is None and time.monotonic() < deadline, "receiver down"
            time.sleep(0.2)
        hooks = bodies(count)
        asyncio.run(post_all(url, [(f"warm-{d}", b) for d, b in hooks[:20]], 4))
        cpu_started = cpu_seconds(receiver.pid)
        path_s = asyncio.run(post_all(url, hooks, connections))
        cpu_s = cpu_seconds(receiver.pid) - cpu_started
    finally:
        receiver.terminate()
        receiver.wait(20)
    now = datetime.now(UTC)
    messages = []
    for delivery, body in hooks:
        event = normalize("workflow_run", delivery, json.loads(body), now)
        assert isinstance(event, CiEvent)
        messages.append((event.run_id.encode(), event.to_bytes()))
    raw_s = raw_produce(settings, settings.topic_names.ci, messages)
    name = f"webhooks, HTTP receiver ({connections} connections)"
    return row(name, count, path_s, raw_s, cpu_s)


def row(name: str, count: int, path_s: float, raw_s: float, cpu_s: float | None = None) -> str:
    # Per CPU-second of the path's own process: steadier than the wall rate on a busy machine.
    per_cpu = f"{count / cpu_s:,.0f}/s" if cpu_s else "-"
    return (
        f"| {name} | {count} | {path_s:.2f} s | {count / path_s:,.0f}/s | {per_cpu} "
        f"| {raw_s:.2f} s | {count / raw_s:,.0f}/s | {raw_s / path_s:.2f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--webhooks", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--bootstrap", default=os.environ.get("SENTINEL_TEST_KAFKA_BOOTSTRAP"))
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="sentinel-bench-") as name,
        kafka(args.bootstrap, Path(name) / "kafka") as bootstrap,
    ):
        tmp = Path(name)
        rows = []
        if args.lines:
            rows.append(log_lines(tmp / "logs", bootstrap, args.lines))
        if args.webhooks:
            rows.append(webhooks(tmp / "hooks", bootstrap, args.webhooks, args.connections))
    print(
        "| path | messages | path time | path rate | per CPU-second | raw produce | raw rate "
        "| raw/path time |\n|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
