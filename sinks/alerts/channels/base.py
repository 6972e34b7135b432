"""What every channel shares: the error kinds, the result, HTTP status classification."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from sinks.alerts.notification import Notification
from sinks.alerts.templates import Rendered

RETRY_AFTER_MAX_S = 3600.0


class DeliveryError(Exception):
    def __init__(
        self,
        message: str,
        *,
        temporary: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.status_code = status_code
        self.retry_after = retry_after


@dataclass(frozen=True)
class SendResult:
    status_code: int | None = None
    thread_ts: str | None = None
    thread_channel: str | None = None


class Channel(Protocol):
    kind: str

    async def send(self, notification: Notification, rendered: Rendered) -> SendResult: ...

    async def close(self) -> None: ...


def retry_after(headers: Mapping[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if there is one."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - (now or time.time())
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def check_status(
    status: int, body: str, headers: Mapping[str, Any] | None = None, what: str = "HTTP"
) -> None:
    """Raise DeliveryError unless `status` is 2xx: 408, 429 and 5xx are temporary."""
    if 200 <= status < 300:
        return
    text = " ".join(body.split())[:300]
    temporary = status in (408, 429) or status >= 500
    raise DeliveryError(
        f"{what} {status}: {text}" if text else f"{what} {status}",
        temporary=temporary,
        status_code=status,
        retry_after=retry_after(headers) if temporary else None,
    )
