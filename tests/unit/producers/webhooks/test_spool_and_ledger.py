from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from producers.publisher import PublishError
from producers.webhooks.ledger import DeliveryLedger
from producers.webhooks.spool import Spool, SpoolDrainer


class FlakyPublisher:
    """Stands in for the broker boundary: fails while `down`, records what it published."""

    def __init__(self) -> None:
        self.down = True
        self.published: list[tuple[str, bytes | None, bytes]] = []

    def publish_sync(
        self, topic: str, key: bytes | None, value: bytes, timeout: float | None = None
    ) -> tuple[int, int]:
        if self.down:
            raise RuntimeError("broker unreachable")
        self.published.append((topic, key, value))
        return 0, len(self.published) - 1


def test_spooled_messages_survive_a_restart_and_drain_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put("t", b"k1", b"\x00binary\xff")
    spool.put("t", None, b"second")
    reopened = Spool(tmp_path / "spool")  # a new process after a crash
    assert len(reopened) == 2
    publisher = FlakyPublisher()
    drainer = SpoolDrainer(reopened, publisher)
    assert drainer.drain_once() == 0  # broker still down: nothing lost, nothing removed
    assert len(reopened) == 2
    publisher.down = False
    assert drainer.drain_once() == 2
    assert publisher.published == [("t", b"k1", b"\x00binary\xff"), ("t", None, b"second")]
    assert len(reopened) == 0


def test_unreadable_spool_entry_is_kept_aside_not_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (tmp_path / "00000000000000000001-bad.json").write_text("{not json")
    assert spool.pending() == []
    assert (tmp_path / "00000000000000000001-bad.corrupt").exists()


def test_ledger_deduplicates_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "deliveries.sqlite"
    ledger = DeliveryLedger(db)
    assert ledger.claim("github", "abc")
    assert not ledger.claim("github", "abc")  # in flight
    ledger.commit("github", "abc")
    assert not ledger.claim("github", "abc")
    assert ledger.claim("jenkins", "abc")  # ids are per provider
    ledger.close()
    again = DeliveryLedger(db)
    assert not again.claim("github", "abc")


def test_released_claim_can_be_retried(tmp_path: Path) -> None:
    ledger = DeliveryLedger(tmp_path / "d.sqlite")
    assert ledger.claim("github", "x")
    ledger.release("github", "x")  # publishing failed: the sender may retry
    assert ledger.claim("github", "x")


@pytest.mark.parametrize("ttl_hours", [0.000001])
def test_ledger_forgets_after_ttl(tmp_path: Path, ttl_hours: float) -> None:
    ledger = DeliveryLedger(tmp_path / "d.sqlite", ttl_hours=ttl_hours)
    ledger.claim("github", "old")
    ledger.commit("github", "old")
    ledger._last_prune = 0.0  # force the periodic prune now
    import time

    time.sleep(0.01)
    assert ledger.claim("github", "old")


class UnreadableTopic:
    """A lookback whose broker cannot be read (down again)."""

    def already_published(self, entries: object) -> set[Path]:
        raise RuntimeError("broker unreachable")


def test_a_drain_waits_when_the_topic_cannot_be_read_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.put("t", b"k", b"v")
    publisher = FlakyPublisher()
    publisher.down = False
    drainer = SpoolDrainer(spool, publisher, lookback=UnreadableTopic())
    # Publishing without knowing whether the broker holds it already could repeat it.
    assert drainer.drain_once() == 0
    assert publisher.published == [] and len(spool) == 1


class RefusingPublisher(FlakyPublisher):
    """The broker refuses one value for good (too large for the topic), takes the rest."""

    def publish_sync(
        self, topic: str, key: bytes | None, value: bytes, timeout: float | None = None
    ) -> tuple[int, int]:
        if value == b"huge":
            raise PublishError(f"{topic}: Broker: Message size too large", retriable=False)
        return super().publish_sync(topic, key, value, timeout)


def test_an_entry_the_broker_refuses_for_good_is_set_aside_not_blocking_the_rest(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path)
    spool.put("t", b"k", b"first")
    spool.put("t", b"k", b"huge")
    spool.put("t", b"k", b"third")
    publisher = RefusingPublisher()
    publisher.down = False
    assert SpoolDrainer(spool, publisher).drain_once() == 2
    assert [value for _t, _k, value in publisher.published] == [b"first", b"third"]
    assert len(spool) == 0
    [kept] = list(tmp_path.glob("*.refused"))
    assert json.loads(kept.read_text())["value"] == base64.b64encode(b"huge").decode()
