"""Email over SMTP with aiosmtplib: STARTTLS (or implicit TLS), authentication, text + HTML."""

from __future__ import annotations

import ssl

import aiosmtplib

from runtime.alerting_config import EmailChannel
from sinks.alerts.channels.base import DeliveryError, SendResult
from sinks.alerts.notification import Notification
from sinks.alerts.payloads import email_message
from sinks.alerts.templates import Rendered


class Email:
    kind = "email"

    def __init__(self, channel: EmailChannel, password: str | None, timeout_s: float) -> None:
        self.channel = channel
        self.password = password
        self.timeout_s = timeout_s
        self.domain = channel.sender.rpartition("@")[2] or "sentinel.local"
        self.tls_context = ssl.create_default_context(
            cafile=str(channel.ca_file) if channel.ca_file else None
        )
        if not channel.verify_tls:
            self.tls_context.check_hostname = False
            self.tls_context.verify_mode = ssl.CERT_NONE

    async def send(self, notification: Notification, rendered: Rendered) -> SendResult:
        message = email_message(notification, rendered, self.channel, self.domain)
        channel = self.channel
        try:
            await aiosmtplib.send(
                message,
                hostname=channel.host,
                port=channel.port,
                username=channel.username,
                password=self.password,
                start_tls=channel.starttls,
                use_tls=channel.tls,
                tls_context=self.tls_context,
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx: try again later (greylisting, a full queue); 5xx: it will not work (auth).
            raise DeliveryError(
                f"SMTP {exc.code}: {exc.message}",
                temporary=400 <= exc.code < 500,
                status_code=exc.code,
            ) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {exc!r}", temporary=True) from exc
        return SendResult(status_code=250)

    async def close(self) -> None:
        return None
