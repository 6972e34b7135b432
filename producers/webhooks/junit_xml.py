"""Test results from uploaded JUnit XML reports (pure: no I/O; the bytes are given).

`parse_junit_xml` reads every ``<testcase>`` of a report written by pytest, Surefire,
go-junit-report or jest-junit, refusing DTDs (no entity expansion, no external entities).
It lives with the upload endpoint, as the other input formats live with their receivers; test
results read from *logs* are the worker's (`processors.test_results`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import NamedTuple
from xml.etree import ElementTree
from xml.parsers import expat

from schemas.messages import TestResult, TestStatus

JUNIT_SOURCE = "junit-xml"
DEFAULT_MAX_XML_BYTES = 20 * 1024 * 1024
MAX_MESSAGE_CHARS = 1000


class _Case(NamedTuple):
    suite: str | None
    name: str
    status: TestStatus
    duration_s: float | None = None
    message: str | None = None


class JUnitXmlError(ValueError):
    """The document is not acceptable JUnit XML; the message says why (and where, if known)."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(f"{where}{reason}")


class _Forbidden(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _forbid(reason: str) -> Callable[..., None]:
    def handler(*_: object) -> None:
        raise _Forbidden(reason)

    return handler


def _refuse_external_entity(
    context: str, base: str | None, system_id: str | None, public_id: str | None
) -> int:
    raise _Forbidden("external entities are not allowed")


def _parse_xml(data: bytes) -> ElementTree.Element:
    """Expat straight into an ElementTree, refusing any DTD.

    JUnit reports never need a DOCTYPE; refusing it at its first byte rules out entity expansion
    bombs and external entities (file or network reads) before expat processes any declaration.
    That is what defusedxml does, in a dozen lines, so no dependency is added for it.
    """
    builder = ElementTree.TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _forbid("DOCTYPE declarations are not allowed")
    parser.EntityDeclHandler = _forbid("ENTITY declarations are not allowed")
    parser.UnparsedEntityDeclHandler = _forbid("ENTITY declarations are not allowed")
    parser.ExternalEntityRefHandler = _refuse_external_entity
    parser.StartElementHandler = lambda tag, attrs: builder.start(tag, dict(attrs))
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        raise JUnitXmlError(
            expat.ErrorString(error.code) or "malformed XML", error.lineno, error.offset
        ) from None
    except (LookupError, UnicodeError) as error:  # an encoding declaration Python cannot read
        raise JUnitXmlError(
            str(error), parser.CurrentLineNumber, parser.CurrentColumnNumber
        ) from None
    except _Forbidden as error:
        raise JUnitXmlError(
            error.reason, parser.CurrentLineNumber, parser.CurrentColumnNumber
        ) from None
    return builder.close()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def parse_junit_xml(
    data: bytes,
    run_id: str,
    event_time: datetime,
    *,
    max_bytes: int = DEFAULT_MAX_XML_BYTES,
) -> list[TestResult]:
    """Every ``<testcase>`` of a JUnit XML report (pytest, Surefire, go-junit-report, jest-junit).

    Raises `JUnitXmlError` for documents over ``max_bytes``, malformed XML (with line and column),
    DTDs and a root that is not ``<testsuites>``/``<testsuite>``. Surefire's ``flakyFailure`` /
    ``rerunFailure`` children become the earlier attempts of their test.
    """
    if len(data) > max_bytes:
        raise JUnitXmlError(f"document is {len(data)} bytes, over the limit of {max_bytes}")
    root = _parse_xml(data)
    if _local(root.tag) not in ("testsuites", "testsuite"):
        raise JUnitXmlError(f"root element is <{root.tag}>, expected <testsuites> or <testsuite>")
    at = event_time if event_time.tzinfo is not None else event_time.replace(tzinfo=UTC)
    attempts: Counter[tuple[str | None, str]] = Counter()
    results: list[TestResult] = []
    for case in _junit_cases(root):
        # The same (suite, name) again is its next attempt (reruns, flaky reports).
        attempts[(case.suite, case.name)] += 1
        attempt = attempts[(case.suite, case.name)]
        results.append(
            TestResult(
                run_id=run_id,
                suite=case.suite,
                name=case.name,
                status=case.status,
                duration_s=case.duration_s,
                attempt=attempt,
                message=case.message,
                source=JUNIT_SOURCE,
                event_time=at,
            )
        )
    return results


_RERUN_STATUS = {
    "flakyFailure": TestStatus.FAILED,
    "flakyError": TestStatus.ERROR,
    "rerunFailure": TestStatus.FAILED,
    "rerunError": TestStatus.ERROR,
}


def _junit_cases(root: ElementTree.Element) -> Iterator[_Case]:
    stack: list[tuple[ElementTree.Element, str | None]] = [(root, None)]
    while stack:  # iterative: nesting depth is up to the document
        element, suite_name = stack.pop()
        tag = _local(element.tag)
        if tag == "testcase":
            yield from _testcase(element, suite_name)
            continue
        if tag == "testsuite":
            suite_name = (element.get("name") or "").strip() or suite_name
        stack.extend((child, suite_name) for child in reversed(list(element)))


def _testcase(element: ElementTree.Element, suite_name: str | None) -> Iterator[_Case]:
    # jest-junit's "{classname} {title}" leaves a leading space when there is no describe
    suite = (element.get("classname") or "").strip() or suite_name
    name = (element.get("name") or "").strip()
    duration = _seconds(element.get("time") or "")
    status, message = TestStatus.PASSED, None
    earlier: list[tuple[TestStatus, str | None]] = []
    later: list[tuple[TestStatus, str | None]] = []
    for child in element:
        kind = _local(child.tag)
        text = _short(child.get("message") or (child.text or "").strip().split("\n", 1)[0])
        if kind in ("failure", "error") and status is TestStatus.PASSED:
            status = TestStatus.FAILED if kind == "failure" else TestStatus.ERROR
            message = text
        elif kind == "skipped" and status is TestStatus.PASSED:
            status, message = TestStatus.SKIPPED, text
        elif kind in ("flakyFailure", "flakyError"):
            earlier.append(
                (TestStatus.FAILED if kind == "flakyFailure" else TestStatus.ERROR, text)
            )
        elif kind in ("rerunFailure", "rerunError"):
            later.append((TestStatus.FAILED if kind == "rerunFailure" else TestStatus.ERROR, text))
    for flaky_status, flaky_message in earlier:
        yield _Case(suite, name, flaky_status, None, flaky_message)
    yield _Case(suite, name, status, duration, message)
    for rerun_status, rerun_message in later:
        yield _Case(suite, name, rerun_status, None, rerun_message)


def _short(text: str | None) -> str | None:
    text = (text or "").strip()
    if not text:
        return None
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _seconds(text: str) -> float | None:
    """A duration as tools write it ("0.05", Surefire's "1,234.5"); None if not a sane one."""
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
