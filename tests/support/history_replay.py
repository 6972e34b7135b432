"""Replaying captures into a running stack the way `sentinel analyze` does, and reading back
what the worker made of them (shared by the restart and warm-start tests)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from producers.captures.replay import replay
from schemas.capture import CaptureRecord
from schemas.messages import Anomaly, RunState
from sentinel.analyze import end_of_input, quiet_chunks, time_passed
from sentinel.replay_wiring import build_replay_targets
from sentinel.stack import EmbeddedStack
from tests.support.helpers import read_topic

Findings = set[tuple[str, str, str]]  # (run id, anomaly type, subject)


def publish(stack: EmbeddedStack, records: list[CaptureRecord]) -> None:
    assert stack.owner is not None
    stats = asyncio.run(replay(records, build_replay_targets(stack.settings, stack.owner.intake)))
    assert not stats.rejected, stats.rejected


def replay_letting_time_pass(stack: EmbeddedStack, records: list[CaptureRecord]) -> None:
    """As `sentinel analyze` replays: chunk by chunk, event time passing at quiet gaps."""
    for chunk, quiet_until in quiet_chunks(records, stack.settings.tracking.settle_s):
        publish(stack, chunk)
        stack.wait_consumed(timeout=120, settle=0.3)
        time_passed(stack.settings, quiet_until, final=False)
        stack.wait_consumed(timeout=120, settle=0.3)


def outcome(stack: EmbeddedStack, end: Any) -> tuple[dict[str, Any], Findings]:
    """End of input at `end`; then every run (as a user sees it) and every finding."""
    stack.wait_consumed(timeout=120)
    end_of_input(stack.settings, end)
    stack.wait_consumed(timeout=120)
    names = stack.settings.topic_names
    states: dict[str, Any] = {}
    for _key, value in read_topic(stack.settings, names.runs):
        state = RunState.from_bytes(value)
        if state.run_id not in states or state.version >= states[state.run_id]["version"]:
            states[state.run_id] = json.loads(state.model_dump_json())
    anomalies = {
        (a.run_id, a.type, a.subject)
        for a in (Anomaly.from_bytes(v) for _k, v in read_topic(stack.settings, names.anomalies))
    }
    return {run_id: visible(state) for run_id, state in states.items()}, anomalies


def visible(state: dict[str, Any]) -> dict[str, Any]:
    # What a user sees of a run (the API hides the tracker's bookkeeping); versions count
    # changes, and a restart may legitimately count differently.
    return {k: v for k, v in state.items() if k not in {"version", "merge_keys", "watermark"}}
