"""Console and file channels: one readable line (or one JSON document) per message."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from runtime.alerting_config import AlertingConfig, ConsoleChannel, FileChannel
from sinks.alerts.channels.base import SendResult
from sinks.alerts.notification import Notification
from sinks.alerts.payloads import console_document, console_line
from sinks.alerts.templates import Rendered


class Console:
    kind = "console"

    def __init__(self, channel: ConsoleChannel, config: AlertingConfig) -> None:
        self.channel = channel
        self.config = config

    async def send(self, notification: Notification, rendered: Rendered) -> SendResult:
        stream = sys.stdout if self.channel.stream == "stdout" else sys.stderr
        if self.channel.format == "json":
            line = console_document(notification, rendered, self.config)
        else:
            line = console_line(notification, rendered)
        print(line, file=stream, flush=True)
        return SendResult()

    async def close(self) -> None:
        return None


class File:
    kind = "file"

    def __init__(self, channel: FileChannel, config: AlertingConfig) -> None:
        self.path: Path = channel.path
        self.channel = channel
        self.config = config

    async def send(self, notification: Notification, rendered: Rendered) -> SendResult:
        if self.channel.format == "json":
            line = console_document(notification, rendered, self.config)
        else:
            line = console_line(notification, rendered)
        await asyncio.to_thread(self._append, line)
        return SendResult()

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    async def close(self) -> None:
        return None
