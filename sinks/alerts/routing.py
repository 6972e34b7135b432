"""The routing tree (Alertmanager's `dispatch/route.go`, pure).

An alert enters at the root, which matches everything. At each node the children are tried in
order; the alert descends into the first child whose matchers all match, and into later siblings
too only while the matched child has ``continue: true``. A node none of whose children matched
is where the alert lands. Options a route leaves unset come from its parent (the root's from
`ROOT_DEFAULTS`).

A run's end (a ``run_finished`` alert) is routed the same way; a route it lands on sends it only
if that route has ``run_summary`` (so it never reaches the anomaly-only routes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.alerting_config import ROOT_DEFAULTS, RouteConfig
from schemas.messages import LabelMatcher
from sinks.alerts.matchers import matches_all

EVERY_LABEL = "..."


@dataclass(frozen=True)
class Route:
    """A routing node with every option resolved (inherited where unset)."""

    route_id: str
    matchers: tuple[LabelMatcher, ...]
    receivers: tuple[str, ...]
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float
    send_resolved: bool
    run_summary: bool
    continue_: bool
    children: tuple[Route, ...] = field(default=())

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert with these labels lands on (this node must already match)."""
        landed: list[Route] = []
        for child in self.children:
            if not matches_all(child.matchers, labels):
                continue
            landed.extend(child.match(labels))
            if not child.continue_:
                break
        return landed or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that define this route's group of the alert (missing ones left out)."""
        if self.group_by == (EVERY_LABEL,):
            return dict(labels)
        return {name: labels[name] for name in self.group_by if name in labels}

    def walk(self) -> list[Route]:
        found = [self]
        for child in self.children:
            found.extend(child.walk())
        return found


def build_tree(config: RouteConfig) -> Route:
    return _build(config, dict(ROOT_DEFAULTS), "root")


def _build(config: RouteConfig, inherited: dict[str, Any], route_id: str) -> Route:
    options = dict(inherited)
    for name in ROOT_DEFAULTS:
        value = getattr(config, name)
        if value is not None:
            options[name] = value
    receivers = tuple(config.receivers or inherited.get("receivers", ()))
    options["receivers"] = receivers
    children = tuple(
        _build(child, options, f"{route_id}/{child.name or index}")
        for index, child in enumerate(config.routes)
    )
    return Route(
        route_id=route_id,
        matchers=tuple(config.parsed_matchers()),
        receivers=receivers,
        group_by=tuple(options["group_by"]),
        group_wait_s=float(options["group_wait_s"]),
        group_interval_s=float(options["group_interval_s"]),
        repeat_interval_s=float(options["repeat_interval_s"]),
        send_resolved=bool(options["send_resolved"]),
        run_summary=bool(options["run_summary"]),
        continue_=config.continue_,
        children=children,
    )


def group_key(route: Route, labels: Mapping[str, str], partition: int) -> str:
    """A group's key: its route, the input partition that owns it and its group labels.

    The partition is part of the key because a dispatcher replica owns the groups of its input
    partitions (docs/alerts.md, "Replicas and partitions").
    """
    group = route.group_labels(labels)
    inner = ",".join(f"{name}={json.dumps(group[name])}" for name in sorted(group))
    return f"{route.route_id}:p{partition}:{{{inner}}}"
