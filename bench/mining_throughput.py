"""Log template mining throughput: ours beside stock drain3 on the same lines, in the same run.

Lines: the raw ``<D>_2k.log`` lines of every Loghub dataset under ``--root`` (the 16 of a Loghub
checkout; the six in tests/data/loghub by default), ``--repeat`` times (3: the 96,000 lines of
issue 12 with all 16). Each dataset is one stream, as `sentinel logs mine` reads one file.

    stock drain3   drain3.TemplateMiner() with its default configuration, add_log_message per
                   line (no masking configured: what `pip install drain3` gives); and the same
                   with our masks given to drain3's own masker (the same masking job).
    logs mine      what `sentinel logs mine FILE` does per file: LogTemplateMiner.mine (header
                   learning, masking, Drain, final templates) and one JSON line out per line.
    worker step    what the worker does per analysed line: LogTemplateMiner.add (streaming),
                   generic header stripping (the worker mines single lines of many streams).

Each is timed `--rounds` times in CPU seconds (best kept; the miners take turns within a round),
on a fresh miner per dataset and round: the code is single-threaded, and CPU time is what a
machine shared with other work does not blur. Output: a Markdown table with lines per CPU
second and the ratio to stock drain3.

    .venv/bin/python bench/mining_throughput.py [--root DIR] [--repeat 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from processors.logs.templates import LogTemplateMiner, masking_instructions

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "tests" / "data" / "loghub"


def load(root: Path, repeat: int) -> list[list[str]]:
    """One list of lines per dataset file (a stream), every file `repeat` times."""
    streams = []
    for path in sorted(root.glob("*/*_2k.log")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        streams.append(lines)
    return streams * repeat


def stock_drain3(streams: list[list[str]]) -> int:
    count = 0
    for lines in streams:
        miner = TemplateMiner(config=TemplateMinerConfig())  # defaults, no drain3.ini
        for line in lines:
            miner.add_log_message(line)
            count += 1
    return count


def stock_drain3_masked(streams: list[list[str]]) -> int:
    """drain3 doing our masking with its own masker (no header stripping): the same job."""
    count = 0
    for lines in streams:
        config = TemplateMinerConfig()
        config.masking_instructions = masking_instructions()
        miner = TemplateMiner(config=config)
        for line in lines:
            miner.add_log_message(line)
            count += 1
    return count


def logs_mine(streams: list[list[str]]) -> int:
    count = 0
    out = io.StringIO()
    for lines in streams:
        for n, (tid, template) in enumerate(LogTemplateMiner().mine(lines), start=1):
            out.write(json.dumps({"line": n, "template_id": tid, "template": template}) + "\n")
            count += 1
    return count


def worker_step(streams: list[list[str]]) -> int:
    count = 0
    for lines in streams:
        miner = LogTemplateMiner()
        for line in lines:
            miner.add(line)
            count += 1
    return count


def rates(
    runs: dict[str, Callable[[list[list[str]]], int]], streams: list[list[str]], rounds: int
) -> dict[str, float]:
    """Best lines per CPU second of each miner over `rounds`, the miners taking turns within a
    round so that a busy neighbour on a shared machine slows them alike."""
    best: dict[str, float] = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.process_time()
            lines = run(streams)
            best[name] = max(best[name], lines / (time.process_time() - start))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="Loghub folder")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    streams = load(args.root, args.repeat)
    total = sum(len(lines) for lines in streams)
    print(f"{len(streams) // args.repeat} datasets x {args.repeat} = {total} lines\n")
    runs = {
        "stock drain3 (default config)": stock_drain3,
        "stock drain3 + our masks (drain3's masker)": stock_drain3_masked,
        "sentinel logs mine": logs_mine,
        "worker step (add)": worker_step,
    }
    measured = rates(runs, streams, args.rounds)
    baseline = measured["stock drain3 (default config)"]
    print("| miner | lines per CPU second | vs stock drain3 |")
    print("|---|---|---|")
    for name, rate in measured.items():
        print(f"| {name} | {rate:,.0f} | {rate / baseline:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
