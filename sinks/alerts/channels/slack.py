"""Slack: an incoming webhook, or a bot token (chat.postMessage / chat.update), via slack_sdk's
async clients. slack_sdk's own retry handlers are switched off: `sinks.alerts.delivery` retries
(one policy for every channel, each attempt recorded).

Bot mode: a group's first message is posted to the channel; later messages of the group go into
its thread (only what is new), and the first message is edited to show the group's current state
(resolved, run finished). The first message's ``ts`` is kept in the notification log, so a
restarted dispatcher keeps threading.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from runtime.alerting_config import SlackBotChannel, SlackWebhookChannel
from sinks.alerts.channels.base import DeliveryError, SendResult, check_status, retry_after
from sinks.alerts.notification import Notification
from sinks.alerts.slack_blocks import fallback_text, message_blocks
from sinks.alerts.templates import Rendered

log = logging.getLogger("sentinel.alerts.slack")
TEMPORARY_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackWebhook:
    kind = "slack"

    def __init__(self, channel: SlackWebhookChannel, url: str, timeout_s: float) -> None:
        self.client = AsyncWebhookClient(
            url=url, timeout=max(1, round(timeout_s)), retry_handlers=[]
        )

    async def send(self, notification: Notification, rendered: Rendered) -> SendResult:
        try:
            response = await self.client.send(
                text=fallback_text(rendered), blocks=message_blocks(rendered, notification)
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(f"Slack webhook: {exc!r}", temporary=True) from exc
        check_status(response.status_code, response.body, response.headers, "Slack webhook")
        return SendResult(status_code=response.status_code)

    async def close(self) -> None:
        return None


class SlackBot:
    kind = "slack_bot"

    def __init__(self, channel: SlackBotChannel, token: str, timeout_s: float) -> None:
        self.channel = channel
        self.client = AsyncWebClient(
            token=token,
            base_url=channel.api_url,
            timeout=max(1, round(timeout_s)),
            retry_handlers=[],
        )
        # Steps of a follow-up already done, so a retry does not post its thread reply twice.
        self._replied: dict[str, str] = {}

    async def send(self, notification: Notification, rendered: Rendered) -> SendResult:
        text = fallback_text(rendered)
        full = message_blocks(rendered, notification)
        if notification.thread_ts is None or notification.thread_channel is None:
            data = await self._call(
                "chat.postMessage", channel=self.channel.channel, text=text, blocks=full
            )
            return SendResult(200, thread_ts=data.get("ts"), thread_channel=data.get("channel"))
        channel, ts = notification.thread_channel, notification.thread_ts
        if notification.delivery_id not in self._replied:
            reply: dict[str, Any] = {"channel": channel, "text": text}
            reply["blocks"] = message_blocks(rendered, notification, only_new=True)
            if self.channel.thread_replies:
                reply["thread_ts"] = ts
            data = await self._call("chat.postMessage", **reply)
            self._replied[notification.delivery_id] = str(data.get("ts"))
        if self.channel.update_first:
            try:
                await self._call("chat.update", channel=channel, ts=ts, text=text, blocks=full)
            except DeliveryError as exc:
                if exc.temporary:
                    raise
                # The reply is out; a first message that cannot be edited (deleted, too old)
                # does not make the delivery fail.
                log.warning("could not update the first message %s: %s", ts, exc)
        self._replied.pop(notification.delivery_id, None)
        return SendResult(200)

    async def _call(self, method: str, **arguments: Any) -> dict[str, Any]:
        try:
            if method == "chat.update":
                response = await self.client.chat_update(**arguments)
            else:
                response = await self.client.chat_postMessage(**arguments)
        except SlackApiError as exc:
            raise _api_error(method, exc) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(f"Slack {method}: {exc!r}", temporary=True) from exc
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def close(self) -> None:
        return None


def _api_error(method: str, exc: SlackApiError) -> DeliveryError:
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    error = data.get("error", "") if isinstance(data, dict) else ""
    temporary = status == 429 or status >= 500 or error in TEMPORARY_API_ERRORS
    return DeliveryError(
        f"Slack {method}: HTTP {status} {error}".strip(),
        temporary=temporary,
        status_code=status or None,
        retry_after=retry_after(getattr(response, "headers", None)) if temporary else None,
    )


__all__ = ["SlackBot", "SlackWebhook", "check_status"]
