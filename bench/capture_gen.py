"""Captures for the worker benchmark (bench/worker_throughput.py), made from the scenario
captures by adding log lines (deterministic: the same arguments give the same bytes).

`more_lines(records, n)` spreads `n` extra log lines over the lifetime of each container that
already logs in the capture (go test and application lines in proportion, a few warnings and
errors), keeping every original record; the quiet gaps between runs stay as they were.
"""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "tests" / "data" / "scenarios"

TEMPLATES = [
    "{ts} INFO  orders.api request id={id} path=/v1/orders/{n} status=200 took={ms}ms",
    "{ts} INFO  orders.db  query ok rows={n} took={ms}ms pool=main",
    "{ts} DEBUG cache hit key=order:{id} size={n}",
    "{ts} INFO  worker-{w} processed batch {n} of {m}",
    "{ts} WARN  orders.api slow request id={id} took={ms}ms",
    "    calc_test.go:{n}: checking case {id} with input {m}",
]
RARE = "{ts} ERROR orders.api upstream 10.0.{w}.{n} refused connection id={id}"


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def more_lines(records: list[dict[str, Any]], extra: int, seed: int = 17) -> list[dict[str, Any]]:
    """`records` plus `extra` log lines spread over the containers that log in them."""
    streams: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in records:
        if record["type"] == "log":
            key = (record["namespace"], record["pod"], record["container"])
            streams.setdefault(key, []).append(record)
    rng = random.Random(seed)
    keys = sorted(streams)
    added = []
    for i in range(extra):
        stream = streams[keys[i % len(keys)]]
        first = datetime.fromisoformat(stream[0]["ts"])
        last = datetime.fromisoformat(stream[-1]["ts"])
        moment = first + (last - first) * rng.random()
        template = RARE if rng.random() < 0.002 else rng.choice(TEMPLATES)
        values = {
            "ts": moment.strftime("%H:%M:%S.%f")[:-3],
            "id": f"{rng.getrandbits(40):010x}",
            "n": rng.randrange(1, 5000),
            "m": rng.randrange(1, 500),
            "ms": rng.randrange(1, 900),
            "w": rng.randrange(1, 9),
        }
        record = dict(stream[0])
        record["ts"] = moment.isoformat(timespec="microseconds")
        record["line"] = template.format(**values)
        added.append(record)
    merged = records + added
    merged.sort(key=lambda r: datetime.fromisoformat(r["ts"]))  # stable: originals first
    return merged


def write(records: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return path
