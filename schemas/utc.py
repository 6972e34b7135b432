"""One representation per instant: aware datetimes in UTC (naive ones are taken as UTC).

Shared by every module that compares, hashes or serialises event times, so an offset or a
missing tzinfo never makes the same instant look different.
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)


def utc_iso(when: datetime) -> str:
    return as_utc(when).isoformat(timespec="microseconds")
