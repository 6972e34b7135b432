"""The watch loop's pure decisions: (uid, resourceVersion) dedup, relist diffing, backoff."""

from __future__ import annotations

from typing import Any

import pytest

from producers.k8s.watch_state import ObjectLedger, backoff_delay


def obj(uid: str, rv: int, name: str | None = None, **labels: str) -> dict[str, Any]:
    meta = {"uid": uid, "resourceVersion": str(rv), "name": name or uid, "labels": labels}
    return {"kind": "Pod", "metadata": {**meta, "namespace": "ci"}, "spec": {"big": "x" * 100}}


def test_same_uid_and_version_is_published_once() -> None:
    ledger = ObjectLedger()
    assert ledger.accept("ADDED", obj("a", 1))
    assert not ledger.accept("ADDED", obj("a", 1))
    assert ledger.accept("MODIFIED", obj("a", 2))
    assert not ledger.accept("MODIFIED", obj("a", 1))  # an old version re-sent
    assert ledger.accept("DELETED", obj("a", 3))
    assert not ledger.accept("DELETED", obj("a", 3))
    assert ledger.live_count == 0


def test_relist_publishes_only_differences() -> None:
    ledger = ObjectLedger()
    for uid in "abcd":
        ledger.accept("ADDED", obj(uid, 10))
    # While away: b changed, c deleted, e created; a and d untouched.
    emits = ledger.diff_relist([obj("a", 10), obj("b", 12), obj("d", 10), obj("e", 13)], "20")
    assert [(e.event_type, e.obj["metadata"]["uid"]) for e in emits] == [
        ("RELISTED", "b"),
        ("RELISTED", "e"),
        ("DELETED", "c"),
    ]
    tombstone = emits[2].obj
    assert tombstone["metadata"]["resourceVersion"] == "20"  # a new fact, a new version
    assert tombstone["metadata"]["name"] == "c" and "spec" not in tombstone
    assert ledger.diff_relist([obj("a", 10), obj("b", 12), obj("d", 10), obj("e", 13)], "21") == []
    # The watch resuming from the list's version re-sends nothing already published.
    assert not ledger.accept("MODIFIED", obj("b", 12))


def test_initial_list_publishes_everything() -> None:
    emits = ObjectLedger().diff_relist([obj("a", 1), obj("b", 2)], "5")
    assert [e.event_type for e in emits] == ["RELISTED", "RELISTED"]


def test_memory_is_bounded_by_live_objects_not_events() -> None:
    ledger = ObjectLedger(recent_limit=100)
    for version in range(50):
        for uid in range(20):
            ledger.accept("MODIFIED", obj(f"u{uid}", version * 100 + uid))
    assert ledger.live_count == 20
    assert ledger.recent_count == 100


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert backoff_delay(0, 0.5, 30, 0.9) == 0
    assert [backoff_delay(n, 0.5, 30, 0.0) for n in (1, 2, 3, 4)] == [0.25, 0.5, 1.0, 2.0]
    assert backoff_delay(100, 0.5, 30, 0.0) == 15.0
    assert backoff_delay(100, 0.5, 30, 0.999) == pytest.approx(29.985)
    assert backoff_delay(3, 0.5, 30, 0.5) == pytest.approx(1.5)


def test_restored_ledger_diffs_a_list_as_if_it_never_stopped() -> None:
    before = ObjectLedger()
    for uid in "abc":
        before.accept("ADDED", obj(uid, 10))
    saved = before.live_objects()
    after = ObjectLedger()
    after.restore(saved)
    emits = after.diff_relist([obj("a", 10), obj("b", 11)], "30")
    assert [(e.event_type, e.obj["metadata"]["uid"]) for e in emits] == [
        ("RELISTED", "b"),
        ("DELETED", "c"),
    ]
    assert not after.accept("MODIFIED", obj("a", 10))
