"""Moving a scenario capture into a namespace of its own, to replay several side by side.

The anomaly scenarios all run in namespace ``ci``. Relocated, each keeps its objects, lines and
times but lives in its own namespace (and its runs get the ids ``job:<namespace>/...``), so a
capture of several relocated scenarios is what a cluster with several teams sends: the runs of
each must come out exactly as when the scenario is replayed alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SOURCE_NAMESPACE = "ci"


def _moved(
    value: Any, namespace: str | None, key: str | None = None, day: tuple[str, str] | None = None
) -> Any:
    if isinstance(value, dict):
        return {k: _moved(v, namespace, k, day) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, namespace, None, day) for v in value]
    if isinstance(value, str):
        if day is not None:  # every time of the scenario (objects, lines, ts) to another day
            value = value.replace(day[0], day[1])
        if namespace is None:
            return value
        if key == "namespace" and value == SOURCE_NAMESPACE:
            return namespace
        # Run ids and keys (job:ci/<job>, also inside subjects such as job/job:ci/<job>), and
        # Event messages that name a pod as ci/<pod> ("Successfully assigned ci/... to node").
        value = value.replace(f"job:{SOURCE_NAMESPACE}/", f"job:{namespace}/")
        return value.replace(f" {SOURCE_NAMESPACE}/", f" {namespace}/")
    return value


def relocated_records(
    capture: Path, namespace: str | None, day: str | None = None
) -> list[dict[str, Any]]:
    """The records of `capture`, moved from namespace ``ci`` to `namespace` (None: kept) and,
    with `day`
    (``YYYY-MM-DD``), from the day it was recorded on to that day (a scenario's runs all fall
    on one day: its clock time is kept, so scenarios moved to one day run side by side)."""
    with capture.open(encoding="utf-8") as handle:
        raw = [json.loads(line) for line in handle if line.strip()]
    shift = (raw[0]["ts"][:10], day) if day and raw else None
    if shift is not None:
        days = {record["ts"][:10] for record in raw}
        assert days == {shift[0]}, f"{capture.name} spans {sorted(days)}: cannot move one day"
    return [_moved(record, namespace, None, shift) for record in raw]


def merged_capture(
    parts: Iterable[tuple[Path, str | None]], out: Path, day: str | None = None
) -> None:
    """One capture of every (capture, namespace) relocated (to `day`), ordered by time."""
    records: list[tuple[str, int, dict[str, Any]]] = []
    for capture, namespace in parts:
        for record in relocated_records(capture, namespace, day):
            records.append((record["ts"], len(records), record))
    # RFC 3339 with the same offset and precision throughout: the strings sort as times.
    records.sort(key=lambda item: (item[0], item[1]))
    with out.open("w", encoding="utf-8") as handle:
        for _, _, record in records:
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")


def relocated_expected(expected: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """A scenario's expected runs and anomalies, its run ids (and run-id subjects) moved."""
    return _moved(expected, namespace)  # type: ignore[no-any-return]
