"""Pure normalisation of container log lines into `LogLine`s (no I/O, no kubernetes client).

Input is one line as the API server sends it with ``timestamps=true``: an RFC3339Nano timestamp,
a space, then the bytes the container wrote (not necessarily UTF-8). Shared by the live log
streamer (`producers.k8s.log_stream`) and capture replay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from schemas.keys import stream_key
from schemas.messages import LogLine

# Kubelet writes 2024-05-01T10:00:00.123456789Z; other runtimes trim zeros or use an offset.
_TS = re.compile(
    rb"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}) "
)


def split_timestamp(raw: bytes) -> tuple[int | None, bytes]:
    """(nanoseconds since the epoch, rest of the line) or (None, raw) without a timestamp."""
    match = _TS.match(raw)
    if match is None:
        return None, raw
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7) or b""
    zone = match.group(8)
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None, raw
    seconds = int(moment.timestamp())
    if zone not in (b"Z",):
        sign = 1 if zone[:1] == b"+" else -1
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= sign * offset
    nanos = int(fraction.ljust(9, b"0")) if fraction else 0
    return seconds * 1_000_000_000 + nanos, raw[match.end() :]


def ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


def _cut(content: bytes, limit: int) -> bytes:
    """`content` cut to at most `limit` bytes, not inside a UTF-8 sequence."""
    cut = limit
    # content[cut] is the first byte dropped: if it continues a sequence, drop its start too.
    for _ in range(3):
        if cut > 0 and (content[cut] & 0xC0) == 0x80:
            cut -= 1
    if (content[cut] & 0xC0) == 0x80:  # no sequence start within reach: not UTF-8 anyway
        cut = limit
    return content[:cut]


def to_log_line(
    namespace: str,
    pod: str,
    container: str,
    raw: bytes,
    received_at: datetime,
    max_line_bytes: int,
    correlation_key: str | None = None,
) -> LogLine:
    """One `LogLine`: event time from the timestamp prefix (else `received_at`), content longer
    than `max_line_bytes` cut and flagged `truncated`, invalid UTF-8 replaced (U+FFFD)."""
    ts_ns, content = split_timestamp(raw)
    content = content.rstrip(b"\r\n")
    truncated = len(content) > max_line_bytes
    if truncated:
        content = _cut(content, max_line_bytes)
    return LogLine(
        namespace=namespace,
        pod=pod,
        container=container,
        line=content.decode("utf-8", errors="replace"),
        truncated=truncated,
        correlation_key=correlation_key,
        event_time=ns_to_datetime(ts_ns) if ts_ns is not None else received_at,
        received_at=received_at,
    )


def log_key(line: LogLine) -> str:
    """The topic key: ``namespace/pod/container`` (order holds per container stream), as the
    consumers check it (`schemas.keys`)."""
    return stream_key(line.namespace, line.pod, line.container)


def split_lines(chunks: Iterable[bytes], cap: int) -> Iterator[bytes]:
    """Lines (without their newline) from a byte stream, each cut to at most `cap` bytes.

    Memory stays O(`cap`) however long a line is: past the cap, bytes are dropped until the
    next newline. A last line without a newline is yielded only when the stream ends cleanly
    (when the stream breaks, it is read again in full after resuming).
    """
    buffer = bytearray()
    for chunk in chunks:
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline == -1 else newline
            room = cap - len(buffer)
            if room > 0:
                buffer += chunk[start : min(end, start + room)]
            if newline == -1:
                break
            yield bytes(buffer)
            buffer.clear()
            start = newline + 1
    if buffer:
        yield bytes(buffer)


class ResumePoint:
    """Where a container's log stream was left, to resume after a disconnect without duplicates.

    It holds the newest line timestamp sent (nanoseconds) and how many lines sent carried it
    (a burst can share one timestamp). A resumed stream asks for lines since that second
    (kube-apiserver passes sinceTime on with second precision) and `admit` skips what was sent.
    """

    def __init__(self, ts_ns: int | None = None, count_at_ts: int = 0) -> None:
        self.ts_ns = ts_ns
        self.count_at_ts = count_at_ts
        self._seen_at_ts = 0

    def since_time(self) -> str | None:
        if self.ts_ns is None:
            return None
        return ns_to_datetime(self.ts_ns).strftime("%Y-%m-%dT%H:%M:%SZ")

    def new_stream(self) -> None:
        self._seen_at_ts = 0

    def admit(self, ts_ns: int | None) -> bool:
        """True when a line with this timestamp was not sent yet (and record it as sent)."""
        if ts_ns is None:
            return True  # no timestamp, nothing to compare: better twice than never
        if self.ts_ns is None or ts_ns > self.ts_ns:
            self.ts_ns, self.count_at_ts, self._seen_at_ts = ts_ns, 1, 1
            return True
        if ts_ns < self.ts_ns:
            return False
        self._seen_at_ts += 1
        if self._seen_at_ts <= self.count_at_ts:
            return False
        self.count_at_ts += 1
        return True
