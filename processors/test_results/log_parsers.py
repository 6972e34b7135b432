"""Test results from console logs (pure: no Faust, no Kafka, no I/O).

`TestLogParser` reads one container stream's lines in order and returns `TestResult`s as soon as
each is complete; `finish()` flushes what is still pending at the end of the stream. JUnit XML
reports are read by `processors.test_results.junit_xml`.

Formats (auto-detected from strong markers, or forced with ``source_hint``)
    pytest      ``-v`` lines ``path.py::Class::test[id] PASSED [ 50%]`` (and the xdist form
                ``[gw0] [ 50%] PASSED path::test``). Results wait for the end of the session
                (``=== 1 failed, 2 passed in 0.1s ===``) so that durations from ``--durations``
                and failure messages from the short test summary can be attached. Suite is the
                dotted module path plus classes, as pytest's ``--junitxml`` classname, so the same
                test has the same identity in logs and XML. A ``RERUN`` line is a failed attempt.
    go          ``go test -v``: ``--- PASS: TestX (0.01s)``, subtests ``TestX/sub``. Results wait
                for the package line (``ok  pkg 0.1s`` / ``FAIL pkg 0.1s``) that names the suite;
                a test that started but never reported (panic, timeout) fails at that line.
    surefire    Maven Surefire console, 2.x (``testBar(com.acme.FooTest)  Time elapsed: 0.01 sec``)
                and 3.x (``com.acme.FooTest.testBar -- Time elapsed: 0.01 s``). The failure
                message is the exception line that follows.
    jest        default reporter: ``PASS``/``FAIL`` file headers, ``✓ ✕ ○ ✎`` test lines with
                ``--verbose`` (describe nesting by indentation), and ``●`` failure blocks.

Every repetition of the same (suite, name) in one parser is the next attempt, whatever caused it
(pytest-rerunfailures, ``go test -count``, a tool run twice in one container).

Known gaps
    * Surefire prints passing tests by name only with ``reportFormat=plain``; otherwise they are
      not reported (their class summary only counts them). Jest without ``--verbose`` names only
      its failures. pytest without ``-v`` names only what its short summary lists.
    * pytest ``-s`` output that splits a verbose line, ``go test -json``, Jest retry attempts.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from processors.test_results.cases import (
    EPOCH,
    Attempts,
    Case,
    aware,
    parse_seconds,
    short_message,
)
from schemas.messages import LogLine, TestResult, TestStatus

Framework = Literal["pytest", "go", "surefire", "jest"]
SOURCES: dict[Framework, str] = {
    "pytest": "pytest-log",
    "go": "go-log",
    "surefire": "surefire-log",
    "jest": "jest-log",
}
MAX_LINE_CHARS = 8192  # longer lines are cut: no test line is that long, and regexes stay cheap


# ---------------------------------------------------------------------------------------------
# Line normalisation

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CI_PREFIX = re.compile(
    r"^(?:##\[(?:group|endgroup|error|warning|debug|notice|section)\]|::group::)"
)
_LEVEL_PREFIX = re.compile(r"^\[(?:INFO|ERROR|WARNING|WARN|DEBUG)\] ?")


def clean_line(raw: str) -> str:
    """The text a terminal would show: no colour codes, CI group markers or Maven level tags."""
    text = raw[:MAX_LINE_CHARS]
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "\r" in text:  # a carriage return overwrites the line: keep what was written last
        parts = [part for part in text.split("\r") if part.strip()]
        text = parts[-1] if parts else ""
    text = text.rstrip("\n")
    text = _CI_PREFIX.sub("", text)
    return _LEVEL_PREFIX.sub("", text)


# ---------------------------------------------------------------------------------------------
# Per-framework state machines. Each takes cleaned lines and returns finished `Case`s.


class _FormatParser(ABC):
    framework: Framework

    @abstractmethod
    def feed(self, line: str, at: datetime) -> list[Case]: ...

    def finish(self) -> list[Case]:
        return []


_PYTEST_STATUSES = "PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS|RERUN"
_PYTEST_VERBOSE = re.compile(
    rf"^(?P<nodeid>[^\s:][^:]*::.+?) (?P<status>{_PYTEST_STATUSES})"
    r"(?: \(.*\))?(?:\s+\[\s*\d+%\])?\s*$"
)
_PYTEST_XDIST = re.compile(
    rf"^\[gw\d+\] \[\s*\d+%\] (?P<status>{_PYTEST_STATUSES}) (?P<nodeid>[^\s:][^:]*::.+?)\s*$"
)
_PYTEST_SECTION = re.compile(r"^=+ (?P<title>.+?) =+$")
_PYTEST_SESSION_END = re.compile(r"^=+ .*\bin [\d.]+s\b.* =+$")
_PYTEST_DURATION = re.compile(
    r"^(?P<secs>\d+(?:\.\d+)?)s (?:call|setup|teardown)\s+(?P<nodeid>\S.*?)\s*$"
)
_PYTEST_SUMMARY = re.compile(rf"^(?P<status>{_PYTEST_STATUSES}) (?P<rest>\S.*)$")
_PYTEST_STATUS_MAP = {
    "PASSED": TestStatus.PASSED,
    "XPASS": TestStatus.PASSED,
    "FAILED": TestStatus.FAILED,
    "RERUN": TestStatus.FAILED,
    "SKIPPED": TestStatus.SKIPPED,
    "XFAIL": TestStatus.SKIPPED,
    "ERROR": TestStatus.ERROR,
}


def pytest_suite_and_name(nodeid: str) -> tuple[str | None, str]:
    """``tests/a/test_x.py::TestC::test_m[1]`` -> (``tests.a.test_x.TestC``, ``test_m[1]``)."""
    parts = nodeid.split("::")
    if len(parts) == 1:  # a collection error names the file only
        return _module_path(nodeid), nodeid
    module = _module_path(parts[0])
    suite = ".".join([module, *parts[1:-1]]) if module else ".".join(parts[1:-1]) or None
    return suite, parts[-1]


def _module_path(path: str) -> str:
    path = path.replace("\\", "/")
    if path.endswith(".py"):
        path = path[:-3]
    return path.strip("/").replace("/", ".")


class _PytestParser(_FormatParser):
    framework: Framework = "pytest"

    def __init__(self) -> None:
        self._pending: list[tuple[str, Case]] = []
        self._section = ""

    def feed(self, line: str, at: datetime) -> list[Case]:
        stripped = line.strip()
        if _PYTEST_SESSION_END.match(stripped):
            self._section = ""
            return self.finish()
        section = _PYTEST_SECTION.match(stripped)
        if section:
            self._section = section.group("title").lower()
            return []
        if "durations" in self._section:
            self._add_duration(stripped)
            return []
        if "short test summary" in self._section:
            self._summary_line(stripped, at)
            return []
        match = _PYTEST_VERBOSE.match(stripped) or _PYTEST_XDIST.match(stripped)
        if match:
            self._outcome(match.group("nodeid"), match.group("status"), at)
        return []

    def finish(self) -> list[Case]:
        cases = [case for _, case in self._pending]
        self._pending = []
        return cases

    def _outcome(self, nodeid: str, word: str, at: datetime) -> None:
        status = _PYTEST_STATUS_MAP[word]
        last = self._last(nodeid)
        if last is not None and word == "ERROR" and last.status is TestStatus.PASSED:
            last.status = TestStatus.ERROR  # passed, then its teardown failed: one test, an error
            return
        suite, name = pytest_suite_and_name(nodeid)
        self._pending.append((nodeid, Case(suite, name, status, at)))

    def _last(self, nodeid: str) -> Case | None:
        for pending_id, case in reversed(self._pending):
            if pending_id == nodeid:
                return case
        return None

    def _add_duration(self, line: str) -> None:
        match = _PYTEST_DURATION.match(line)
        if not match:
            return
        case = self._last(match.group("nodeid"))
        if case is not None:
            case.duration_s = round((case.duration_s or 0.0) + float(match.group("secs")), 6)

    def _summary_line(self, line: str, at: datetime) -> None:
        match = _PYTEST_SUMMARY.match(line)
        if not match or match.group("status") == "SKIPPED":  # skips name a location, not a test
            return
        rest = match.group("rest")
        nodeid, message = self._split_summary(rest)
        case = self._last(nodeid)
        if case is None:  # not seen in verbose lines (pytest without -v): the summary names it
            self._outcome(nodeid, match.group("status"), at)
            case = self._last(nodeid)
        if case is not None and case.status is not TestStatus.PASSED and message:
            case.message = short_message(message)

    def _split_summary(self, rest: str) -> tuple[str, str | None]:
        for nodeid, _ in reversed(self._pending):
            if rest == nodeid:
                return nodeid, None
            if rest.startswith(nodeid + " - "):
                return nodeid, rest[len(nodeid) + 3 :]
        nodeid, sep, message = rest.partition(" - ")
        return nodeid, (message if sep else None)


_GO_RESULT = re.compile(
    r"^\s*--- (?P<status>PASS|FAIL|SKIP): (?P<name>\S+) \((?P<secs>\d+(?:\.\d+)?)s\)\s*$"
)
_GO_RUN = re.compile(r"^=== (?P<verb>RUN|CONT|NAME|PAUSE)\s+(?P<name>\S+)\s*$")
_GO_NOISE = re.compile(r"^(?:PASS|FAIL|exit status \d+|coverage: .*|testing: warning: .*)$")
_GO_PKG_OK = re.compile(r"^ok\s+(?P<pkg>\S+)\s+(?:\d+(?:\.\d+)?s|\(cached\))")
_GO_PKG_FAIL = re.compile(r"^FAIL\s+(?P<pkg>\S+)\s+(?:\d+(?:\.\d+)?s|\[[^\]]*\])")
_GO_STATUS_MAP = {"PASS": TestStatus.PASSED, "FAIL": TestStatus.FAILED, "SKIP": TestStatus.SKIPPED}
_GO_OUTPUT_LINES = 5


class _GoParser(_FormatParser):
    framework: Framework = "go"

    def __init__(self) -> None:
        self._done: list[Case] = []
        self._running: dict[str, Case] = {}  # started, no result line yet
        self._owner: Case | None = None  # the test that output lines belong to
        self._panic: str | None = None

    def feed(self, line: str, at: datetime) -> list[Case]:
        result = _GO_RESULT.match(line)
        if result:
            self._result(result.group("name"), result.group("status"), result, at)
            return []
        run = _GO_RUN.match(line)
        if run:
            name = run.group("name")
            if run.group("verb") == "RUN":
                self._running[name] = Case(None, name, TestStatus.FAILED, at)
            self._owner = self._running.get(name, self._owner)
            return []
        package = _GO_PKG_OK.match(line) or _GO_PKG_FAIL.match(line)
        if package:
            return self._package_done(package.group("pkg"), at)
        if line.startswith("panic: ") and self._panic is None:
            self._panic = line
        elif self._owner is not None and self._is_output(line) and len(self._owner.output) < 50:
            self._owner.output.append(line.strip())
        return []

    def finish(self) -> list[Case]:
        return self._package_done(None, None)

    @staticmethod
    def _is_output(line: str) -> bool:
        return bool(line.strip()) and _GO_NOISE.match(line.strip()) is None

    def _result(self, name: str, word: str, match: re.Match[str], at: datetime) -> None:
        case = self._running.pop(name, None) or Case(None, name, TestStatus.PASSED, at)
        case.status = _GO_STATUS_MAP[word]
        case.duration_s = float(match.group("secs"))
        case.event_time = at
        self._done.append(case)
        self._owner = case  # older Go prints a test's output after its result line

    def _package_done(self, package: str | None, at: datetime | None) -> list[Case]:
        for case in self._running.values():  # started, never reported: panic or timeout
            case.status = TestStatus.FAILED
            case.message = self._panic or "no result line (panic, timeout or killed?)"
            case.event_time = at or case.event_time
            self._done.append(case)
        cases = self._done
        for case in cases:
            case.suite = package
            if case.status is not TestStatus.PASSED and case.message is None:
                case.message = short_message("\n".join(case.output[:_GO_OUTPUT_LINES]))
            case.output = []
        self._done, self._running, self._owner, self._panic = [], {}, None, None
        return cases


_SUREFIRE_CLASS = re.compile(r"^Running (?P<cls>[A-Za-z_$][\w$]*(?:\.[\w$]+)*)\s*$")
_SUREFIRE_TEST = re.compile(
    r"^(?P<id>\S.*?)\s+(?:--\s+)?Time elapsed: (?P<secs>[\d.,]+) s(?:ec)?\b"
    r"(?:\s+<<< (?P<kind>FAILURE|ERROR|SKIPPED)!)?\s*$"
)
_SUREFIRE_OLD_ID = re.compile(r"^(?P<method>.+?)\((?P<cls>[\w.$]+)\)$")
_SUREFIRE_KIND = {
    None: TestStatus.PASSED,
    "FAILURE": TestStatus.FAILED,
    "ERROR": TestStatus.ERROR,
    "SKIPPED": TestStatus.SKIPPED,
}


class _SurefireParser(_FormatParser):
    framework: Framework = "surefire"

    def __init__(self) -> None:
        self._class: str | None = None
        self._awaiting_message: Case | None = None

    def feed(self, line: str, at: datetime) -> list[Case]:
        stripped = line.strip()
        out: list[Case] = []
        if self._awaiting_message is not None:
            case, self._awaiting_message = self._awaiting_message, None
            if stripped and not _is_surefire_structure(stripped):
                case.message = short_message(stripped)
                return [case]
            out.append(case)
        running = _SUREFIRE_CLASS.match(stripped)
        if running:
            self._class = running.group("cls")
            return out
        test = _SUREFIRE_TEST.match(stripped)
        if test and not stripped.startswith("Tests run:"):
            suite, name = self._identify(test.group("id"))
            status = _SUREFIRE_KIND[test.group("kind")]
            case = Case(suite, name, status, at, parse_seconds(test.group("secs")))
            if status in (TestStatus.FAILED, TestStatus.ERROR):
                self._awaiting_message = case
            else:
                out.append(case)
        return out

    def finish(self) -> list[Case]:
        case, self._awaiting_message = self._awaiting_message, None
        return [case] if case else []

    def _identify(self, test_id: str) -> tuple[str | None, str]:
        old = _SUREFIRE_OLD_ID.match(test_id)
        if old:  # Surefire 2.x: method(fully.qualified.Class)
            return old.group("cls"), old.group("method")
        if self._class and test_id.startswith(self._class + "."):
            return self._class, test_id[len(self._class) + 1 :]
        cls, dot, method = test_id.rpartition(".")
        return (cls, method) if dot and cls else (self._class, test_id)


def _is_surefire_structure(line: str) -> bool:
    return (
        line.startswith(("Tests run:", "Running ", "Results", "at "))
        or _SUREFIRE_TEST.match(line) is not None
    )


_JEST_FILE = re.compile(
    r"^\s*(?P<status>PASS|FAIL)\s+(?:\S+\s+)?"  # a project's displayName may come first
    r"(?P<file>\S+\.(?:[cm]?[jt]sx?|vue|svelte))(?:\s+\(.*\))?\s*$"
)
_JEST_TEST = re.compile(
    r"^(?P<indent> *)(?P<sym>[✓✕○✎√\u00d7]) (?P<name>.*?)"
    r"(?: \((?P<amount>\d+(?:\.\d+)?) ?(?P<unit>ms|s)\))?\s*$"
)
_JEST_FAILURE = re.compile(r"^\s*● (?P<title>.+?)\s*$")
_JEST_SUMMARY = re.compile(r"^(?:Test Suites|Tests|Snapshots|Time|Ran all test suites)\b")
_JEST_SYMBOLS = {
    "✓": TestStatus.PASSED,
    "√": TestStatus.PASSED,
    "✕": TestStatus.FAILED,
    "\u00d7": TestStatus.FAILED,  # multiplication sign: the Windows fallback of ✕
    "○": TestStatus.SKIPPED,
    "✎": TestStatus.SKIPPED,
}
_JEST_PATH_SEP = " \u203a "  # single right-pointing angle quotation mark


class _JestParser(_FormatParser):
    framework: Framework = "jest"

    def __init__(self) -> None:
        self._file: str | None = None
        self._describe: list[tuple[int, str]] = []  # (indent, title), innermost last
        self._cases: list[tuple[str, Case]] = []  # (full title, case) of the current file
        self._message_for: Case | None = None
        self._in_failures = False
        self._in_console = False  # a "● Console" block of captured console.log output

    def feed(self, line: str, at: datetime) -> list[Case]:
        header = _JEST_FILE.match(line)
        if header:
            out = self.finish()
            self._file = header.group("file")
            return out
        if _JEST_SUMMARY.match(line):
            return self.finish()
        if self._file is None:
            return []
        failure = _JEST_FAILURE.match(line)
        if failure:
            self._failure_block(failure.group("title"), at)
            return []
        if self._in_console:
            indent = len(line) - len(line.lstrip(" "))
            if not line.strip() or indent > 2:
                return []
            self._in_console = False
        if self._message_for is not None:
            if line.strip():
                self._message_for.message = short_message(line)
                self._message_for = None
            return []
        if not self._in_failures:
            self._listing_line(line, at)
        return []

    def finish(self) -> list[Case]:
        cases = [case for _, case in self._cases]
        self._file, self._describe, self._cases = None, [], []
        self._message_for, self._in_failures, self._in_console = None, False, False
        return cases

    def _listing_line(self, line: str, at: datetime) -> None:
        if not line.strip():
            return
        indent = len(line) - len(line.lstrip(" "))
        while self._describe and self._describe[-1][0] >= indent:
            self._describe.pop()
        test = _JEST_TEST.match(line)
        if test is None:
            self._describe.append((indent, line.strip()))
            return
        status = _JEST_SYMBOLS[test.group("sym")]
        name = test.group("name")
        if test.group("sym") in "○✎":
            for word in ("skipped ", "todo "):
                name = name.removeprefix(word)
        path = [title for _, title in self._describe]
        amount = test.group("amount")
        duration = None
        if amount is not None:
            duration = float(amount) / (1000.0 if test.group("unit") == "ms" else 1.0)
        case = Case(self._suite(path), name, status, at, duration)
        self._cases.append((_JEST_PATH_SEP.join([*path, name]), case))

    def _failure_block(self, title: str, at: datetime) -> None:
        self._message_for = None
        if title == "Console":
            self._in_console = not self._in_failures
            return
        self._in_failures = True
        for full_title, case in self._cases:
            if full_title == title and case.status is TestStatus.FAILED and not case.message:
                self._message_for = case
                return
        parts = title.split(_JEST_PATH_SEP)
        status = TestStatus.ERROR if title == "Test suite failed to run" else TestStatus.FAILED
        case = Case(self._suite(parts[:-1]), parts[-1], status, at)
        self._cases.append((title, case))
        self._message_for = case

    def _suite(self, describe_path: list[str]) -> str | None:
        return _JEST_PATH_SEP.join([self._file or "", *describe_path]) or None


_DETECTORS: list[tuple[Framework, re.Pattern[str]]] = [
    ("pytest", re.compile(r"^=+ test session starts =+$")),
    ("pytest", _PYTEST_VERBOSE),
    ("pytest", _PYTEST_XDIST),
    ("go", re.compile(r"^=== RUN\s+\S+\s*$")),
    ("go", _GO_RESULT),
    ("surefire", re.compile(r"^\s*T E S T S\s*$")),
    ("surefire", re.compile(r"^Tests run: \d+, Failures: \d+, Errors: \d+, Skipped: \d+")),
    ("jest", _JEST_FILE),
]
_FACTORIES: dict[Framework, type[_FormatParser]] = {
    "pytest": _PytestParser,
    "go": _GoParser,
    "surefire": _SurefireParser,
    "jest": _JestParser,
}
_HINTS: dict[str, Framework] = {
    **{name: name for name in _FACTORIES},
    **{source: framework for framework, source in SOURCES.items()},
    "gotest": "go",
    "maven": "surefire",
    "junit": "surefire",
}


def detect_framework(line: str) -> Framework | None:
    """The framework a cleaned line unmistakably comes from, if any."""
    for framework, pattern in _DETECTORS:
        if pattern.match(line):
            return framework
    return None


class TestLogParser:
    """Test results from one container stream's log lines, fed in order.

    ``source_hint`` ("pytest", "go", "surefire", "jest" or a source name) fixes the framework;
    without it the first unmistakable line decides, and a later unmistakable line of another
    framework switches (finishing the current one), as when one job runs two test tools.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, run_id: str, source_hint: str | None = None) -> None:
        self.run_id = run_id
        self._fixed = _HINTS.get((source_hint or "").strip().lower())
        self._parser: _FormatParser | None = _FACTORIES[self._fixed]() if self._fixed else None
        self._attempts = Attempts()
        self._last_time: datetime | None = None

    @property
    def framework(self) -> Framework | None:
        return self._parser.framework if self._parser else None

    def feed(self, line: LogLine | str, event_time: datetime | None = None) -> list[TestResult]:
        """Results completed by this line (often none: many formats conclude later)."""
        given: datetime | None = event_time
        if isinstance(line, LogLine):
            text, given = line.line, event_time or line.event_time
        else:
            text = str(line)
        at = aware(given) if given is not None else (self._last_time or EPOCH)
        self._last_time = at
        results: list[TestResult] = []
        for part in text.split("\n"):  # a chunk of several lines is read as those lines
            results.extend(self._feed_line(clean_line(part), at))
        return results

    def _feed_line(self, cleaned: str, at: datetime) -> list[TestResult]:
        results: list[TestResult] = []
        if self._fixed is None:
            detected = detect_framework(cleaned)
            if detected is not None and detected != self.framework:
                results.extend(self.finish())  # another tool starts: the previous one is done
                self._parser = _FACTORIES[detected]()
        if self._parser is not None:
            results.extend(self._results(self._parser.feed(cleaned, at)))
        return results

    def feed_many(
        self, lines: Iterable[LogLine | str], event_time: datetime | None = None
    ) -> list[TestResult]:
        results: list[TestResult] = []
        for line in lines:
            results.extend(self.feed(line, event_time))
        return results

    def finish(self) -> list[TestResult]:
        """Results still pending at the end of the stream (they stay pending until called)."""
        return self._results(self._parser.finish() if self._parser else [])

    def _results(self, cases: list[Case]) -> list[TestResult]:
        if not cases or self._parser is None:
            return []
        source = SOURCES[self._parser.framework]
        return [
            TestResult(
                run_id=self.run_id,
                suite=case.suite,
                name=case.name,
                status=case.status,
                duration_s=case.duration_s,
                attempt=self._attempts.next(case.suite, case.name),
                message=case.message,
                source=source,
                event_time=case.event_time,
            )
            for case in cases
        ]
