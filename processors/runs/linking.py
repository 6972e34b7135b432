"""Joining pods and logs to the CI run that owns them (pure: no Faust, no I/O).

Some correlation keys do not name a run by themselves: an ARC runner pod is named after its
runner (`github-runner:<pod>`), a Jenkins agent pod carries its build's relative URL
(`jenkins:<runUrl>`). The CI event that names the run (GitHub's `workflow_job` with
`runner_name`, Jenkins' notification with `build.url`) arrives in its own time, often after the
pod's first events. So per key we keep a `LinkState`: the run id once a BIND said it, and until
then the signals that came for the key (bounded), which are released to the run at the BIND.

`link(state, signal, max_buffer)` returns the new state and what to send on; the agent only
stores and forwards. When the run a key is bound to is retired (issue 17), the tracker sends an
UNBIND and the key is forgotten (`LinkOutcome.forget`: the agent deletes it): a bound key no
longer lives for ever, and a signal that comes for it later waits for the next BIND instead of
going to a run that no longer exists.

A key bound again to another run (a reused, non-ephemeral runner) follows the newest BIND by
event time: signals go to the run that held the runner at that moment last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from schemas.messages import RunSignal, SignalKind


class LinkState(BaseModel):
    """What is known about one correlation key (table value, JSON)."""

    key: str
    run_id: str | None = None
    bound_at: str | None = Field(default=None, description="Order key of the winning BIND.")
    pending: list[RunSignal] = Field(default_factory=list)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None, key: str) -> LinkState:
        return cls(key=key) if raw is None else cls.model_validate_json(raw)


@dataclass
class LinkOutcome:
    state: LinkState
    changed: bool = False
    forward: list[RunSignal] = field(default_factory=list)
    overflow: list[RunSignal] = field(default_factory=list)
    forget: bool = False


def link(state: LinkState, signal: RunSignal, max_buffer: int) -> LinkOutcome:
    """Apply one message of the links topic: a BIND, or a signal to forward or to hold."""
    if signal.kind is SignalKind.BIND:
        return _bind(state, signal)
    if signal.kind is SignalKind.UNBIND:
        # Only the run it is bound to lets a key go (a reused runner may be bound anew), and
        # never with signals waiting for a BIND (nothing is bound, then).
        bound_here = state.run_id is not None and state.run_id == signal.bind_run_id
        return LinkOutcome(state, forget=bound_here and not state.pending)
    if state.run_id is not None:
        return LinkOutcome(state, forward=[_to_run(signal, state.run_id)])
    if any(held.signal_id == signal.signal_id for held in state.pending):
        return LinkOutcome(state)  # a redelivery of a signal already held
    pending = [*state.pending, signal]
    overflow: list[RunSignal] = []
    if len(pending) > max_buffer:
        # Never silently: the oldest held signals go to the dead letter topic with the reason.
        overflow, pending = pending[: len(pending) - max_buffer], pending[-max_buffer:]
    new_state = state.model_copy(update={"pending": pending})
    return LinkOutcome(new_state, changed=True, overflow=overflow)


def _bind(state: LinkState, bind: RunSignal) -> LinkOutcome:
    run_id = bind.bind_run_id
    if not run_id:
        raise ValueError(f"bind signal {bind.signal_id} names no run")
    order = f"{bind.event_time.isoformat()}|{bind.signal_id}"
    if state.bound_at is not None and order <= state.bound_at:
        return LinkOutcome(state)
    released = [_to_run(held, run_id) for held in state.pending]
    new_state = state.model_copy(update={"run_id": run_id, "bound_at": order, "pending": []})
    return LinkOutcome(new_state, changed=True, forward=released)


def _to_run(signal: RunSignal, run_id: str) -> RunSignal:
    return signal.model_copy(update={"run_id": run_id})


def unbind_signal(key: str, run_id: str, when: object) -> RunSignal:
    """The UNBIND the worker sends for each correlation key of a run it retires."""
    return RunSignal.model_validate(
        {
            "signal_id": f"unbind:{run_id}:{key}",
            "kind": SignalKind.UNBIND,
            "correlation_key": key,
            "source": "retention",
            "event_time": when,
            "bind_run_id": run_id,
        }
    )


def bind_signal(key: str, run_id: str, event_id: str, when: object) -> RunSignal:
    """The BIND the run tracker sends when a CI event names the run of `key`."""
    return RunSignal.model_validate(
        {
            "signal_id": f"bind:{event_id}:{key}",
            "kind": SignalKind.BIND,
            "correlation_key": key,
            "source": "ci",
            "event_time": when,
            "bind_run_id": run_id,
        }
    )
