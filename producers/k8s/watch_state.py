"""Pure decisions of the Kubernetes watch loop: de-duplication, relist diffing, backoff.

No I/O here (kopf's split: reconnect loop and stream are thin, the decisions are plain code).

`ObjectLedger` remembers, per watched collection, what was published: for every live object a
small summary (its metadata, no spec/status) and a bounded set of recently published
(uid, resourceVersion) pairs. Memory is therefore O(live objects + `recent_limit`), never
O(events): a namespace with 500 pods that each change a thousand times holds 500 summaries.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SUMMARY_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "labels",
    "annotations",
    "ownerReferences",
    "creationTimestamp",
)


@dataclass(frozen=True, slots=True)
class Emit:
    """One event to publish: its type and the object."""

    event_type: str
    obj: Mapping[str, Any]


def _uid_rv(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or ""), str(meta.get("resourceVersion") or "")


def summarize(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a published object: enough to announce its deletion later."""
    meta = obj.get("metadata") or {}
    summary: dict[str, Any] = {
        "metadata": {k: meta[k] for k in SUMMARY_METADATA if meta.get(k) is not None}
    }
    for key in ("kind", "apiVersion", "involvedObject"):
        if key in obj:
            summary[key] = obj[key]
    return summary


class ObjectLedger:
    """What one watched collection (kind x namespace) has published."""

    def __init__(self, recent_limit: int = 10_000) -> None:
        self.recent_limit = recent_limit
        self._live: dict[str, dict[str, Any]] = {}
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()

    @property
    def live_count(self) -> int:
        return len(self._live)

    @property
    def recent_count(self) -> int:
        return len(self._recent)

    def live_objects(self) -> dict[str, dict[str, Any]]:
        """uid -> summary of every live object published (a copy: safe to keep or save)."""
        return dict(self._live)

    def restore(self, live: Mapping[str, Mapping[str, Any]]) -> None:
        """Start from a saved `live_objects()`: the next list publishes only the differences."""
        for uid, summary in live.items():
            self._live[uid] = dict(summary)
            self._remember(uid, str(summary.get("metadata", {}).get("resourceVersion", "")))

    def _remember(self, uid: str, rv: str) -> None:
        self._recent[(uid, rv)] = None
        self._recent.move_to_end((uid, rv))
        while len(self._recent) > self.recent_limit:
            self._recent.popitem(last=False)

    def _published(self, uid: str, rv: str) -> bool:
        live = self._live.get(uid)
        if live is not None and live["metadata"].get("resourceVersion") == rv:
            return True
        return (uid, rv) in self._recent

    def accept(self, event_type: str, obj: Mapping[str, Any]) -> bool:
        """Record a watch event; False when (uid, resourceVersion) was already published."""
        uid, rv = _uid_rv(obj)
        if not uid:
            return True  # nothing to de-duplicate on; pass it on rather than drop it
        if self._published(uid, rv):
            return False
        if event_type == "DELETED":
            self._live.pop(uid, None)
        else:
            self._live[uid] = summarize(obj)
        self._remember(uid, rv)
        return True

    def diff_relist(self, items: Iterable[Mapping[str, Any]], list_rv: str) -> list[Emit]:
        """What a (re)list shows that was not published: changed or new objects (RELISTED) and
        objects that vanished while nobody watched (DELETED: the last published metadata, with
        the list's resourceVersion).
        The ledger is updated as if all of it was published."""
        emits: list[Emit] = []
        listed: set[str] = set()
        for obj in items:
            uid, rv = _uid_rv(obj)
            listed.add(uid)
            if uid and self._published(uid, rv):
                continue
            if uid:
                self._live[uid] = summarize(obj)
                self._remember(uid, rv)
            emits.append(Emit("RELISTED", obj))
        for uid in [u for u in self._live if u not in listed]:
            # Its last version was published already; "gone as of this list" is a new fact.
            tombstone = self._live.pop(uid)
            tombstone["metadata"] = {**tombstone["metadata"], "resourceVersion": list_rv}
            self._remember(uid, list_rv)
            emits.append(Emit("DELETED", tombstone))
        return emits


def backoff_delay(failures: int, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait before reconnect number `failures` (1 = first retry).

    Capped exponential with "equal jitter": half the step is fixed, half is random
    (`jitter` in [0, 1)), so a fleet of watchers does not reconnect in lockstep yet every
    retry waits at least half its step.
    """
    if failures <= 0:
        return 0.0
    step = min(cap, base * float(2 ** min(failures - 1, 62)))
    return step / 2 + step / 2 * jitter
