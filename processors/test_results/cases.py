"""What every test-result reader shares: a test outcome before it is a `TestResult`, attempt
numbering, and the small conversions of durations and messages (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.messages import TestStatus

MAX_MESSAGE_CHARS = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def short_message(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


@dataclass
class Case:
    """A test outcome before it becomes a `TestResult` (suite may still be unknown)."""

    suite: str | None
    name: str
    status: TestStatus
    event_time: datetime
    duration_s: float | None = None
    message: str | None = None
    output: list[str] = field(default_factory=list)


class Attempts:
    """Numbers repeated (suite, name) pairs 1, 2, 3...: a test seen again is its next attempt."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str | None, str], int] = {}

    def next(self, suite: str | None, name: str) -> int:
        attempt = self._seen.get((suite, name), 0) + 1
        self._seen[(suite, name)] = attempt
        return attempt


def parse_seconds(text: str) -> float | None:
    """A duration as tools write it ("0.05", Surefire's "1,234.5"); None if not a sane one."""
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
