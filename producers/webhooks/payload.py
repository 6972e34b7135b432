"""What every webhook normaliser shares: its two outcomes besides events, and how it names a
problem in a payload (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class PayloadError(ValueError):
    """A supported event whose payload lacks or garbles a field we need; `field` is its path."""

    def __init__(self, field: str, problem: str = "is missing") -> None:
        self.field = field
        super().__init__(f"{field} {problem}")


@dataclass(frozen=True)
class Ignored:
    """A valid delivery of an event Sentinel does not track (push, issues, ...)."""

    reason: str


def shown(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def problem(value: Any, expected: str) -> str:
    """What is wrong with a field's value, for `PayloadError`."""
    if value is None:
        return "is missing"
    return f"must be {expected} (got {shown(value)})"
