"""Kubernetes API timestamps (shared by the watcher's normaliser and the run signals)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def parse_k8s_time(value: Any) -> datetime | None:
    """An RFC 3339 API timestamp (Time or MicroTime: 'Z' or offset, up to 9 fraction digits) as
    an aware datetime; None for anything else."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    if "." in text:  # Python keeps microseconds: cut RFC3339Nano fractions to six digits
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
