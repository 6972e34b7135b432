"""Log level detection and stack-trace folding (pure: no Faust, no Kafka, no I/O).

`detect_level(line)` returns a normalised level (``trace``, ``debug``, ``info``, ``warning``,
``error``, ``fatal``) or None. Recognised, in this order:

* JSON objects: ``{"level": "error"}``, ``"severity"``, ``"lvl"``, ``"loglevel"``, ``"log.level"``
  (string or bunyan/pino numeric levels 10..60);
* logfmt: ``level=error``, ``lvl=warn``, ``severity=ERROR`` (quoted or not);
* klog / glog headers: ``E0102 15:04:05.000000 1 file.go:12] ...`` (I, W, E, F);
* Python tracebacks (``Traceback (most recent call last):``) and Java stack traces
  (``Exception in thread "main" ...``, ``\\tat com.x.Y(Y.java:1)``, ``Caused by: ...``,
  ``... 3 more``): error, since they continue an error;
* a severity word in the first 120 characters: ``ERROR``, ``[WARN]``, ``<info>``, ``level: debug``,
  syslog names (``crit``, ``emerg``, ``notice``), Java util logging (``SEVERE``, ``FINE``).
  Upper-case words count anywhere in that window; lower- or mixed-case words only in brackets,
  at the start followed by ``:`` (``Error: ...``) or right after a timestamp-like start, so
  "no errors found" is not an error.

`StackTraceFolder` folds continuation lines (Python traceback frames and source lines, Java
``at`` frames, ``Caused by:``, ``... N more``, indented lines inside a trace) into the event
that started them: ``feed(line)`` returns the events completed by that line, ``flush()`` the
last one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LEVELS", "Event", "StackTraceFolder", "detect_level", "is_continuation"]

LEVELS = ("trace", "debug", "info", "warning", "error", "fatal")

_WORD_TO_LEVEL: dict[str, str] = {
    "trace": "trace",
    "finest": "trace",
    "finer": "trace",
    "verbose": "trace",
    "debug": "debug",
    "dbg": "debug",
    "fine": "debug",
    "config": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "warn": "warning",
    "warning": "warning",
    "wrn": "warning",
    "error": "error",
    "err": "error",
    "eror": "error",
    "severe": "error",
    "crit": "fatal",
    "critical": "fatal",
    "fatal": "fatal",
    "panic": "fatal",
    "alert": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
}
_LEVEL_KEYS = ("level", "severity", "lvl", "loglevel", "log_level", "log.level", "levelname")
_KLOG = {"I": "info", "W": "warning", "E": "error", "F": "fatal"}

_ALT = "|".join(sorted(_WORD_TO_LEVEL, key=len, reverse=True))
_LOGFMT = re.compile(
    r"(?:^|\s)(?:level|lvl|severity|loglevel|log\.level)\s*[=:]\s*\"?(?P<w>[A-Za-z]+)\"?",
    re.IGNORECASE,
)
_KLOG_RE = re.compile(r"^(?P<l>[IWEF])\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\S+:\d+\]")
_UPPER_WORD = re.compile(rf"(?<![\w.\-/])(?P<w>{_ALT.upper()})(?![\w\-/.]\w)")
_BRACKETED = re.compile(rf"[\[<(|](?P<w>{_ALT})\s*[\]>)|]", re.IGNORECASE)
_AFTER_TS = re.compile(
    rf"^\s*(?:\S*\d\S*\s+){{1,3}}(?P<w>{_ALT})\s*[:\s]",
    re.IGNORECASE,
)
_LEADING = re.compile(rf"^\s*(?P<w>{_ALT})\s*:", re.IGNORECASE)
_PY_TRACEBACK_START = "Traceback (most recent call last):"
_JAVA_START = re.compile(r"^Exception in thread \"[^\"]*\" |^\s*Caused by: ")
_JAVA_FRAME = re.compile(r"^\s+at [\w$.<>/]+\(|^\s*\.\.\. \d+ (?:more|common frames omitted)")
_PY_FRAME = re.compile(r'^\s+File "[^"]*", line \d+')
_NUMERIC_LEVELS = ((60, "fatal"), (50, "error"), (40, "warning"), (30, "info"), (20, "debug"))

_WINDOW = 120


def _norm(word: str) -> str | None:
    return _WORD_TO_LEVEL.get(word.lower())


def _from_json(line: str) -> tuple[bool, str | None]:
    try:
        obj: Any = json.loads(line)
    except ValueError:
        return False, None
    if not isinstance(obj, dict):
        return False, None
    for key in _LEVEL_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            return True, _norm(value)
        if isinstance(value, int) and not isinstance(value, bool):
            for floor, name in _NUMERIC_LEVELS:
                if value >= floor:
                    return True, name
            return True, "trace"
    return True, None


def detect_level(line: str) -> str | None:
    """Normalised level of one log line, or None when it shows none."""
    text = line.rstrip("\r\n")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        is_json, level = _from_json(stripped)
        if is_json:
            return level
    m = _LOGFMT.search(text)
    if m and _norm(m.group("w")):
        return _norm(m.group("w"))
    m = _KLOG_RE.match(stripped)
    if m:
        return _KLOG[m.group("l")]
    if is_continuation(text) or stripped.startswith(_PY_TRACEBACK_START):
        return "error"
    if _JAVA_START.match(text):
        return "error"
    window = text[:_WINDOW]
    found: list[tuple[int, str]] = []
    for regex in (_LEADING, _BRACKETED, _UPPER_WORD, _AFTER_TS):
        m = regex.search(window)
        if m:
            level = _norm(m.group("w"))
            if level:
                found.append((m.start("w"), level))
    if found:
        return min(found)[1]
    return None


def is_continuation(line: str) -> bool:
    """Does ``line`` continue a stack trace started on an earlier line?"""
    return bool(
        _JAVA_FRAME.match(line)
        or _PY_FRAME.match(line)
        or line.lstrip().startswith("Caused by: ")
        or line.startswith("During handling of the above exception")
        or line.startswith("The above exception was the direct cause")
    )


@dataclass
class Event:
    """One log event: its first line, plus the continuation lines folded into it."""

    lines: list[str] = field(default_factory=list)
    level: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def first_line(self) -> str:
        return self.lines[0] if self.lines else ""


# A Java exception line printed by a logger under its message: java.lang.IllegalStateException: x
_JAVA_EXC_LINE = re.compile(r"^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable)\b")
_PY_CHAIN = ("During handling of the above exception", "The above exception was the direct cause")


class StackTraceFolder:
    """Fold stack-trace continuation lines into the event that started them.

    Python: ``Traceback (most recent call last):`` (on its own line, or right under the message
    that logged it) opens a trace; indented frame and source lines follow, and the unindented
    ``SomeError: message`` line closes it. Chained tracebacks (``During handling of the above
    exception...``, blank lines between them) stay in the same event. Java: ``at ...`` frames,
    ``Caused by: ...``, ``... N more`` and indented lines after them are folded; so is a
    package-qualified exception line (``java.lang.IllegalStateException: x``) printed under a
    logged message. An event's level is that of its first line, raised to error when a trace
    was folded into it. Trailing blank lines are dropped from completed events.
    """

    def __init__(self) -> None:
        self._current: Event | None = None
        self._mode: str | None = None  # "py", "py_end" (after the exception line), "java"

    def _start(self, line: str) -> list[Event]:
        done = self.flush()
        self._current = Event([line], detect_level(line))
        if line.lstrip().startswith(_PY_TRACEBACK_START):
            self._mode = "py"
        elif _JAVA_START.match(line) or _JAVA_EXC_LINE.match(line):
            self._mode = "java"
        else:
            self._mode = None
        return done

    def _fold(self, line: str, mode: str | None) -> list[Event]:
        assert self._current is not None
        self._current.lines.append(line)
        self._mode = mode
        if line.strip() and self._current.level not in ("error", "fatal"):
            self._current.level = "error"
        return []

    def feed(self, line: str) -> list[Event]:
        """Add one line; return the events it completed (zero or one)."""
        line = line.rstrip("\r\n")
        if self._current is None:
            return self._start(line)
        indented = line[:1] in (" ", "\t")
        if line.lstrip().startswith(_PY_TRACEBACK_START):
            return self._fold(line, "py")
        if self._mode == "py":
            if indented or not line.strip():
                return self._fold(line, "py")
            return self._fold(line, "py_end")  # the exception line ends the traceback
        if self._mode == "py_end" and (not line.strip() or line.startswith(_PY_CHAIN)):
            return self._fold(line, "py_end")
        if is_continuation(line):
            return self._fold(line, "py" if _PY_FRAME.match(line) else "java")
        if self._mode == "java" and indented:
            return self._fold(line, "java")
        if self._mode is None and _JAVA_EXC_LINE.match(line):
            return self._fold(line, "java")
        return self._start(line)

    def flush(self) -> list[Event]:
        """Return the pending event, if any (end of stream)."""
        if self._current is None:
            return []
        event = self._current
        while len(event.lines) > 1 and not event.lines[-1].strip():
            event.lines.pop()
        self._current = None
        self._mode = None
        return [event]


# Which lines go on to the log detectors: the run tracker's filter, and warm start's.
_CONTINUATION = re.compile(
    r"^(?:\s|Traceback \(|Caused by:|\.\.\. \d+ more|[\w.$]+(?:Error|Exception)\b)"
)
_ANALYSED_LEVELS = frozenset({"warning", "error", "fatal"})


def worth_analysing(text: str) -> bool:
    """Lines the log detectors need: warnings and errors, and what may continue a stack trace.
    Plain info/debug lines are not sent on (they are most of a log and carry no finding)."""
    return bool(_CONTINUATION.match(text)) or detect_level(text) in _ANALYSED_LEVELS
