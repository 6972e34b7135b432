"""What every read query shares: the store's time range, cursors, time conversion."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from schemas.utc import as_utc

# DateTime64(3, 'UTC') holds 1900-01-01 .. 2299-12-31; a bound outside it fails inside the
# store (a 500) instead of matching nothing, so filters are checked before they get there.
STORE_MIN = datetime(1900, 1, 1, tzinfo=UTC)
STORE_MAX = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
ERROR_LEVELS = ("error", "critical", "fatal")
TIME_PARAM = "DateTime64(3, 'UTC')"


class BadRequest(ValueError):
    """A client's mistake in a read request; the text says which parameter and why."""


def in_store_range(value: datetime, name: str = "time") -> datetime:
    """`value` as aware UTC, or BadRequest when the store cannot represent it."""
    value = as_utc(value)
    if not STORE_MIN <= value <= STORE_MAX:
        raise BadRequest(
            f"{name}: {value.isoformat()} is outside the range the store keeps "
            f"({STORE_MIN.date()} to {STORE_MAX.date()})"
        )
    return value


def aware(value: Any) -> Any:
    """A datetime from the store as aware UTC (a client in naive mode returns naive UTC)."""
    if isinstance(value, datetime):
        return as_utc(value)
    return value


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor from JSON-able parts (datetimes as ISO strings)."""
    values = [p.isoformat() if isinstance(p, datetime) else p for p in parts]
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: tuple[type, ...]) -> tuple[Any, ...]:
    """The parts of a cursor made by `encode_cursor`, checked against `kinds` (datetime, str,
    int); BadRequest when it is not one this API returned."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        parts: list[Any] = []
        for value, kind in zip(values, kinds, strict=True):
            if kind is datetime:
                parts.append(in_store_range(datetime.fromisoformat(value), "cursor"))
            elif kind is int:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError("not an integer")
                parts.append(value)
            else:
                parts.append(str(value))
        return tuple(parts)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("cursor: not one this API returned") from exc


def json_field(value: Any, default: Any) -> Any:
    """A JSON column's value, parsed (an empty or missing one is `default`)."""
    if value in (None, ""):
        return default
    if isinstance(value, (dict, list)):
        return value
    return json.loads(value)
