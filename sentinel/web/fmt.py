"""Formatting for the pages: durations, times in the viewer's time zone, relative times."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.utc import as_utc
from sentinel.queries.common import BadRequest

NONE = "\u2013"  # an en dash: nothing known
MINUS = "\u2212"

STATUS_ICONS = {
    "succeeded": "✔",
    "passed": "✔",
    "failed": "✖",
    "error": "✖",
    "running": "▶",
    "pending": "◌",
    "cancelled": "⊘",
    "timed_out": "⏱",
    "skipped": "↷",
    "flaky": "≈",
    "missing": "∅",
    "new": "+",
    "unknown": "?",
}


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone `name` (default UTC); BadRequest for an unknown one."""
    if not name:
        return ZoneInfo("UTC")
    try:
        if len(name) > 64 or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest(f"tz: {name!r} is not an IANA time zone (e.g. Europe/Berlin)") from exc


def duration(seconds: float | None) -> str:
    """1h 02m, 3m 05s, 12.4s, 350ms; an en dash when unknown."""
    if seconds is None:
        return NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def signed_duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    sign = "+" if seconds > 0 else MINUS if seconds < 0 else "±"
    return sign + duration(abs(seconds))


def local(when: datetime | None, tz: ZoneInfo, seconds: bool = True) -> str:
    if when is None:
        return NONE
    shown = as_utc(when).astimezone(tz)
    text = shown.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} {shown.tzname() or ''}".strip()


def utc_title(when: datetime | None) -> str:
    return "" if when is None else as_utc(when).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def relative(when: datetime | None, now: datetime | None = None) -> str:
    """'3 min ago', 'in 2 h', 'just now'."""
    if when is None:
        return NONE
    now = now or datetime.now(UTC)
    delta = (as_utc(now) - as_utc(when)).total_seconds()
    ahead, delta = delta < 0, abs(delta)
    if delta < 45:
        return "just now"
    for limit, unit, size in (
        (3600, "min", 60),
        (86400, "h", 3600),
        (86400 * 60, "d", 86400),
        (86400 * 730, "mo", 86400 * 30),
    ):
        if delta < limit:
            text = f"{round(delta / size)} {unit}"
            break
    else:
        text = f"{round(delta / (86400 * 365))} y"
    return f"in {text}" if ahead else f"{text} ago"


def iso(when: datetime | None) -> str:
    return "" if when is None else as_utc(when).isoformat().replace("+00:00", "Z")
