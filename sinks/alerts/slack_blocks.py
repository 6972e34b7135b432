"""Slack Block Kit messages (pure): within Slack's limits, with "+N more" when cut.

Limits (Slack's reference): 50 blocks per message, 3,000 characters per section text, 150 per
header text, 10 fields per section, 2,000 per field; the top-level ``text`` (notifications,
screen readers) is kept under 3,000 here too. A message shows: a header (the title), the run(s)
— status, pipeline, branch, duration, a link to the run page and to the CI system — one section
per alert (its line from the ``alert`` template: what went wrong and one line of evidence), and a
context line with the receiver and the group.
"""

from __future__ import annotations

from typing import Any

from sinks.alerts.notification import Notification
from sinks.alerts.templates import Rendered

MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_HEADER = 150
MAX_FIELD = 2000
Block = dict[str, Any]


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_blocks(
    rendered: Rendered, notification: Notification, only_new: bool = False
) -> list[Block]:
    """The message; with `only_new` (a thread reply) only what the receiver was not told yet."""
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(rendered.title, MAX_HEADER)}}
    ]
    blocks.extend(_run_block(run) for run in rendered.runs[:3])
    lines = list(rendered.alert_lines)
    hidden = rendered.truncated
    if only_new:
        told = notification.new_firing | notification.new_resolved
        pairs = zip(lines, rendered.alert_ids, strict=True)
        lines = [line for line, alert_id in pairs if alert_id in told]
    room = MAX_BLOCKS - len(blocks) - 2  # keep room for "+N more" and the context line
    if len(lines) > room:
        hidden += len(lines) - room
        lines = lines[:room]
    blocks.extend(
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(line, MAX_TEXT)}}
        for line in lines
    )
    if hidden:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"_+{hidden} more_"}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": cut(
                        f"{notification.status} · receiver {notification.receiver} · "
                        f"message {notification.sequence} · group `{notification.group_key}`",
                        MAX_TEXT,
                    ),
                }
            ],
        }
    )
    return blocks


def fallback_text(rendered: Rendered) -> str:
    """The top-level text Slack shows in notifications (and when blocks cannot render)."""
    return cut(rendered.title, MAX_TEXT)


def _run_block(run: dict[str, Any]) -> Block:
    link = f"<{run['link']}|{_escape(run['pipeline'] or run['run_id'])}>"
    fields = [
        f"*Run*\n{link}",
        f"*Status*\n{_escape(run['status'] or 'running')}",
    ]
    if run["branch"]:
        fields.append(f"*Branch*\n{_escape(run['branch'])}")
    if run["duration"]:
        fields.append(f"*Duration*\n{run['duration']}")
    if run["repository"]:
        fields.append(f"*Repository*\n{_escape(run['repository'])}")
    if run["url"]:
        fields.append(f"*CI*\n<{run['url']}|open in {_escape(run['provider'] or 'CI')}>")
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": cut(text, MAX_FIELD)} for text in fields[:10]],
    }


def _escape(text: str) -> str:
    """Slack mrkdwn control characters (&, <, >) as Slack wants them escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
