"""A dead letter always fits the DLQ topic (the broker's default 1 MiB): a large value is cut, and
the letter says so, with what is needed to recognise the whole value."""

from __future__ import annotations

import hashlib

from schemas.messages import MAX_DEAD_LETTER_RAW, DeadLetter


def letter(raw: bytes, error: str = "bad") -> DeadLetter:
    return DeadLetter(
        origin_topic="t", raw_value=raw, error=error, error_type="X", component="test"
    )


def test_a_small_value_is_kept_whole() -> None:
    kept = DeadLetter.from_bytes(letter(b"\xff{ not json").to_bytes())
    assert kept.raw_value == b"\xff{ not json"
    assert (kept.raw_truncated, kept.raw_size, kept.raw_sha256) == (False, None, None)


def test_a_large_value_keeps_its_head_size_and_digest_and_fits_the_topic() -> None:
    raw = bytes(range(256)) * (10 * 4096)  # 10 MiB, incompressible enough
    cut = DeadLetter.from_bytes(letter(raw, error="e" * 100_000).to_bytes())
    assert cut.raw_truncated and cut.raw_value == raw[:MAX_DEAD_LETTER_RAW]
    assert (cut.raw_size, cut.raw_sha256) == (len(raw), hashlib.sha256(raw).hexdigest())
    assert cut.error.endswith("… (cut from 100000 characters)") and len(cut.error) == 8192
    assert len(cut.to_bytes()) < 1_000_000  # under the broker's default max.message.bytes
