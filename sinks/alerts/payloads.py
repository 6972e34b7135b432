"""Message bodies for the non-Slack channels (pure: bytes and dicts, no sending).

- `webhook_body` / `sign`: the generic webhook's JSON (schema version ``WEBHOOK_SCHEMA``,
  documented in docs/alerts.md) and its ``X-Sentinel-Signature-256`` header:
  ``sha256=`` + hex HMAC-SHA256(secret, ``<timestamp>.<body>``), the timestamp (Unix seconds)
  sent in ``X-Sentinel-Timestamp`` so receivers can refuse replays.
- `alertmanager_alerts`: Alertmanager API v2 postable alerts.
- `console_line`: one readable line per message.
- `email_message`: a MIME message with plain-text and HTML parts, threaded per group.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from runtime.alerting_config import AlertingConfig, EmailChannel
from sinks.alerts.notification import Notification
from sinks.alerts.templates import Rendered, alert_view, run_link

WEBHOOK_SCHEMA = "1"
SIGNATURE_HEADER = "X-Sentinel-Signature-256"
TIMESTAMP_HEADER = "X-Sentinel-Timestamp"
DELIVERY_HEADER = "X-Sentinel-Delivery"
SCHEMA_HEADER = "X-Sentinel-Schema"
_LABEL_NAME = re.compile(r"[^A-Za-z0-9_]")


def webhook_document(
    notification: Notification, rendered: Rendered, config: AlertingConfig
) -> dict[str, Any]:
    return {
        "schema_version": WEBHOOK_SCHEMA,
        "delivery_id": notification.delivery_id,
        "receiver": notification.receiver,
        "status": notification.status,
        "reason": notification.reason,
        "sequence": notification.sequence,
        "group_key": notification.group_key,
        "group_labels": dict(notification.group_labels),
        "title": rendered.title,
        "text": rendered.text,
        "sent_at": notification.created_at.isoformat(),
        "runs": list(rendered.runs),
        "alerts": [
            alert_view(alert, "firing", notification, config) for alert in notification.firing
        ]
        + [
            alert_view(alert, "resolved", notification, config)
            for alert in (notification.resolved if notification.send_resolved else ())
        ],
    }


def webhook_body(notification: Notification, rendered: Rendered, config: AlertingConfig) -> bytes:
    document = webhook_document(notification, rendered, config)
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_headers(
    notification: Notification, body: bytes, secret: str | None, timestamp: int
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        DELIVERY_HEADER: notification.delivery_id,
        SCHEMA_HEADER: WEBHOOK_SCHEMA,
        TIMESTAMP_HEADER: str(timestamp),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def alertmanager_alerts(notification: Notification, config: AlertingConfig) -> list[dict[str, Any]]:
    """Postable alerts: one per alert of the group, resolved ones with their endsAt.

    Label names are made valid Prometheus names (other characters become ``_``);
    ``alertname`` is the anomaly type and ``anomaly_id`` keeps two findings of one type apart.
    """
    alerts = []
    resolved = {alert.alert_id for alert in notification.resolved}
    for alert in notification.firing + notification.resolved:
        labels = {_LABEL_NAME.sub("_", name): value for name, value in alert.labels.items()}
        labels = {name: value for name, value in labels.items() if value}
        labels["alertname"] = alert.labels.get("type", alert.kind)
        labels["anomaly_id"] = alert.alert_id
        document: dict[str, Any] = {
            "labels": labels,
            "annotations": {
                "summary": alert.summary,
                "description": alert.evidence or alert.summary,
                "run_url": run_link(alert.run_id, config),
            },
            "startsAt": _rfc3339(alert.starts_at),
            "generatorURL": run_link(alert.run_id, config),
        }
        if alert.ends_at is not None and alert.alert_id in resolved:
            document["endsAt"] = _rfc3339(max(alert.ends_at, alert.starts_at))
        alerts.append(document)
    return alerts


def console_line(notification: Notification, rendered: Rendered) -> str:
    summaries = "; ".join(
        f"{'+' if a.alert_id in notification.new_firing else ''}{a.summary}"
        for a in notification.firing[:5]
    )
    more = len(notification.firing) - 5
    tail = f" (+{more} more)" if more > 0 else ""
    link = rendered.runs[0]["link"] if rendered.runs else ""
    return (
        f"ALERT {notification.created_at.isoformat(timespec='seconds')} "
        f"[{notification.receiver}] {rendered.title}"
        + (f" | {summaries}{tail}" if summaries else "")
        + (f" | {link}" if link else "")
    )


def console_document(notification: Notification, rendered: Rendered, config: AlertingConfig) -> str:
    return json.dumps(webhook_document(notification, rendered, config), sort_keys=True)


def email_message(
    notification: Notification, rendered: Rendered, channel: EmailChannel, domain: str
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.title
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = format_datetime(notification.created_at)
    message["Message-ID"] = f"<{notification.delivery_id}@{domain}>"
    # Every message of a group refers to one thread id, so mail clients keep them together.
    thread = f"<{notification.first_message_id}@{domain}>"
    message["References"] = thread
    message["In-Reply-To"] = thread
    message["X-Sentinel-Group"] = notification.group_key
    message[DELIVERY_HEADER] = notification.delivery_id
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
