"""The worker's per-message hot path, side by side with and without this session's additions.

    .venv/bin/python bench/tracking_hot_path.py [--repeat 20] [--rounds 5]

Two pure steps every message goes through, each timed against its own baseline in the same
process, interleaved round by round (these machines are noisy; compare the ratio):

- router: `LogSignals.feed` over every log line of the anomaly-scenario captures, with the line's
  (partition, offset) (the redelivery check) vs without it (the path before the check);
- tracker: `RunTracker.on_message` over the run signals those captures give, with log silence on
  (`anomalies.logs.silence_s` 900) vs off, states kept as bytes as the worker's table keeps them.

Prints a Markdown table for BENCHMARKS.md: median microseconds per message and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from processors.runs.k8s_signals import signals_from_k8s  # noqa: E402
from processors.runs.log_signals import LogSignals  # noqa: E402
from processors.runs.tracking import RunTracker, TrackerConfig  # noqa: E402
from producers.k8s.log_lines import to_log_line  # noqa: E402
from producers.k8s.objects import K8sNormalizer  # noqa: E402
from runtime.config import K8sConfig, TrackingConfig  # noqa: E402
from schemas.capture import K8sRecord, LogRecord, read_capture  # noqa: E402
from schemas.messages import LogLine, RunSignal, RunState  # noqa: E402

CAPTURES = sorted((REPO / "tests" / "data" / "anomaly_scenarios").glob("*.jsonl"))


def inputs() -> tuple[list[LogLine], list[RunSignal]]:
    lines: list[LogLine] = []
    signals: list[RunSignal] = []
    normalizer = K8sNormalizer(K8sConfig())
    router = LogSignals(TrackingConfig())
    for path in CAPTURES:
        for rec in read_capture(path):
            if isinstance(rec, K8sRecord):
                event = normalizer.normalize(rec.event, rec.object, rec.ts)
                signals.extend(s for s in signals_from_k8s(event) if s.run_id)
            elif isinstance(rec, LogRecord):
                stamp = rec.ts.isoformat().replace("+00:00", "Z")
                raw = f"{stamp} {rec.line}".encode()
                line = to_log_line(
                    rec.namespace, rec.pod, rec.container, raw, rec.ts, 65536, rec.correlation_key
                )
                lines.append(line)
                signals.extend(s for s in router.feed(line) if s.run_id)
    return lines, signals


def route(lines: list[LogLine], positioned: bool) -> Callable[[], int]:
    def run() -> int:
        router = LogSignals(TrackingConfig())
        for offset, line in enumerate(lines):
            router.feed(line, (0, offset) if positioned else None)
        return len(lines)

    return run


def track(signals: list[RunSignal], silence_s: float | None) -> Callable[[], int]:
    raws = [s.to_bytes() for s in signals]

    def run() -> int:
        tracker = RunTracker(
            TrackerConfig(idle_watermark_s=None, log_silence_s=silence_s, allowed_lateness_s=60)
        )
        table: dict[str, bytes] = {}

        def load(run_id: str) -> RunState | None:
            raw = table.get(run_id)
            return None if raw is None else RunState.from_bytes(raw)

        for raw in raws:
            outcome = tracker.on_message("signal", raw, 0, load)
            for state in outcome.states:
                table[state.run_id] = state.to_bytes()
        return len(raws)

    return run


def timed(step: Callable[[], int], repeat: int) -> float:
    """Microseconds per message over `repeat` passes."""
    began = time.perf_counter()
    count = sum(step() for _ in range(repeat))
    return (time.perf_counter() - began) / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="passes per timing")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    args = parser.parse_args()
    lines, signals = inputs()
    pairs = {
        "router: LogSignals.feed": (route(lines, True), route(lines, False)),
        "tracker: RunTracker.on_message": (track(signals, 900.0), track(signals, None)),
    }
    print(f"{len(lines)} log lines, {len(signals)} run signals from {len(CAPTURES)} captures")
    print("| step | with (µs/msg) | baseline (µs/msg) | with / baseline |")
    print("|---|---|---|---|")
    for name, (with_it, baseline) in pairs.items():
        ours, base = [], []
        for _ in range(args.rounds):
            ours.append(timed(with_it, args.repeat))
            base.append(timed(baseline, args.repeat))
        a, b = statistics.median(ours), statistics.median(base)
        print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
