"""One step of run tracking, as pure code.

Raw `sentinel.ci` bytes in, new `RunState` or a reason out.

The Faust agent only moves data: it looks up the current state in its table, calls `track`, and
writes what comes back (new state to the table and `sentinel.runs`, or a dead letter).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from pydantic import ValidationError

from processors.runs import apply
from schemas.messages import CiEvent, RunState


@dataclass(frozen=True)
class TrackOutcome:
    run_id: str | None = None
    state: RunState | None = None
    error: str | None = None
    error_type: str | None = None


def decode_state(raw: bytes | None) -> RunState | None:
    return None if raw is None else RunState.model_validate_json(raw)


def track(
    raw: bytes,
    load_state: Callable[[str], RunState | None],
    ignore_check_suite_apps: Collection[str] = (),
) -> TrackOutcome:
    """Apply one CI event to its run. `state` is None when the event changed nothing."""
    try:
        event = CiEvent.model_validate_json(raw)
    except ValidationError as exc:
        return TrackOutcome(error=f"not a valid CiEvent: {exc}", error_type="ValidationError")
    try:
        new_state = apply(load_state(event.run_id), event, frozenset(ignore_check_suite_apps))
    except ValueError as exc:  # e.g. a stage event without a stage id: not retriable
        return TrackOutcome(run_id=event.run_id, error=str(exc), error_type="InvalidEvent")
    return TrackOutcome(run_id=event.run_id, state=new_state)
