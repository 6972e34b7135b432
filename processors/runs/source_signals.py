"""Raw `sentinel.k8s` / `sentinel.logs` values to run signals, and watermark ticks (pure)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from processors.runs.k8s_signals import signals_from_k8s
from processors.runs.log_signals import LogSignals
from schemas.keys import KEY_MISMATCH, key_problem
from schemas.messages import K8sObjectEvent, LogLine, RunSignal, SignalKind
from schemas.topics import K8S, LOGS


@dataclass
class SourceOutcome:
    signals: list[RunSignal] = field(default_factory=list)
    error: str | None = None
    error_type: str = "ValidationError"


def signals_from_source(
    is_k8s: bool,
    raw: bytes,
    logs: LogSignals,
    position: tuple[int, int] | None = None,
    *,
    key: bytes | None,
) -> SourceOutcome:
    """The signals one k8s object event or log line gives; an unreadable value, or one whose
    Kafka `key` is not the key it gives (`schemas.keys`), is an error.

    `position` ((partition, offset)) lets a redelivered log line be recognised and ignored.
    """
    value: K8sObjectEvent | LogLine
    try:
        model: type[K8sObjectEvent | LogLine] = K8sObjectEvent if is_k8s else LogLine
        value = model.model_validate_json(raw)
    except ValidationError as exc:
        kind = "K8sObjectEvent" if is_k8s else "LogLine"
        return SourceOutcome(error=f"not a valid {kind}: {exc}")
    # A stream's lines and an object's events keep their order only within one partition.
    wrong_key = key_problem(K8S if is_k8s else LOGS, key, value)
    if wrong_key is not None:
        return SourceOutcome(error=wrong_key, error_type=KEY_MISMATCH)
    if isinstance(value, K8sObjectEvent):
        return SourceOutcome(signals_from_k8s(value))
    return SourceOutcome(logs.feed(value, position))


CLOCK = "clock"  # the worker's wall clock: counts only while no input arrives (live)
REPLAY = "replay"  # offline analysis: all input up to `event_time` has been processed


def watermark_signal(when: datetime, final: bool, source: str = CLOCK) -> RunSignal:
    """A tick telling the tracker that event time has reached `when` (`final`: end of input)."""
    digest = hashlib.sha256(f"{when.isoformat()}|{final}|{source}".encode()).hexdigest()[:16]
    return RunSignal(
        signal_id=f"watermark:{digest}",
        kind=SignalKind.WATERMARK,
        source=REPLAY if final else source,
        event_time=when,
        final=final,
    )
