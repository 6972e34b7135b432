"""The ops endpoint of each component (`/health`, `/ready`, `/metrics` on `ops.port`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runtime.config import Settings
from runtime.kafka_clients import admin_config, bootstrap_servers
from runtime.ops_server import Check, Heartbeat, OpsServer
from runtime.progress_monitor import BrokerOffsets, Ownership, ProgressMonitor
from sentinel.brokers import broker_answers


def broker_check(settings: Settings) -> Check:
    bootstrap = bootstrap_servers(settings)

    def check() -> str | None:
        return None if broker_answers(bootstrap, timeout=2.0) else f"no broker at {bootstrap}"

    return check


def store_check(ping: Callable[[], bool]) -> Check:
    return lambda: None if ping() else "the ClickHouse store does not answer"


def start_ops(
    settings: Settings,
    component: str,
    heartbeat: Heartbeat | None = None,
    ready_checks: Mapping[str, Check] | None = None,
    details: Callable[[], Mapping[str, Any]] | None = None,
    progress: tuple[str, Callable[[], Ownership]] | None = None,
    routes: Mapping[str, Callable[[], Mapping[str, Any]]] | None = None,
) -> OpsServer | None:
    """Start the ops endpoint when `ops.port` is set (the container image sets it).

    `progress` = (consumer group, what this process owns): `/health` then also fails when a
    partition it owns has lag and its committed offset stands still (`ops.partition_stall_s`).
    """
    ops = settings.ops
    if ops.port is None:
        return None
    monitor = None
    if progress is not None:
        group, ownership = progress
        monitor = ProgressMonitor(
            component,
            BrokerOffsets(admin_config(settings), group),
            ownership,
            ops.partition_stall_s,
            ops.progress_check_s,
        )
    server = OpsServer(
        ops.host,
        ops.port,
        component,
        heartbeat=heartbeat,
        stall_s=ops.stall_s,
        ready_checks=ready_checks,
        details=details,
        progress=monitor,
        routes=routes,
    )
    return server.start()
