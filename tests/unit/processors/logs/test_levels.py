"""Level detection and stack-trace folding (processors.logs.levels)."""

from __future__ import annotations

import pytest

from processors.logs.levels import StackTraceFolder, detect_level


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("ERROR something broke", "error"),
        ("2024-01-01 12:00:00,123 WARN [main] x.Y: careful", "warning"),
        ("[warn] disk low", "warning"),
        ("<debug> hi", "debug"),
        ("E0102 15:04:05.123456       1 main.go:12] bad", "error"),
        ("I0102 15:04:05.123456       1 main.go:12] ok", "info"),
        ("F0102 15:04:05.123456       1 main.go:12] dead", "fatal"),
        ('ts=2024-01-01 level=error msg="x"', "error"),
        ("time=1 lvl=WARN msg=y", "warning"),
        ('{"level":"error","msg":"x"}', "error"),
        ('{"severity":"WARNING","message":"y"}', "warning"),
        ('{"level":30,"msg":"pino"}', "info"),
        ('{"msg":"no level"}', None),
        ("Traceback (most recent call last):", "error"),
        ('  File "x.py", line 3, in <module>', "error"),
        ('Exception in thread "main" java.lang.IllegalStateException: x', "error"),
        ("\tat com.acme.Foo.bar(Foo.java:12)", "error"),
        ("Caused by: java.io.IOException: gone", "error"),
        ("\t... 12 more", "error"),
        ("Error: Process completed with exit code 1.", "error"),
        ("2024-01-01 12:00:00 info starting", "info"),
        ("SEVERE: container failed", "error"),
        ("CRITICAL out of memory", "fatal"),
        ("no errors found", None),
        ("all tests passed", None),
        ("", None),
    ],
)
def test_detect_level(line: str, level: str | None) -> None:
    assert detect_level(line) == level


def _fold(lines: list[str]) -> list[list[str]]:
    folder = StackTraceFolder()
    events = []
    for line in lines:
        events.extend(folder.feed(line))
    events.extend(folder.flush())
    return [e.lines for e in events]


def test_python_traceback_folds_into_logged_message() -> None:
    lines = [
        "ERROR worker crashed",
        "Traceback (most recent call last):",
        '  File "a.py", line 1, in <module>',
        "    main()",
        "ValueError: bad",
        "INFO next",
    ]
    assert _fold(lines) == [lines[:5], lines[5:]]


def test_chained_python_traceback_stays_one_event() -> None:
    lines = [
        "Traceback (most recent call last):",
        '  File "a.py", line 1, in f',
        "KeyError: 'x'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "a.py", line 3, in g',
        "RuntimeError: wrapped",
        "",
        "next line",
    ]
    folded = _fold(lines)
    assert folded == [lines[:9], ["next line"]]


def test_java_trace_folds_frames_causes_and_more() -> None:
    lines = [
        "2024-01-01 12:00:00 ERROR [main] com.acme.App: request failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.acme.App.run(App.java:10)",
        "\tat com.acme.App.main(App.java:3)",
        "Caused by: java.io.IOException: disk",
        "\tat com.acme.Io.read(Io.java:5)",
        "\t... 2 more",
        "2024-01-01 12:00:01 INFO [main] com.acme.App: retrying",
    ]
    folded = _fold(lines)
    assert folded == [lines[:7], lines[7:]]


def test_exception_in_thread_starts_an_error_event() -> None:
    folder = StackTraceFolder()
    assert folder.feed("INFO ok") == []
    done = folder.feed('Exception in thread "main" java.lang.NullPointerException')
    assert [e.lines for e in done] == [["INFO ok"]]
    assert folder.feed("\tat Foo.bar(Foo.java:1)") == []
    (event,) = folder.flush()
    assert event.level == "error"
    assert event.first_line.startswith("Exception in thread")
    assert "Foo.java" in event.text
    assert folder.flush() == []


def test_level_raised_to_error_by_folded_trace() -> None:
    folder = StackTraceFolder()
    folder.feed("something went sideways")
    folder.feed("Traceback (most recent call last):")
    folder.feed('  File "x.py", line 1, in <module>')
    folder.feed("OSError: nope")
    (event,) = folder.flush()
    assert event.level == "error"
    assert len(event.lines) == 4


def test_plain_lines_are_one_event_each() -> None:
    assert _fold(["a", "b", "  indented but no trace"]) == [
        ["a"],
        ["b"],
        ["  indented but no trace"],
    ]
