"""Capture replay: publish recorded input through the same normalisation code as live input.

Webhook records go through the same ingest as the HTTP endpoint (so de-duplication on the
delivery id and normalisation are identical); Kubernetes and log records through the handlers in
`ReplayTargets`, which use the watcher's and log streamer's normalisation. `speed=None` replays
as fast as possible; otherwise the gaps between record timestamps are kept, divided by `speed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sized
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import HTTPException

from producers.webhooks.intake import WebhookIngest
from schemas.capture import K8sRecord, LogRecord, WebhookRecord

log = logging.getLogger("sentinel.replay")


@dataclass
class ReplayStats:
    records: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rejected: list[str] = field(default_factory=list)

    def merged(self, other: ReplayStats) -> ReplayStats:
        """Both replays' counts (a capture replayed in parts)."""
        return ReplayStats(
            self.records + other.records,
            self.outcomes + other.outcomes,
            [*self.rejected, *other.rejected],
        )

    def summary(self) -> str:
        parts = [f"{count} {name}" for name, count in sorted(self.outcomes.items())]
        return f"{self.records} records: " + (", ".join(parts) or "nothing")


@dataclass
class ReplayTargets:
    """Where each record type goes. Webhooks go to the same ingest as the HTTP endpoint;
    Kubernetes and log records to handlers that run the producers' normalisation and publish.
    A missing handler counts its records as unsupported instead of failing the replay."""

    github: WebhookIngest
    k8s: Callable[[K8sRecord], Awaitable[str]] | None = None
    logs: Callable[[LogRecord], Awaitable[str]] | None = None
    jenkins: WebhookIngest | None = None
    generic: WebhookIngest | None = None


async def replay(
    records: Iterable[WebhookRecord | K8sRecord | LogRecord],
    targets: ReplayTargets,
    speed: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayStats:
    """`progress(records done, total)` is called after each record (total 0: not known)."""
    stats = ReplayStats()
    previous: datetime | None = None
    total = len(records) if isinstance(records, Sized) else 0
    for record in records:
        if progress is not None and stats.records:
            progress(stats.records, total)
        stats.records += 1
        if speed is not None and previous is not None:
            gap = (record.ts - previous).total_seconds() / speed
            if gap > 0:
                await asyncio.sleep(gap)
        previous = record.ts
        if isinstance(record, WebhookRecord) and record.provider in ("jenkins", "generic"):
            ingest = targets.jenkins if record.provider == "jenkins" else targets.generic
            await _replay_token_webhook(record, ingest, stats)
        elif isinstance(record, WebhookRecord):
            await _replay_webhook(record, targets.github, stats)
        elif isinstance(record, K8sRecord):
            await _replay_with(targets.k8s, record, stats)
        else:
            await _replay_with(targets.logs, record, stats)
    if progress is not None:
        progress(stats.records, total)
    return stats


async def _replay_with(
    handler: Callable[[Any], Awaitable[str]] | None,
    record: K8sRecord | LogRecord,
    stats: ReplayStats,
) -> None:
    if handler is None:
        stats.outcomes[f"unsupported_{record.type}"] += 1
        return
    try:
        outcome = await handler(record)
    except ValueError as exc:  # the producers' normalisation refused it, as it would live
        stats.outcomes["rejected"] += 1
        stats.rejected.append(f"record {stats.records}: {exc}")
        return
    stats.outcomes[f"{record.type}_{outcome}"] += 1


async def _replay_webhook(record: WebhookRecord, github: WebhookIngest, stats: ReplayStats) -> None:
    if record.provider != github.provider:
        stats.outcomes[f"unsupported_provider_{record.provider}"] += 1
        return
    event = record.header("X-GitHub-Event")
    delivery = record.header("X-GitHub-Delivery")
    if not event or not delivery:
        stats.outcomes["rejected"] += 1
        stats.rejected.append(f"record {stats.records}: missing X-GitHub-Event/X-GitHub-Delivery")
        return
    try:
        result = await github.handle(event, delivery, record.body)
    except HTTPException as exc:
        stats.outcomes["rejected"] += 1
        stats.rejected.append(f"record {stats.records}: {exc.detail}")
        return
    stats.outcomes[str(result.body.get("status"))] += 1
    if result.status_code >= 500:
        stats.rejected.append(f"record {stats.records}: {result.body.get('detail')}")


async def _replay_token_webhook(
    record: WebhookRecord, ingest: WebhookIngest | None, stats: ReplayStats
) -> None:
    """Jenkins and generic records: the body is the whole delivery (ids are derived from it)."""
    if ingest is None:
        stats.outcomes[f"unsupported_provider_{record.provider}"] += 1
        return
    try:
        result = await ingest.handle(record.provider, "", record.body)
    except HTTPException as exc:
        stats.outcomes["rejected"] += 1
        stats.rejected.append(f"record {stats.records}: {exc.detail}")
        return
    stats.outcomes[str(result.body.get("status"))] += 1
    if result.status_code >= 500:
        stats.rejected.append(f"record {stats.records}: {result.body.get('detail')}")
