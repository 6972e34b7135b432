"""The generic webhook (signed JSON) and Prometheus Alertmanager (POST /api/v2/alerts)."""

from __future__ import annotations

import json
import ssl
import time

import httpx

from runtime.alerting_config import AlertingConfig, AlertmanagerChannel, WebhookChannel
from sinks.alerts.channels.base import DeliveryError, SendResult, check_status
from sinks.alerts.notification import Notification
from sinks.alerts.payloads import alertmanager_alerts, webhook_body, webhook_headers
from sinks.alerts.templates import Rendered


def _client(ca_file: object, timeout_s: float) -> httpx.AsyncClient:
    verify: ssl.SSLContext | bool = True
    if ca_file is not None:
        verify = ssl.create_default_context(cafile=str(ca_file))
    return httpx.AsyncClient(timeout=timeout_s, verify=verify, follow_redirects=False)


async def _post(client: httpx.AsyncClient, url: str, what: str, **kwargs: object) -> int:
    try:
        response = await client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"{what}: timed out ({exc!r})", temporary=True) from exc
    except httpx.TransportError as exc:
        raise DeliveryError(f"{what}: {exc!r}", temporary=True) from exc
    check_status(response.status_code, response.text, response.headers, what)
    return response.status_code


class Webhook:
    kind = "webhook"

    def __init__(
        self,
        channel: WebhookChannel,
        url: str,
        secret: str | None,
        config: AlertingConfig,
        timeout_s: float,
    ) -> None:
        self.url = url
        self.secret = secret
        self.config = config
        self.client = _client(channel.ca_file, timeout_s)

    async def send(self, notification: Notification, rendered: Rendered) -> SendResult:
        body = webhook_body(notification, rendered, self.config)
        headers = webhook_headers(notification, body, self.secret, int(time.time()))
        status = await _post(self.client, self.url, "webhook", content=body, headers=headers)
        return SendResult(status_code=status)

    async def close(self) -> None:
        await self.client.aclose()


class Alertmanager:
    kind = "alertmanager"

    def __init__(
        self, channel: AlertmanagerChannel, config: AlertingConfig, timeout_s: float
    ) -> None:
        self.url = channel.url.rstrip("/") + "/api/v2/alerts"
        self.config = config
        self.client = _client(channel.ca_file, timeout_s)

    async def send(self, notification: Notification, rendered: Rendered) -> SendResult:
        body = json.dumps(alertmanager_alerts(notification, self.config)).encode()
        headers = {"Content-Type": "application/json"}
        status = await _post(self.client, self.url, "Alertmanager", content=body, headers=headers)
        return SendResult(status_code=status)

    async def close(self) -> None:
        await self.client.aclose()
