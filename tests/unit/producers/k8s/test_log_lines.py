"""Pure normalisation of log lines: timestamps, truncation, invalid UTF-8, keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from producers.k8s.log_lines import log_key, split_timestamp, to_log_line

RECEIVED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_timestamp_prefix_becomes_event_time() -> None:
    line = to_log_line("ci", "p", "c", b"2026-01-01T10:00:00.123456789Z hello\n", RECEIVED, 100)
    assert line.event_time == datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert line.line == "hello" and not line.truncated
    assert log_key(line) == "ci/p/c"


def test_nanoseconds_and_offsets_are_kept_exactly() -> None:
    ns, rest = split_timestamp(b"2026-01-01T10:00:00.000000007Z x")
    assert ns is not None and ns % 1_000_000_000 == 7 and rest == b"x"
    short, _ = split_timestamp(b"2026-01-01T10:00:00.5Z x")
    assert short is not None and short % 1_000_000_000 == 500_000_000
    offset, _ = split_timestamp(b"2026-01-01T12:00:00+02:00 x")
    utc, _ = split_timestamp(b"2026-01-01T10:00:00Z x")
    assert offset == utc


def test_line_without_timestamp_uses_received_at() -> None:
    line = to_log_line("ci", "p", "c", b"no stamp here", RECEIVED, 100, correlation_key="r")
    assert line.event_time == RECEIVED and line.line == "no stamp here"
    assert line.correlation_key == "r"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    line = to_log_line("ci", "p", "c", b"2026-01-01T10:00:00Z a\xff\xfeb\xc3", RECEIVED, 100)
    assert line.line == "a\ufffd\ufffdb\ufffd"


def test_long_line_is_cut_at_a_character_boundary_and_flagged() -> None:
    content = "é" * 100  # two bytes each
    line = to_log_line("ci", "p", "c", b"2026-01-01T10:00:00Z " + content.encode(), RECEIVED, 51)
    assert line.truncated
    assert line.line == "é" * 25  # 50 bytes: the 26th character would straddle the limit
    exact = to_log_line("ci", "p", "c", b"x" * 51, RECEIVED, 51)
    assert not exact.truncated and len(exact.line) == 51


def test_split_lines_caps_memory_and_keeps_a_clean_final_line() -> None:
    from producers.k8s.log_lines import split_lines

    chunks = [b"ab", b"c\nde", b"f\n", b"x" * 10 + b"\n", b"tail"]
    assert list(split_lines(chunks, 4)) == [b"abc", b"def", b"xxxx", b"tail"]


def test_split_lines_drops_a_partial_line_when_the_stream_breaks() -> None:
    from producers.k8s.log_lines import split_lines

    def broken() -> Iterator[bytes]:
        yield b"whole\npart"
        raise OSError("connection reset")

    got: list[bytes] = []
    with pytest.raises(OSError):
        got.extend(split_lines(broken(), 100))
    assert got == [b"whole"]


def test_resume_point_skips_exactly_what_was_sent() -> None:
    from producers.k8s.log_lines import ResumePoint

    resume = ResumePoint()
    assert resume.since_time() is None
    resume.new_stream()
    assert [resume.admit(t) for t in (5, 7, 7)] == [True, True, True]
    # Reconnect: the server repeats from the start of that second.
    resume.new_stream()
    assert [resume.admit(t) for t in (5, 7, 7, 7, 9)] == [False, False, False, True, True]
    resume.new_stream()
    assert [resume.admit(t) for t in (7, 7, 7, 9, 9)] == [False, False, False, False, True]
    assert resume.admit(None) is True  # no timestamp: cannot tell, so send


def test_resume_since_time_is_the_second_of_the_last_line() -> None:
    from producers.k8s.log_lines import ResumePoint, split_timestamp

    resume = ResumePoint()
    ts, _ = split_timestamp(b"2026-01-01T10:00:07.999999999Z x")
    resume.admit(ts)
    assert resume.since_time() == "2026-01-01T10:00:07Z"
