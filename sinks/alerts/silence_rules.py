"""What makes a valid silence (pure; used by the API and the CLI before anything is written)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from runtime.alerting_config import parse_matcher
from schemas.messages import LabelMatcher, Silence
from sinks.alerts.matchers import matches

MAX_DURATION = timedelta(days=365)
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class SilenceError(ValueError):
    """A silence that cannot be created; the message says why (an HTTP 400, a CLI exit 2)."""


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1h30m`` → timedelta (SilenceError otherwise)."""
    found = _DURATION.match(text.strip())
    if not text.strip() or found is None or not any(found.groups()):
        raise SilenceError(f"not a duration: {text!r} (e.g. 30m, 2h, 1d, 1h30m)")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:  # more days than a timedelta holds: far over any silence's limit
        raise SilenceError(f"not a duration a silence can have: {text!r}") from None


def parse_matchers(texts: Sequence[str]) -> list[LabelMatcher]:
    matchers = []
    for text in texts:
        try:
            matchers.append(parse_matcher(text))
        except ValueError as exc:
            raise SilenceError(str(exc)) from exc
    return matchers


def new_silence(
    matchers: Sequence[LabelMatcher],
    created_by: str,
    comment: str,
    now: datetime,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
) -> Silence:
    """A silence from now (or `starts_at`) until `ends_at` (or for `duration`).

    As in Alertmanager, at least one matcher must not match the empty label value, so that a
    silence never mutes every alert by accident.
    """
    if not matchers:
        raise SilenceError("a silence needs at least one matcher")
    if all(matches(matcher, {}) for matcher in matchers):
        raise SilenceError(
            "at least one matcher must not match an empty label (this silence would mute "
            "every alert)"
        )
    start = starts_at or now
    if (ends_at is None) == (duration is None):
        raise SilenceError("give either an end time or a duration")
    if duration is not None and duration > MAX_DURATION:
        raise SilenceError("a silence lasts at most 365 days")
    end = ends_at if ends_at is not None else start + (duration or timedelta())
    if start.tzinfo is None or end.tzinfo is None:
        raise SilenceError("start and end times need a time zone offset (RFC 3339)")
    if end <= start:
        raise SilenceError("the end must be after the start")
    if end <= now:
        raise SilenceError("the end is in the past: the silence would never be active")
    if end - start > MAX_DURATION:
        raise SilenceError("a silence lasts at most 365 days")
    if not created_by.strip() or not comment.strip():
        raise SilenceError("say who creates the silence (created_by) and why (comment)")
    return Silence(
        silence_id=str(uuid.uuid4()),
        matchers=list(matchers),
        starts_at=start,
        ends_at=end,
        created_by=created_by.strip(),
        comment=comment.strip(),
        updated_at=now,
    )


def expired(silence: Silence, now: datetime) -> Silence:
    """The silence ended at `now` (unchanged if it already ended)."""
    if silence.ends_at <= now:
        return silence
    starts = min(silence.starts_at, now)
    return silence.model_copy(update={"starts_at": starts, "ends_at": now, "updated_at": now})
